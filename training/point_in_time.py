"""The point-in-time guard: refuse features that use bars after their own timestamp.

Two checks, the first decisive:

1. **Truncation** (needs ``recompute``): for a few cutoffs ``c`` on the timeline, recompute the
   features from the bars with ``ts_ms <= c`` only and compare them, row by row, with the
   full-history values at every ``ts_ms <= c``. A point-in-time feature cannot tell the
   difference; one that peeks even one bar ahead changes at the rows next to the cutoff.
2. **Implausible correlation**: a feature whose pooled correlation with the *next* bar's
   return exceeds ``corr_threshold`` in absolute value (default 0.95) is all but that return;
   no honest feature does that.

Either failure raises :class:`~training.errors.LookAheadError` naming the features.

Side data (macro figures, news) gets its own truncation check,
:func:`check_side_point_in_time`: just before each publication time ``p``, the features of
every row at ``ts_ms < p`` must not change when the records published at or after ``p`` are
removed. A join by reference period (a Q3 figure used from July although published in
October) fails it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.errors import LookAheadError, TrainingError
from training.labels import make_labels

KEYS = ["symbol", "ts_ms"]
Recompute = Callable[[pd.DataFrame], pd.DataFrame]
SideRecompute = Callable[[Sequence[Mapping[str, Any]]], pd.DataFrame]


@dataclass(frozen=True)
class PointInTimeReport:
    """What the guard checked (attached to a walk-forward result)."""

    features: list[str]
    cutoffs: list[int]
    next_return_corr: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "features": list(self.features),
            "cutoffs": [int(c) for c in self.cutoffs],
            "next_return_corr": dict(self.next_return_corr),
        }


def keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """A feature frame with ``symbol`` and ``ts_ms`` as columns (moved out of the index)."""
    if set(KEYS) <= set(frame.columns):
        return frame
    names = [n for n in frame.index.names if n is not None]
    if set(KEYS) <= set(names) | set(frame.columns):
        return frame.reset_index()
    raise TrainingError("missing_keys", "feature frame needs symbol and ts_ms")


def _feature_names(frame: pd.DataFrame, names: Sequence[str] | None) -> list[str]:
    cols = list(names) if names is not None else [c for c in frame.columns if c not in KEYS]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise TrainingError("missing_features", f"feature frame lacks {missing}")
    return cols


def next_return_correlation(
    features: pd.DataFrame, bars: pd.DataFrame, names: Sequence[str] | None = None
) -> dict[str, float]:
    """Pooled Pearson correlation of each feature with the next bar's return."""
    feats = keyed(features)
    cols = _feature_names(feats, names)
    nxt = make_labels(bars, horizon=1)[[*KEYS, "ret_next"]]
    merged = feats[[*KEYS, *cols]].merge(nxt, on=KEYS, how="inner")
    out: dict[str, float] = {}
    for col in cols:
        x = merged[col].to_numpy(dtype=float)
        y = merged["ret_next"].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 30 or np.ptp(x[ok]) == 0.0 or np.ptp(y[ok]) == 0.0:
            out[col] = float("nan")
            continue
        out[col] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out


def _cutoffs(ts: np.ndarray, n_cutoffs: int) -> list[int]:
    uniq = np.unique(ts)
    if uniq.size < 3 or n_cutoffs < 1:
        return []
    pos = np.unique(np.linspace(0.3, 0.95, n_cutoffs) * (uniq.size - 1)).astype(int)
    # never the last timestamp: truncating there removes nothing
    return [int(uniq[min(p, uniq.size - 2)]) for p in pos]


