"""tickcast's worker beside Quix Streams and Bytewax on identical work, alternating rounds.

One throw-away namespace holds one pre-filled ticks topic that every contender reads from
the start: tickcast's direct runner (fault tolerance on: state snapshots in its compacted
topic, offsets committed only behind them, a feature record produced per tick; scoring
off, as the peers do not score), Quix Streams with symbol states in a plain dict
(``quix-dict``), Quix with its ``State`` store (``quix-store``, RocksDB + changelog topic)
and Bytewax without recovery. The peers run tickcast's own decode, validation, indicators
and Redis blob (benchmarks/peers/transform.py) in their own virtualenvs (venvs.py).

Every contender is measured the same way, from outside: each symbol's Redis feature blob
carries the event time of the last tick applied, which the pre-filled ticks turn into a
count of ticks done; sampled every 0.1 s, the rate is (done at the end - done at the first
sample with any) / elapsed, so start-up is excluded for all, and the process's CPU per tick
over the same span (/proc). Each round runs every contender once, in an order rotated per
round; ratios (of rates, and of ticks per CPU second) are taken within a round.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from confluent_kafka.admin import AdminClient

from backtesting.namespace import reset_namespace
from monitoring.lag import collect_lag
from sinks import redis_keys
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.processes import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ("tickcast", "quix-dict", "quix-store", "bytewax")
#: Also known: ``tickcast-per-symbol``, the worker with TICKCAST_CLASSIC_ENGINE=per_symbol
#: (the classic indicators per symbol, tick by tick, instead of as columns per batch).
KNOWN = (*CONTENDERS, "tickcast-per-symbol")

#: Each key's event time (bytes 4-11 of the blob, sinks.feature_blob), in one command.
_EVENT_TIMES = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('GETRANGE', KEYS[i], 4, 11) end
return out
"""


