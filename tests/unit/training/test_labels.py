"""Labels against a row-by-row reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.training.synthetic import make_bars
from training.errors import TrainingError
from training.labels import PREV_RETURN, make_labels, previous_return


def reference_labels(bars: pd.DataFrame, h: int) -> dict[tuple[str, int], tuple[float, int, float]]:
    out = {}
    for sym, g in bars.groupby("symbol"):
        g = g.sort_values("ts_ms")
        ts, close = g["ts_ms"].tolist(), g["close"].tolist()
        for i in range(len(ts) - h):
            out[(sym, ts[i])] = (
                close[i + h] / close[i] - 1,
                ts[i + h],
                close[i + 1] / close[i] - 1,
            )
    return out


@pytest.mark.parametrize("h", [1, 3, 7])
def test_forward_return_and_sign(h: int) -> None:
    bars = make_bars(40, symbols=("A", "B"), seed=h)
    bars = bars.drop(index=[5, 17, 60]).sample(frac=1.0, random_state=0)  # gaps, shuffled rows
    labels = make_labels(bars, h)
    ref = reference_labels(bars, h)
    assert len(labels) == len(ref) == len(bars) - 2 * h
    for row in labels.itertuples():
        fwd, end, nxt = ref[(row.symbol, row.ts_ms)]
        assert row.fwd_return == pytest.approx(fwd, rel=1e-12)
        assert row.label_end_ts == end
        assert row.ret_next == pytest.approx(nxt, rel=1e-12)
        assert row.label == int(fwd > 0)
        assert row.direction == np.sign(fwd)
    # the last h bars of each symbol have no label
    for sym, g in bars.groupby("symbol"):
        last = sorted(g["ts_ms"])[-h:]
        assert not labels[(labels.symbol == sym) & labels.ts_ms.isin(last)].shape[0]
    assert labels["ts_ms"].is_monotonic_increasing


def test_previous_return_is_backward_looking() -> None:
    bars = make_bars(5, symbols=("A",))
    prev = previous_return(bars)
    assert np.isnan(prev[PREV_RETURN].iloc[0])
    expected = bars["close"].iloc[1] / bars["close"].iloc[0] - 1
    assert prev[PREV_RETURN].iloc[1] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b.drop(columns="close"), "missing_columns"),
        (lambda b: pd.concat([b, b.iloc[:1]]), "duplicate_bars"),
        (lambda b: b.assign(close=b["close"].where(b.index != 3, -1.0)), "bad_close"),
        (lambda b: b.assign(close=b["close"].where(b.index != 3, np.nan)), "bad_close"),
    ],
)
def test_bad_bars_raise_typed_errors(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TrainingError) as exc:
        make_labels(mutate(make_bars(10, symbols=("A",))), 1)
    assert exc.value.reason == reason


def test_bad_horizon() -> None:
    with pytest.raises(TrainingError):
        make_labels(make_bars(10, symbols=("A",)), 0)
