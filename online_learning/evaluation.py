"""Online evaluation of every model version from its outcomes, in event time.

:class:`OnlineEvaluator` keeps, per ``(model_name, model_version)``, fixed-length windows
(deques) of the latest outcomes — hit, loss, ``prob_up - 0.5``, realized and strategy
return — optionally also cut by event-time age, plus the P&L of the current event-time UTC
day. Its :meth:`~OnlineEvaluator.snapshot` gives, over the window:

* ``accuracy`` — share of hits; ``log_loss`` — mean loss (nats);
* ``ic`` — Spearman correlation of ``prob_up - 0.5`` with the realized return;
* ``sharpe`` — annualised Sharpe of the strategy returns (``periods_per_year`` per
  outcome; inferred from the bars' spacing unless given: 252 for daily bars, 252 × 390 for
  one-minute bars), ``max_drawdown`` and ``var_95`` (positive losses) — computed with
  :mod:`finance.metrics` on simple returns ``expm1(strategy_return)``;
* ``daily_pnl_usd`` — ``notional_usd · Σ expm1(strategy_return)`` of outcomes realized on
  the current UTC day of event time (it resets when the first outcome of a new day arrives).

The number of tracked versions is bounded (``max_models``; the least recently updated is
dropped, and its Prometheus series removed at the next :meth:`~OnlineEvaluator.export`).
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from finance import metrics as bm
from tickcast.metrics import Metrics

DAY_MS = 86_400_000
ModelKey = tuple[str, str]
NAN = float("nan")
_WINDOWS = ("ts", "hits", "losses", "scores", "realized", "strategy")


@dataclass(slots=True)
class ModelWindow:
    """The bounded window of one model version."""

    size: int
    role: str = ""
    n_total: int = 0
    last_ts: int = 0
    day: int = -1
    day_pnl: float = 0.0
    ts: deque[int] = field(init=False)
    hits: deque[float] = field(init=False)
    losses: deque[float] = field(init=False)
    scores: deque[float] = field(init=False)
    realized: deque[float] = field(init=False)
    strategy: deque[float] = field(init=False)

    def __post_init__(self) -> None:
        for name in _WINDOWS:
            setattr(self, name, deque(maxlen=self.size))

    def _windows(self) -> list[deque[Any]]:
        return [getattr(self, name) for name in _WINDOWS]

    def add(self, outcome: dict[str, Any], notional: float) -> None:
        """Append one outcome (non-finite numbers are skipped)."""
        values = (outcome["loss"], outcome["prob_up"], outcome["realized_return"])
        ret = float(outcome["strategy_return"])
        if not all(math.isfinite(float(v)) for v in values) or not math.isfinite(ret):
            return
        ts = int(outcome.get("realized_ts", outcome["ts"]))
        self.ts.append(ts)
        self.hits.append(1.0 if outcome["hit"] else 0.0)
        self.losses.append(float(outcome["loss"]))
        self.scores.append(float(outcome["prob_up"]) - 0.5)
        self.realized.append(float(outcome["realized_return"]))
        self.strategy.append(ret)
        self.role = str(outcome.get("role", self.role))
        self.n_total += 1
        self.last_ts = max(self.last_ts, ts)
        day = ts // DAY_MS
        if day > self.day:
            self.day, self.day_pnl = day, 0.0
        if day == self.day:
            self.day_pnl += notional * math.expm1(ret)

    def evict_older_than(self, cutoff_ts: int) -> None:
        """Drop entries whose event time is before ``cutoff_ts``."""
        while self.ts and self.ts[0] < cutoff_ts:
            for window in self._windows():
                window.popleft()

    def summary(self, periods_per_year: float) -> dict[str, float]:
        """The window's metrics (nan where undefined)."""
        n = len(self.hits)
        if n == 0:
            return {"n": 0.0, "accuracy": NAN, "log_loss": NAN, "ic": NAN, "sharpe": NAN,
                    "max_drawdown": NAN, "var_95": NAN}  # fmt: skip
        simple = np.expm1(np.fromiter(self.strategy, float, n))
        return {
            "n": float(n),
            "accuracy": float(np.mean(np.fromiter(self.hits, float, n))),
            "log_loss": float(np.mean(np.fromiter(self.losses, float, n))),
            "ic": spearman(
                np.fromiter(self.scores, float, n), np.fromiter(self.realized, float, n)
            ),
            "sharpe": bm.sharpe_ratio(simple, periods_per_year),
            "max_drawdown": bm.max_drawdown(simple),
            "var_95": bm.var_historical(simple, 0.95),
        }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; nan with fewer than 3 values or a constant side."""
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return NAN
    return float(sps.spearmanr(x, y).statistic)


class OnlineEvaluator:
    """Rolling metrics per model version from outcome records (see module doc)."""

    def __init__(
        self,
        window: int = 1000,
        *,
        max_age_ms: int | None = None,
        periods_per_year: float | None = None,
        notional_usd: float = 10_000.0,
        max_models: int = 32,
    ) -> None:
        if window < 2 or max_models < 1:
            raise ValueError("window must be >= 2 and max_models >= 1")
        self.window = window
        self.max_age_ms = max_age_ms
        self.periods_per_year = periods_per_year
        self.notional_usd = notional_usd
        self.max_models = max_models
        self.models: dict[ModelKey, ModelWindow] = {}
        self._evicted: set[ModelKey] = set()
        self._bar_ms: deque[float] = deque(maxlen=256)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint, giving attributes added since it was written their defaults
        (a checkpoint from before ``_bar_ms`` existed crashed the learner at its first batch)."""
        self.__dict__.update({**OnlineEvaluator().__dict__, **state})

    def annualisation(self) -> float:
        """Periods per year: as given, else inferred from the bar spacing of the outcomes.

        A bar of 12 h or more counts as a trading day (252 a year); shorter bars are fitted
        into a 6.5 h session (e.g. 252 × 390 for one-minute bars).
        """
        if self.periods_per_year is not None:
            return self.periods_per_year
        if not self._bar_ms:
            return 252 * 390
        bar_ms = statistics.median(self._bar_ms)
        if bar_ms >= 12 * 3_600_000:
            return 252.0
        return 252 * 23_400_000 / max(bar_ms, 1.0)

    def update(self, outcomes: list[dict[str, Any]]) -> int:
        """Add a batch of outcomes; returns how many were used."""
        used = 0
        for outcome in outcomes:
            key = (str(outcome["model_name"]), str(outcome["model_version"]))
            win = self.models.get(key)
            if win is None:
                win = self.models[key] = ModelWindow(self.window)
                self._evicted.discard(key)
            before = win.n_total
            span = int(outcome.get("realized_ts", 0)) - int(outcome.get("ts", 0))
            horizon = int(outcome.get("horizon", 1) or 1)
            if span > 0:
                self._bar_ms.append(span / horizon)
            win.add(outcome, self.notional_usd)
            used += win.n_total - before
        if self.max_age_ms is not None and self.models:
            cutoff = max(w.last_ts for w in self.models.values()) - self.max_age_ms
            for win in self.models.values():
                win.evict_older_than(cutoff)
        self._bound()
        return used

    def _bound(self) -> None:
        while len(self.models) > self.max_models:
            stalest = min(self.models, key=lambda k: self.models[k].last_ts)
            del self.models[stalest]
            self._evicted.add(stalest)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Metrics of every tracked version, keyed ``"<model>:<version>"`` (for the API)."""
        out: dict[str, dict[str, Any]] = {}
        for (name, version), win in sorted(self.models.items()):
            row: dict[str, Any] = {"model": name, "version": version, "role": win.role,
                                   "n_total": win.n_total, "last_ts": win.last_ts,
                                   "daily_pnl_usd": win.day_pnl}  # fmt: skip
            row.update(win.summary(self.annualisation()))
            out[f"{name}:{version}"] = row
        return out

    def export(self, metrics: Metrics) -> None:
        """Set the model and business gauges; remove series of versions no longer tracked.

        ``model_accuracy{model_version="<model>:<version>"}``,
        ``tickcast_model_log_loss{model,version}``, and per model name (its latest version)
        ``portfolio_sharpe_ratio``, ``portfolio_max_drawdown``, ``daily_pnl_usd``.
        """
        for name, version in self._evicted:
            _remove(metrics.model_accuracy, f"{name}:{version}")
            _remove(metrics.model_log_loss, name, version)
        self._evicted.clear()
        latest: dict[str, dict[str, Any]] = {}
        for row in self.snapshot().values():
            if row["n"] > 0:
                metrics.model_accuracy.labels(model_version=f"{row['model']}:{row['version']}").set(
                    row["accuracy"]
                )
                metrics.model_log_loss.labels(model=row["model"], version=row["version"]).set(
                    row["log_loss"]
                )
            best = latest.get(row["model"])
            if best is None or row["last_ts"] > best["last_ts"]:
                latest[row["model"]] = row
        for name, row in latest.items():
            metrics.set_portfolio(
                name,
                sharpe=_finite(row["sharpe"]),
                max_drawdown=_finite(row["max_drawdown"]),
                pnl=row["daily_pnl_usd"],
            )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _remove(gauge: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
