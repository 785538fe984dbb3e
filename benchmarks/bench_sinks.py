"""Benchmark: batched inserts into embedded ClickHouse (chDB) and the drift agent's cost.

Run: ``.venv/bin/python benchmarks/bench_sinks.py [--rows 500000]``. The last line is JSON:
``rows_per_s`` (predictions through ClickHouseSink: buffer + column-oriented INSERTs of
``sink_batch_rows``), ``map_us_per_row`` (Avro record → row), ``drift_us_per_vector``
(DriftMonitor update, 41 features, micro-batches of 1,000) and
``drift_decode_us_per_vector`` (FeatureVector Avro decode + update, the agent's hot path).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from indicators.feature_set import FeatureSet
from monitoring.drift import DriftMonitor, ReferenceDistribution
from sinks.clickhouse_sink import ClickHouseConnector, ClickHouseSink
from sinks.tables import PREDICTIONS
from streams.codec import get_codec
from tickcast.config import Settings
from tickcast.metrics import Metrics


def bench_inserts(rows: int, batch_rows: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-sinks-"))
    settings = Settings(data_dir=tmp, clickhouse_database="bench", sink_batch_rows=batch_rows)
    connector = ClickHouseConnector(settings)
    sink = ClickHouseSink(
        settings, PREDICTIONS, connector, metrics=Metrics(process=False),
        max_buffer_rows=batch_rows,
    )  # fmt: skip
    sink.setup()
    records = [
        {
            "symbol": f"S{i % 500}", "ts": 1_700_000_000_000 + i, "horizon": 5,
            "prob_up": 0.5, "expected_return": 0.0, "model_name": "xgb", "model_version": "1",
            "role": "CHAMPION", "feature_set_version": "v", "scoring_latency_ms": 1.0,
            "correlation_id": None, "produced_at": 1_700_000_000_000 + i,
        }
        for i in range(rows)
    ]  # fmt: skip
    start = time.perf_counter()
    mapped = [PREDICTIONS.to_row(r) for r in records]
    map_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, row in enumerate(mapped):
        sink.add(row, "predictions", 0, i)
        if sink.pending_rows >= batch_rows:
            assert sink.flush() is not None
    if sink.pending_rows:
        assert sink.flush(force=True) is not None
    insert_s = time.perf_counter() - start
    client = connector.get()
    count = client.query("SELECT count() FROM bench.predictions FINAL").result_rows[0][0]
    assert count == rows, count
    return {"rows_per_s": rows / insert_s, "map_us_per_row": map_s / rows * 1e6}


def bench_drift(vectors: int = 100_000, batch: int = 1000) -> dict[str, float]:
    fs = FeatureSet.default()
    rng = np.random.default_rng(0)
    refs = {n: ReferenceDistribution.from_sample(rng.normal(size=5000)) for n in fs.names}
    values = rng.normal(size=(vectors, len(fs.names)))
    ts = 1_700_000_000_000 + np.arange(vectors) * 1000
    monitor = DriftMonitor(fs.names, refs, window_ms=3_600_000)
    start = time.perf_counter()
    for i in range(0, vectors, batch):
        monitor.update(ts[i : i + batch], values[i : i + batch])
    update_s = time.perf_counter() - start
    codec = get_codec("FeatureVector")
    payloads = [
        codec.encode(
            {
                "symbol": "S",
                "ts": int(ts[i]),
                "feature_set_version": fs.version,
                "values": values[i].tolist(),
            }
        )
        for i in range(20_000)
    ]
    monitor = DriftMonitor(fs.names, refs, window_ms=3_600_000)
    start = time.perf_counter()
    for i in range(0, len(payloads), batch):
        decoded = [codec.decode(p) for p in payloads[i : i + batch]]
        monitor.update([d["ts"] for d in decoded], [d["values"] for d in decoded])
    decode_s = time.perf_counter() - start
    return {
        "drift_us_per_vector": update_s / vectors * 1e6,
        "drift_decode_us_per_vector": decode_s / len(payloads) * 1e6,
        "drift_features": len(fs.names),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--batch-rows", type=int, default=50_000)
    args = parser.parse_args()
    result: dict[str, float | int] = {"rows": args.rows, "batch_rows": args.batch_rows}
    result |= bench_inserts(args.rows, args.batch_rows)
    result |= bench_drift()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