class Progress:
    """Ticks done so far, read from the contender's Redis feature blobs."""

    def __init__(self, client: redis.Redis, prefix: str, ts_by_symbol: dict[str, np.ndarray]):
        self.symbols = list(ts_by_symbol)
        self.ts = [ts_by_symbol[s] for s in self.symbols]
        self.keys = [redis_keys.feature_key(prefix, s) for s in self.symbols]
        self.script = client.register_script(_EVENT_TIMES)
        self.total = sum(len(ts) for ts in self.ts)

    def done(self) -> int:
        raw = self.script(keys=self.keys)
        return sum(
            int(np.searchsorted(ts, int.from_bytes(b, "little", signed=True), side="right"))
            for ts, b in zip(self.ts, raw, strict=True)
            if len(b) == 8
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc; 0 once gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    progress: Progress,
    running: Callable[[], bool],
    pid: int,
    timeout_s: float = 900.0,
    every_s: float = 0.1,
) -> dict[str, float]:
    """Sample until the contender says it is through (``running`` false before a sample);
    the rate from the first sample with progress to the first sample at the final count,
    and the process's CPU per tick over the same span (steadier on a shared machine)."""
    samples: list[tuple[float, int, float]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        through = not running()
        now, done, cpu = time.monotonic(), progress.done(), cpu_seconds(pid)
        samples.append((now, done, cpu))
        if through:
            break
        time.sleep(every_s)
    final = samples[-1][1]
    if not final:
        raise RuntimeError("the contender wrote no feature (see its log)")
    start = next(s for s in samples if s[1] > 0)
    end = next(s for s in samples if s[1] == final)
    ticks = max(end[1] - start[1], 1)
    return {
        "ticks_done": final,
        "ticks_per_s": round(ticks / max(end[0] - start[0], 1e-9)),
        "measured_s": round(end[0] - start[0], 2),
        "cpu_us_per_tick": round((end[2] - start[2]) / ticks * 1e6, 2),
    }


def committing(settings: Settings, total: int, every_s: float = 0.5) -> Callable[[], bool]:
    """For the worker, which never ends: true until its group's committed offsets on the ticks
    topic reach ``total`` (a commit covers outputs flushed and state snapshotted)."""
    topic, last = settings.topic("ticks"), [0.0, True]

    def running() -> bool:
        if time.monotonic() - last[0] >= every_s:
            rows = collect_lag(settings.kafka_bootstrap, [settings.consumer_group])
            done = sum(max(r.committed, 0) for r in rows if r.topic == topic)
            last[:] = [time.monotonic(), done < total]
        return bool(last[1])

    return running


def fill(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    """Publish the encoded ticks once (every contender reads this topic from the start)."""
    from streams.producer import BatchProducer

    producer = BatchProducer(settings)
    topic = settings.topic("ticks")
    for key, value in records:
        producer.produce(topic, key, value)
    producer.flush()


def fresh_outputs(settings: Settings) -> None:
    """Delete the namespace's topics but the ticks (tickcast's state and outputs from an
    earlier round must not be restored), then create them again."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    ticks = settings.topic("ticks")
    names = admin.list_topics(timeout=10).topics
    doomed = [t for t in names if t.startswith(settings.topic_prefix) and t != ticks]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
        deadline = time.monotonic() + 60
        while set(doomed) & set(admin.list_topics(timeout=10).topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics not deleted: {doomed}")
            time.sleep(0.5)
    apply_topics(settings)


def run_one(
    name: str,
    settings: Settings,
    tag: str,
    pythons: dict[str, Path],
    progress_of: Callable[[str], Progress],
    logs: Path,
) -> dict[str, Any]:
    """One contender over the whole topic, in its own group and Redis key prefix."""
    prefix = f"{settings.redis_key_prefix}{tag}:"
    group = f"{settings.consumer_group}-{tag}"
    log = logs / f"{tag}.log"
    progress = progress_of(prefix)
    if name.startswith("tickcast"):
        fresh_outputs(settings)
        engine = "per_symbol" if name == "tickcast-per-symbol" else settings.classic_engine
        update = {"consumer_group": group, "redis_key_prefix": prefix, "classic_engine": engine}
        own = settings.model_copy(update=update)
        worker = ServiceProcess(own, ["worker", "--metrics-port", "0"], log).start()
        through = committing(own, progress.total)
        try:
            assert worker.proc is not None
            return measure(progress, lambda: worker.running() and through(), worker.proc.pid)
        finally:
            worker.stop()
    common = [
        "--bootstrap", settings.kafka_bootstrap,
        "--topic", settings.topic("ticks"),
        "--redis-url", settings.redis_url,
        "--prefix", prefix,
        "--feature-set", settings.feature_set or "classic",
        "--ttl-s", str(settings.feature_ttl_s),
    ]  # fmt: skip
    if name.startswith("quix"):
        state_dir = logs / f"{tag}-state"
        args = [
            str(pythons["quix"]), "-m", "benchmarks.peers.quix_app", *common,
            "--group", group, "--ticks", str(progress.total),
            "--state", name.removeprefix("quix-"), "--state-dir", str(state_dir),
            "--commit-interval", str(settings.checkpoint_interval_s),
        ]  # fmt: skip
    else:
        args = [str(pythons["bytewax"]), "-m", "benchmarks.peers.bytewax_app", *common]
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            result = measure(progress, lambda: proc.poll() is None, proc.pid)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if name.startswith("quix"):
        shutil.rmtree(logs / f"{tag}-state", ignore_errors=True)
    lines = log.read_text().strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result["self_reported"] = json.loads(lines[-1])
    return result


def compare(
    settings: Settings,
    records: list[tuple[bytes, bytes]],
    ts_by_symbol: dict[str, np.ndarray],
    rounds: int,
    logs: Path,
    contenders: tuple[str, ...] = CONTENDERS,
) -> dict[str, Any]:
    """``rounds`` rounds of every contender; per-round rates and within-round ratios."""
    from peers.venvs import ensure_venv

    unknown = set(contenders) - set(KNOWN)
    if unknown or "tickcast" not in contenders:
        raise ValueError(f"contenders: tickcast and any of {KNOWN}, not {sorted(unknown)}")
    pythons = {peer: ensure_venv(peer) for peer in ("quix", "bytewax")}
    settings = settings.model_copy(update={"scoring_enabled": False})
    apply_topics(settings)
    fill(settings, records)
    client = redis.Redis.from_url(settings.redis_url)

    def progress_of(prefix: str) -> Progress:
        return Progress(client, prefix, ts_by_symbol)

    rates: dict[str, list[float]] = {c: [] for c in contenders}
    cpu: dict[str, list[float]] = {c: [] for c in contenders}
    per_round: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            row: dict[str, Any] = {"round": r, "order": list(order)}
            for name in order:
                result = run_one(name, settings, f"{name}{r}", pythons, progress_of, logs)
                row[name] = result
                rates[name].append(result["ticks_per_s"])
                cpu[name].append(result["cpu_us_per_tick"])
                print(json.dumps({"round": r, "contender": name, **result}), flush=True)
            row["ratios"] = ratios({c: row[c]["ticks_per_s"] for c in contenders})
            # ticks per CPU second: the same ratios, less moved by other work on the machine
            row["cpu_ratios"] = ratios({c: 1e6 / row[c]["cpu_us_per_tick"] for c in contenders})
            per_round.append(row)
            print(json.dumps({k: row[k] for k in ("round", "ratios", "cpu_ratios")}), flush=True)
    finally:
        client.close()
        cleanup(settings)
    return {
        "ticks": len(records),
        "rounds": rounds,
        "ticks_per_s": rates,
        "median_ticks_per_s": {c: round(float(np.median(v))) for c, v in rates.items()},
        "ratios_per_round": [row["ratios"] for row in per_round],
        "median_ratios": medians([row["ratios"] for row in per_round]),
        "target": "tickcast/fastest_peer >= 2 (issue #18 item 4)",
        "cpu_us_per_tick": cpu,
        "median_cpu_us_per_tick": {c: round(float(np.median(v)), 2) for c, v in cpu.items()},
        "cpu_ratios_per_round": [row["cpu_ratios"] for row in per_round],
        "median_cpu_ratios": medians([row["cpu_ratios"] for row in per_round]),
    }


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per key, the median over the rounds."""
    return {k: round(float(np.median([row[k] for row in rows])), 3) for k in rows[0]}


def ratios(rate: dict[str, float]) -> dict[str, float]:
    """tickcast over each peer, and over the faster of Quix (dict) and Bytewax.

    >>> got = ratios({"tickcast": 30, "quix-dict": 20, "quix-store": 5, "bytewax": 15})
    >>> got["tickcast/quix-store"], got["tickcast/bytewax"], got["tickcast/fastest_peer"]
    (6.0, 2.0, 1.5)
    """
    out = {f"tickcast/{c}": round(rate["tickcast"] / rate[c], 3) for c in rate if c != "tickcast"}
    fastest = max(rate.get("quix-dict", 0), rate.get("bytewax", 0))
    if fastest:
        out["tickcast/fastest_peer"] = round(rate["tickcast"] / fastest, 3)
    return out


def cleanup(settings: Settings) -> None:
    """The namespace, and the Quix changelog topics named after its groups."""
    reset_namespace(settings)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    tag = settings.consumer_group
    left = [t for t in admin.list_topics(timeout=10).topics if tag in t]
    if left:
        for future in admin.delete_topics(left, operation_timeout=30).values():
            future.result()
