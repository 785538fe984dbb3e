"""Every Alpha158 feature at every step against Qlib's own expression engine (pyqlib 0.9.7).

pyqlib is not a dependency of tickcast (it pulls in a research stack: mlflow, cvxpy, gym,
jupyter...), so it lives in its own pinned virtualenv (``devtools.qlib_env``, built by
``make deps``, or here on first use). The real bars are rounded to float32 (what Qlib's
binary store holds) before both engines see them; Qlib computes some intermediates in
float32 (``$close/Ref($close, 1)-1``, ``2*$close-$high-$low``) and returns float32,
tickcast computes in float64, so values agree to float32 precision amplified by those
cancellations: within ``RTOL * |qlib| + ATOL`` (the worst seen on these symbols is 1.3e-5
absolute, on WVMA5).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.qlib_env import qlib_python
from indicators.alpha158 import EXPRESSIONS, NAMES
from tests.unit.indicators.alpha158.conftest import SYMBOLS, run_incremental

RTOL = 1e-5
ATOL = 2e-5
SCRIPT = Path(__file__).with_name("qlib_eval.py")


@pytest.fixture(scope="module")
def float32_bars(sp500_symbols: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for symbol in SYMBOLS:
        b = sp500_symbols[symbol][["symbol", "open", "high", "low", "close", "volume"]].copy()
        for col in ("open", "high", "low", "close", "volume"):
            b[col] = b[col].astype(np.float32).astype(np.float64)
        typical = (b["high"] + b["low"] + b["close"]) / 3.0
        b["vwap"] = typical.astype(np.float32).astype(np.float64)
        b.insert(1, "step", np.arange(len(b)))
        frames.append(b)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def qlib_values(float32_bars: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("qlib")
    float32_bars.to_csv(work / "bars.csv", index=False, float_format="%.9g")
    done = subprocess.run(
        [str(qlib_python()), str(SCRIPT), str(work / "bars.csv"), str(work / "out.csv"), str(work)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expressions = json.loads(done.stdout.strip().splitlines()[-1])
    return {"frame": pd.read_csv(work / "out.csv"), "expressions": expressions}


def test_our_expressions_are_qlibs(qlib_values: dict) -> None:
    assert qlib_values["expressions"] == EXPRESSIONS
    assert list(qlib_values["expressions"]) == list(NAMES)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_feature_at_every_step_matches_qlib(
    float32_bars: pd.DataFrame, qlib_values: dict, symbol: str
) -> None:
    bars = float32_bars[float32_bars["symbol"] == symbol].reset_index(drop=True)
    qlib = qlib_values["frame"]
    want = qlib[qlib["symbol"] == symbol].sort_values("step")[list(NAMES)]
    want = want.to_numpy(np.float64)
    got = run_incremental(bars).to_numpy()
    assert got.shape == want.shape == (len(bars), 158)
    nan_mismatch = np.argwhere(np.isnan(got) != np.isnan(want))
    assert nan_mismatch.size == 0, [
        (int(r), NAMES[c], got[r, c], want[r, c]) for r, c in nan_mismatch[:10]
    ]
    ok = np.isnan(want) | (np.abs(got - want) <= RTOL * np.abs(want) + ATOL)
    bad = np.argwhere(~ok)
    assert bad.size == 0, [(int(r), NAMES[c], got[r, c], want[r, c]) for r, c in bad[:10]]
