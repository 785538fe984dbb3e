"""The two speed targets of in-stream scoring, in one run and one JSON line.

Runs, one after the other on the same machine:

* ``bench_scoring.py --rows 1000000``: batch scoring of a million feature rows by the
  stream's scorer (XGBoost and LightGBM, 300 trees); ``rows_per_s`` is the slower of the two
  models (target ≥ 200,000 rows/s);
* ``bench_pipeline.py --runner direct --rate 5000``: tick produced → champion prediction in
  Kafka through a real worker (target ``tick_to_prediction_ms_p99`` ≤ 100 ms).

Each keeps its own output above; the last line is one JSON object with both figures, their
targets and the full results of both scripts. Needs the stack (``tickcast up``).

    .venv/bin/python benchmarks/bench_models.py [--rows 1000000] [--rate 5000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROWS_TARGET = 200_000
P99_TARGET_MS = 100.0


def _last_json(script: str, args: list[str]) -> dict[str, Any]:
    """Run a sibling benchmark, echo its output, return its last line as JSON."""
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(proc.stdout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{script} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    scoring = _last_json("bench_scoring.py", ["--rows", str(args.rows)])
    pipeline = _last_json(
        "bench_pipeline.py",
        ["--runner", "direct", "--rate", str(args.rate), "--seconds", str(args.seconds)],
    )
    per_model = {kind: case["rows_per_s"] for kind, case in scoring["models"].items()}
    rows_per_s = min(per_model.values())
    p99 = pipeline["tick_to_prediction_ms_p99"]
    print(
        json.dumps(
            {
                "rows_per_s": rows_per_s,
                "rows_per_s_by_model": per_model,
                "rows_target": ROWS_TARGET,
                "tick_to_prediction_ms_p50": pipeline["tick_to_prediction_ms_p50"],
                "tick_to_prediction_ms_p99": p99,
                "tick_to_prediction_ms_max": pipeline["tick_to_prediction_ms_max"],
                "p99_target_ms": P99_TARGET_MS,
                "offered_ticks_per_s": pipeline["offered_per_s"],
                "meets_targets": rows_per_s >= ROWS_TARGET and p99 <= P99_TARGET_MS,
                "scoring": scoring,
                "pipeline": pipeline,
            }
        )
    )


if __name__ == "__main__":
    main()