def truncation_mismatches(
    features: pd.DataFrame,
    bars: pd.DataFrame,
    recompute: Recompute,
    cutoff: int,
    names: Sequence[str],
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> list[str]:
    """Features whose values at ``ts_ms <= cutoff`` change when later bars are removed."""
    past = bars[bars["ts_ms"] <= cutoff]
    trunc = keyed(recompute(past))
    full = keyed(features)
    full = full[full["ts_ms"] <= cutoff][[*KEYS, *names]]
    missing = [c for c in names if c not in trunc.columns]
    if missing:
        return list(missing)
    merged = full.merge(trunc[[*KEYS, *names]], on=KEYS, how="left", suffixes=("", "__t"))
    bad = []
    for col in names:
        a = merged[col].to_numpy(dtype=float)
        b = merged[f"{col}__t"].to_numpy(dtype=float)
        if not np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True).all():
            bad.append(col)
    return bad


def check_point_in_time(
    feature_frame: pd.DataFrame,
    bars: pd.DataFrame,
    recompute: Recompute | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    n_cutoffs: int = 4,
    corr_threshold: float = 0.95,
) -> PointInTimeReport:
    """Raise :class:`LookAheadError` if any feature is not point-in-time; else a report.

    ``recompute(bars) -> feature frame`` recomputes the features from a bar frame (e.g.
    ``lambda b: compute_frame(b, feature_set)``); without it only the correlation check runs.
    """
    feats = keyed(feature_frame)
    names = _feature_names(feats, feature_names)
    corr = next_return_correlation(feats, bars, names)
    cutoffs = _cutoffs(feats["ts_ms"].to_numpy(), n_cutoffs) if recompute is not None else []
    for cutoff in cutoffs:
        assert recompute is not None
        bad = truncation_mismatches(feats, bars, recompute, cutoff, names)
        if bad:
            raise LookAheadError(
                "truncation_mismatch",
                bad,
                f"features {bad} change at ts_ms <= {cutoff} when later bars are removed: "
                "they use future data",
                cutoff_ts=cutoff,
            )
    suspicious = [c for c, v in corr.items() if np.isfinite(v) and abs(v) > corr_threshold]
    if suspicious:
        raise LookAheadError(
            "implausible_correlation",
            suspicious,
            f"features {suspicious} correlate with the next bar's return beyond "
            f"{corr_threshold}: they almost certainly contain it",
        )
    return PointInTimeReport(features=names, cutoffs=cutoffs, next_return_corr=corr)


def check_side_point_in_time(
    recompute: SideRecompute,
    records: Sequence[Mapping[str, Any]],
    feature_names: Sequence[str],
    *,
    max_cutoffs: int = 8,
) -> list[int]:
    """Raise :class:`LookAheadError` if side features use records before their publication.

    ``recompute(records) -> frame`` joins the side ``records`` (each with ``published_at``,
    epoch ms) onto a fixed set of bars (columns ``symbol, ts_ms`` and ``feature_names``).
    For up to ``max_cutoffs`` publication times ``p`` inside the bars' time range, the rows
    at ``ts_ms < p`` must be identical with all records and with only those published
    before ``p``. Returns the cutoffs checked.
    """
    full = keyed(recompute(records))
    names = _feature_names(full, feature_names)
    stamps = full["ts_ms"].to_numpy()
    if stamps.size == 0:
        return []
    lo, hi = int(stamps.min()), int(stamps.max())
    pubs = np.unique([int(r["published_at"]) for r in records])
    pubs = pubs[(pubs > lo) & (pubs <= hi)]
    if pubs.size > max_cutoffs:
        pubs = pubs[np.unique(np.linspace(0, pubs.size - 1, max_cutoffs).astype(int))]
    for p in pubs.tolist():
        known = [r for r in records if int(r["published_at"]) < p]
        trunc = keyed(recompute(known))
        a = full[full["ts_ms"] < p].sort_values(KEYS)
        b = trunc[trunc["ts_ms"] < p].sort_values(KEYS)
        bad = [
            c
            for c in names
            if not np.array_equal(
                a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float), equal_nan=True
            )
        ]
        if bad:
            raise LookAheadError(
                "truncation_mismatch",
                bad,
                f"side features {bad} change before {p} when the records published from "
                f"{p} on are removed: they use data before it was published",
                cutoff_ts=p,
            )
    return [int(p) for p in pubs.tolist()]
