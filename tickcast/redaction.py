"""The one place secrets are masked before text leaves a process (responses, logs, CLI output).

:func:`redact` masks the password of every ``scheme://user:password@host`` URL (http(s), chdb,
redis(s), postgresql+psycopg, mysql, amqp, s3, ...), ``password=``/``token=``/``secret=``-style
key-value pairs (URL query strings, libpq and Kafka SASL ``sasl.jaas.config`` strings, JSON),
and ``Bearer``/``Basic`` credentials. :func:`redact_value` applies it to nested values and
masks whole values under secret-looking keys. ``/readyz``, ``tickcast config``, the structlog
processor and :class:`~tickcast.errors.DependencyError` all go through these two.

>>> redact("cannot open http://default:S3cret@127.0.0.1:9/: refused")
'cannot open http://default:***@127.0.0.1:9/: refused'
>>> redact("postgresql+psycopg://app:p%40ss@db:5432/x?sslmode=require&password=hunter2")
'postgresql+psycopg://app:***@db:5432/x?sslmode=require&password=***'
>>> redact('PlainLoginModule required username="alice" password="al1ce-secret";')
'PlainLoginModule required username="alice" password="***";'
>>> redact_value({"jwt_secret": "x", "url": "rediss://:pw@h:6380/0", "port": 9})
{'jwt_secret': '***', 'url': 'rediss://:***@h:6380/0', 'port': 9}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

#: Words that make a key (a log field, a setting, a header, a query parameter) secret.
SECRET_WORDS = (
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "authorization",
    "jwt", "credential", "private_key", "access_key", "clickhouse-key", "sasl.password",
)  # fmt: skip

# Every repetition is bounded and every match starts at the beginning of a token (the
# look-behinds), so redaction stays linear on any input, hostile or huge.
# scheme://user:password@ — the password runs to the last "@" (within 256 characters) before
# whitespace or a quote, so a password holding "@", ":" or "/" is masked whole.
_URL_USERINFO = re.compile(
    r"(?P<head>(?<![\w+.\-])[a-z][\w+.\-]{0,30}://[^\s:/@'\"<>]{0,128}:)[^\s'\"<>]{0,256}@", re.I
)
_KEY = (
    r"(?<![\w.\-])[\w.\-]{0,40}?(?:password|passwd|pwd|secret|token|credential"
    r"|api[_\-]?key|access[_\-]?key|private[_\-]?key|clickhouse[_\-]key)[\w.\-]{0,40}"
)
_QUOTED_VALUE = r"(?P<q>[\"'])(?:\\.|[^\"'\\\r\n]){0,512}(?P=q)?"
# key=value (query strings, libpq, JAAS: password="x"), value quoted or up to a separator
_KEY_VALUE = re.compile(
    rf"(?P<head>{_KEY}\s{{0,8}}=\s{{0,8}})(?:{_QUOTED_VALUE}|[^\s&;,'\"]+)", re.I
)
# "key": "value" (JSON, Python reprs)
_QUOTED_KEY = re.compile(
    rf"(?P<head>(?P<k>[\"']){_KEY}(?P=k)\s{{0,8}}:\s{{0,8}}){_QUOTED_VALUE}", re.I
)
# credential-carrying HTTP headers written as "Name: value"
_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?(?:authorization|x-clickhouse-key|x-api-key|cookie)\s{0,8}:\s{0,8})"
    r"(?![\"'])[^\r\n,;]{1,4096}",
    re.I,
)
_SCHEME_CREDENTIAL = re.compile(
    r"(?P<head>\b(?:Bearer|Basic)\s{1,8})[A-Za-z0-9._~+/=\-]{8,4096}", re.I
)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(0)[len(match.group("head")) :]
    quote = value[:1] if value[:1] in "\"'" else ""
    return f"{match.group('head')}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """``text`` with every credential it carries masked (idempotent; cheap when none).

    >>> redact("redis://:p@ss/w@rd@10.0.0.1:6379/0 and mysql://root:toor@db/x")
    'redis://:***@10.0.0.1:6379/0 and mysql://root:***@db/x'
    >>> redact("chdb:///data/clickhouse sqlite:////tmp/mlflow.db http://host:8123")
    'chdb:///data/clickhouse sqlite:////tmp/mlflow.db http://host:8123'
    >>> redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
    'Authorization: ***'
    """
    if not text or not isinstance(text, str):
        return text
    out = _URL_USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    out = _QUOTED_KEY.sub(_mask_value, out)
    out = _KEY_VALUE.sub(_mask_value, out)
    out = _HEADER.sub(lambda m: f"{m.group('head')}{MASK}", out)
    return _SCHEME_CREDENTIAL.sub(lambda m: f"{m.group('head')}{MASK}", out)


def is_secret_key(key: object) -> bool:
    """Whether a field, setting or header named ``key`` holds a secret as a whole.

    >>> is_secret_key("jwt_secret"), is_secret_key("Authorization"), is_secret_key("user")
    (True, True, False)
    """
    return isinstance(key, str) and any(word in key.lower() for word in SECRET_WORDS)


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with secrets masked: strings through :func:`redact`, mappings and sequences
    item by item (values under secret keys replaced whole), anything else unchanged."""
    if depth > 6:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: MASK if is_secret_key(k) else redact_value(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v, depth + 1) for v in value)
    return value
