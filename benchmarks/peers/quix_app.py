"""tickcast's per-tick work as a Quix Streams app (run in its own virtualenv, see venvs.py).

``--state dict``: symbol states in a plain dict (not fault-tolerant); ``--state store``:
in Quix's ``State`` (RocksDB + changelog topic), the pickled symbol state read and written
per event. Either way a sink writes each symbol's latest blob to Redis once per batch
(Quix flushes sinks at each checkpoint, every ``--commit-interval`` seconds, as tickcast's
worker checkpoints). Stops after ``--ticks`` records; prints a JSON line with its own
timing (the benchmark measures from Redis, the same way for every contender).

    python -m benchmarks.peers.quix_app --bootstrap localhost:19092 --topic t --group g \
        --redis-url redis://localhost:16379/0 --prefix p: --ticks 200000
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from typing import Any

from quixstreams import Application, State, message_context  # type: ignore[import-not-found]
from quixstreams.sinks import BatchingSink, SinkBatch  # type: ignore[import-not-found]
from quixstreams.state.rocksdb import RocksDBOptions  # type: ignore[import-not-found]

from agents.feature_engine import SymbolStream
from benchmarks.peers.redis_writer import BlobWriter
from benchmarks.peers.transform import Features, PeerTransform


class RedisBlobSink(BatchingSink):  # type: ignore[misc]
    """Each symbol's latest feature blob, one Redis command per flushed batch."""

    def __init__(self, transform: PeerTransform, url: str, prefix: str, ttl_s: int) -> None:
        super().__init__()
        self.transform = transform
        self.params = (url, prefix, ttl_s)
        self.writer: BlobWriter | None = None

    def setup(self) -> None:
        self.writer = BlobWriter(*self.params)

    def write(self, batch: SinkBatch) -> None:
        assert self.writer is not None
        latest: dict[str, Features] = {item.value.symbol: item.value for item in batch}
        self.writer.write(self.transform.blobs(latest, int(time.time() * 1000)))


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--ticks", type=int, required=True)
    parser.add_argument("--feature-set", default="classic")
    parser.add_argument("--state", choices=("dict", "store"), default="dict")
    parser.add_argument("--state-dir", default="state")
    parser.add_argument("--commit-interval", type=float, default=1.0)
    parser.add_argument("--ttl-s", type=int, default=86_400)
    args = parser.parse_args()

    transform = PeerTransform(args.feature_set)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
        # the store keeps the engine's own SymbolStream, pickled (Quix's default is JSON)
        rocksdb_options=RocksDBOptions(dumps=_dumps, loads=pickle.loads),
    )
    topic = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(topic)
    seen = {"n": 0, "refused": 0, "first": 0.0}

    def count(outcome: Any) -> Any:
        if seen["n"] == 0:
            seen["first"] = time.time()
        seen["n"] += 1
        if outcome is not None and not isinstance(outcome, Features):
            seen["refused"] += 1
        if seen["n"] >= args.ticks:
            app.stop()  # the final checkpoint flushes the sink
        return outcome if isinstance(outcome, Features) else None

    states: dict[bytes | None, SymbolStream | None] = {}

    def in_dict(value: bytes, key: bytes | None, _ts: int, _headers: Any) -> Any:
        ctx = message_context()
        now_ms = int(time.time() * 1000)
        state, outcome = transform.step(
            states.get(key), key, value, ctx.partition, ctx.offset, now_ms
        )
        states[key] = state
        return count(outcome)

    def in_store(value: bytes, key: bytes | None, _ts: int, _headers: Any, state: State) -> Any:
        ctx = message_context()
        now_ms = int(time.time() * 1000)
        new, outcome = transform.step(state.get("s"), key, value, ctx.partition, ctx.offset, now_ms)
        if new is not None:
            state.set("s", new)  # pickled by the store (RocksDBOptions below)
        return count(outcome)

    if args.state == "dict":
        sdf = sdf.apply(in_dict, metadata=True)
    else:
        sdf = sdf.apply(in_store, stateful=True, metadata=True)
    sdf = sdf.filter(lambda v: v is not None)
    sdf.sink(RedisBlobSink(transform, args.redis_url, args.prefix, args.ttl_s))
    started = time.time()
    app.run()
    ended = time.time()
    seconds = max(ended - seen["first"], 1e-9)
    print(
        json.dumps(
            {
                "peer": f"quix-{args.state}",
                "ticks": seen["n"],
                "refused": seen["refused"],
                "startup_s": round(seen["first"] - started, 3),
                "self_ticks_per_s": round(seen["n"] / seconds),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
