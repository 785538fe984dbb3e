"""Redis: every key under ``TICKCAST_REDIS_KEY_PREFIX`` as ``DUMP`` payloads, back by ``RESTORE``.

Why DUMP/RESTORE rather than copying the server's RDB file: a DUMP payload is the value in
RDB serialisation, so the data is the same, but it needs no access to the server's disk and
no restart (a managed or shared Redis works), it takes only this deployment's keys (a key
prefix may share a server), and it restores into a running, empty server. Expiry is kept as
an absolute time (``RESTORE … ABSTTL``), so a feature key expires when it would have. A
payload only restores into a Redis of the same or a newer major version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from recovery.archive import REDIS_KEY, read_records, write_records
from tickcast.config import Settings
from tickcast.errors import DependencyError

FILE = "redis/keys.avro"
_CHUNK = 500


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=30)


def _keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{_escape(prefix)}*", count=1000))


def _escape(prefix: str) -> str:
    """A key prefix as a literal SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)


def backup_redis(settings: Settings, root: Path) -> dict[str, Any]:
    """Write every key under the prefix to ``root/redis/keys.avro``."""
    client = _client(settings)
    prefix = settings.redis_key_prefix

    def dumps() -> Any:
        keys = _keys(client, prefix)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.dump(key)
                pipe.pttl(key)
            answers = pipe.execute()
            now_ms = int(time.time() * 1000)
            for key, payload, pttl in zip(chunk, answers[::2], answers[1::2], strict=True):
                if payload is None:  # expired or deleted since the scan
                    continue
                expire = now_ms + int(pttl) if int(pttl) > 0 else 0
                yield {"key": key[len(prefix) :], "expire_at_ms": expire, "dump": payload}

    try:
        count = write_records(root / FILE, REDIS_KEY, dumps())
    except redis.RedisError as exc:
        raise DependencyError("redis", f"backup of {settings.redis_url} failed: {exc}") from None
    finally:
        client.close()
    return {"keys": count, "key_prefix": prefix}


def redis_problems(settings: Settings) -> list[str]:
    """Why Redis is not an empty restore target (keys under the prefix), if it is not."""
    client = _client(settings)
    try:
        found = next(iter(client.scan_iter(match=f"{_escape(settings.redis_key_prefix)}*")), None)
    except redis.RedisError as exc:
        return [f"redis: {settings.redis_url} does not answer: {exc}"]
    finally:
        client.close()
    if found is not None:
        return [f"redis: keys under {settings.redis_key_prefix!r} exist (e.g. {found!r})"]
    return []


def restore_redis(settings: Settings, root: Path) -> dict[str, Any]:
    """RESTORE every key of the backup under this deployment's key prefix."""
    records = read_records(root / FILE)
    client = _client(settings)
    prefix = settings.redis_key_prefix.encode()
    restored = expired = 0
    now_ms = int(time.time() * 1000)
    try:
        for start in range(0, len(records), _CHUNK):
            pipe = client.pipeline(transaction=False)
            for record in records[start : start + _CHUNK]:
                expire = record["expire_at_ms"]
                if expire and expire <= now_ms:
                    expired += 1
                    continue
                pipe.restore(prefix + record["key"], expire, record["dump"], absttl=bool(expire))
                restored += 1
            pipe.execute()
    except redis.RedisError as exc:
        raise DependencyError("redis", f"restore into {settings.redis_url} failed: {exc}") from None
    finally:
        client.close()
    return {"keys": restored, "expired": expired}
