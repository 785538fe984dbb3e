"""tickcast's per-tick work as a Bytewax dataflow (run in its own virtualenv, see venvs.py).

Kafka input (``tail=False``: the flow ends at the end of the pre-filled topic) → keyed by the
record key → ``stateful_map`` running :class:`PeerTransform` on the symbol's state → a sink
writing each symbol's latest blob to Redis once per batch Bytewax hands it. One worker, no
recovery configured (Bytewax's recovery store is opt-in). Prints a JSON line with its own
timing (the benchmark measures from Redis, the same way for every contender).

    python -m benchmarks.peers.bytewax_app --bootstrap localhost:19092 --topic t \
        --redis-url redis://localhost:16379/0 --prefix p:
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import bytewax.operators as op  # type: ignore[import-not-found]
from bytewax.connectors.kafka import operators as kop  # type: ignore[import-not-found]
from bytewax.dataflow import Dataflow  # type: ignore[import-not-found]
from bytewax.outputs import DynamicSink, StatelessSinkPartition  # type: ignore[import-not-found]
from bytewax.run import cli_main  # type: ignore[import-not-found]

from agents.feature_engine import SymbolStream
from benchmarks.peers.redis_writer import BlobWriter
from benchmarks.peers.transform import Features, Outcome, PeerTransform


class _RedisPartition(StatelessSinkPartition):  # type: ignore[misc]
    def __init__(self, transform: PeerTransform, writer: BlobWriter) -> None:
        self.transform = transform
        self.writer = writer

    def write_batch(self, items: list[tuple[str, Features]]) -> None:
        latest = {f.symbol: f for _, f in items}
        self.writer.write(self.transform.blobs(latest, int(time.time() * 1000)))


class RedisBlobSink(DynamicSink):  # type: ignore[misc]
    """Each symbol's latest feature blob, one Redis command per batch."""

    def __init__(self, transform: PeerTransform, url: str, prefix: str, ttl_s: int) -> None:
        self.transform = transform
        self.params = (url, prefix, ttl_s)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisPartition:
        return _RedisPartition(self.transform, BlobWriter(*self.params))


def build_flow(args: argparse.Namespace, transform: PeerTransform, seen: dict[str, Any]) -> Any:
    """The dataflow: Kafka → keyed → stateful features → Redis."""
    flow = Dataflow("tickcast_peer")
    source = kop.input(
        "ticks", flow, brokers=[args.bootstrap], topics=[args.topic], tail=False, batch_size=2000
    )

    def features(state: SymbolStream | None, msg: Any) -> tuple[SymbolStream | None, Outcome]:
        if not seen["n"]:
            seen["first"] = time.time()
        seen["n"] += 1
        now_ms = int(time.time() * 1000)
        return transform.step(state, msg.key, msg.value, msg.partition, msg.offset, now_ms)

    keyed = op.key_on("key", source.oks, lambda m: (m.key or b"").decode("utf-8", "replace"))
    outcomes = op.stateful_map("features", keyed, features)
    kept = op.filter("features_only", outcomes, lambda kv: isinstance(kv[1], Features))
    op.output("redis", kept, RedisBlobSink(transform, args.redis_url, args.prefix, args.ttl_s))
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--feature-set", default="classic")
    parser.add_argument("--ttl-s", type=int, default=86_400)
    args = parser.parse_args()
    transform = PeerTransform(args.feature_set)
    seen: dict[str, Any] = {"n": 0, "first": 0.0}
    flow = build_flow(args, transform, seen)
    started = time.time()
    cli_main(flow, workers_per_process=1)
    ended = time.time()
    print(
        json.dumps(
            {
                "peer": "bytewax",
                "ticks": seen["n"],
                "startup_s": round(seen["first"] - started, 3),
                "self_ticks_per_s": round(seen["n"] / max(ended - seen["first"], 1e-9)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
