"""Label join: turn predictions into outcomes when the bar ``h`` bars later arrives.

:class:`OutcomeJoiner` is the per-symbol state the stream pipeline embeds next to its
indicator state: pure, picklable and bounded. Feed it every bar of the symbol in event-time
order (:meth:`OutcomeJoiner.on_bar`) and the predictions made at those bars
(:meth:`OutcomeJoiner.add_predictions`); it returns an outcome record (an
:class:`~schemas.records.Outcome`) for a prediction made at bar ``t`` for horizon ``h`` exactly
when the ``h``-th bar *after* ``t`` arrives. Bars are counted, not wall-clock time.

Conventions (decided once, shared with ``training/labels.py``):

* ``realized_return = log(close[t+h] / close[t])`` — a **log** return, as the Avro contract
  says. Training labels use the simple return ``close[t+h] / close[t] - 1``; both have the
  same sign, so the direction label is identical.
* ``up = realized_return > 0``; a flat bar (return exactly 0) counts as *down*, as
  ``label = fwd_return > 0`` does in training.
* ``hit = (prob_up > 0.5) == up``: the predicted class is up only when ``prob_up > 0.5``.
* ``loss = -(up·log p + (1-up)·log(1-p))`` with ``p = clip(prob_up, eps, 1-eps)`` (nats).
* ``strategy_return = sign(prob_up - 0.5)·realized_return - cost`` where ``cost`` is
  ``cost_bps / 1e4`` per traded prediction (round trip); ``prob_up == 0.5`` does not trade
  and pays nothing.

Predictions may carry ``features`` (the prediction-time feature vector, a list of floats);
the outcome then carries it too, which is what the online learners learn from.

>>> j = OutcomeJoiner(horizons=(1,), cost_bps=0.0)
>>> j.on_bar(1, 100.0)
[]
>>> j.add_predictions([{"symbol": "A", "ts": 1, "horizon": 1, "prob_up": 0.7,
...     "expected_return": 0.0, "model_name": "m", "model_version": "1", "role": "CHAMPION"}])
[]
>>> [(o["realized_ts"], round(o["realized_return"], 6), o["hit"]) for o in j.on_bar(2, 101.0)]
[(2, 0.00995, True)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.records import Outcome

PendingKey = tuple[int, int, str, str, str]  # (ts, horizon, model_name, model_version, role)


def log_loss_one(prob_up: float, up: bool, eps: float = 1e-6) -> float:
    """Binary log loss (nats) of one probability against one label, ``p`` clipped.

    >>> round(log_loss_one(0.8, True), 6), round(log_loss_one(0.8, False), 6)
    (0.223144, 1.609438)
    """
    p = min(max(prob_up, eps), 1.0 - eps)
    return -math.log(p) if up else -math.log1p(-p)


def resolve(
    prediction: Mapping[str, Any],
    close_t: float,
    close_end: float,
    realized_ts: int,
    cost_bps: float = 0.0,
    eps: float = 1e-6,
) -> Outcome:
    """The outcome record of ``prediction`` given the closes at ``t`` and ``t + h``."""
    prob = float(prediction["prob_up"])
    realized = math.log(close_end / close_t)
    up = realized > 0.0
    position = (prob > 0.5) - (prob < 0.5)
    cost = cost_bps / 1e4 if position else 0.0
    outcome: Outcome = {
        "symbol": prediction["symbol"],
        "ts": int(prediction["ts"]),
        "horizon": int(prediction["horizon"]),
        "model_name": prediction["model_name"],
        "model_version": str(prediction["model_version"]),
        "role": prediction["role"],
        "prob_up": prob,
        "expected_return": float(prediction.get("expected_return", 0.0)),
        "realized_return": realized,
        "realized_ts": int(realized_ts),
        "hit": (prob > 0.5) == up,
        "loss": log_loss_one(prob, up, eps),
        "strategy_return": position * realized - cost,
    }
    # The nullable fields are carried only when the prediction has them.
    if (feature_set_version := prediction.get("feature_set_version")) is not None:
        outcome["feature_set_version"] = feature_set_version
    if (correlation_id := prediction.get("correlation_id")) is not None:
        outcome["correlation_id"] = correlation_id
    if (features := prediction.get("features")) is not None:
        outcome["features"] = features
    return outcome


class OutcomeJoiner:
    """Per-symbol bar counter and pending predictions; emits outcomes at bar ``t + h``.

    State is bounded: a ring of the last ``max(horizons) + 1`` bars ``(index, ts, close)``
    and at most ``max_pending`` pending predictions (the oldest are dropped beyond it and
    counted in ``dropped["overflow"]``). Rejected input is counted in :attr:`dropped` by
    reason, never raised: ``bad_close``, ``stale_bar`` (ts not after the last bar),
    ``bad_horizon``, ``bad_prob``, ``unknown_bar`` (prediction ts not among the kept bars).
    A prediction re-sent with the same ``(ts, horizon, model, version, role)`` replaces the
    pending one, so replays stay idempotent.
    """

    __slots__ = (
        "_bars", "_due", "_n_bars", "cost_bps", "dropped", "eps", "horizons", "max_pending",
    )  # fmt: skip

    def __init__(
        self,
        horizons: Iterable[int] = (1, 5),
        cost_bps: float = 1.0,
        eps: float = 1e-6,
        max_pending: int = 4096,
    ) -> None:
        self.horizons: tuple[int, ...] = tuple(sorted({int(h) for h in horizons}))
        if not self.horizons or self.horizons[0] < 1:
            raise ValueError(f"horizons must be positive integers, got {horizons!r}")
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.cost_bps = float(cost_bps)
        self.eps = float(eps)
        self.max_pending = int(max_pending)
        self._n_bars = 0
        # ring of (bar index, ts, close): enough to find bar t and to resolve late arrivals
        self._bars: deque[tuple[int, int, float]] = deque(maxlen=self.horizons[-1] + 1)
        # target bar index -> {pending key: (prediction, close at t)}
        self._due: dict[int, dict[PendingKey, tuple[dict[str, Any], float]]] = {}
        self.dropped: dict[str, int] = {}

    # --- state --------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of pending predictions."""
        return sum(len(bucket) for bucket in self._due.values())

    @property
    def n_bars(self) -> int:
        """Bars seen so far."""
        return self._n_bars

    @property
    def last_ts(self) -> int | None:
        """Event time of the last bar, or None before the first."""
        return self._bars[-1][1] if self._bars else None

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    # --- input --------------------------------------------------------------------------------
    def on_bar(self, ts: int, close: float) -> list[Outcome]:
        """Record a bar; return the outcomes it resolves (predictions made ``h`` bars ago)."""
        close = float(close)
        if not (math.isfinite(close) and close > 0.0):
            self._drop("bad_close")
            return []
        last = self.last_ts
        if last is not None and ts <= last:
            self._drop("stale_bar")
            return []
        index = self._n_bars
        self._n_bars += 1
        self._bars.append((index, int(ts), close))
        bucket = self._due.pop(index, None)
        if not bucket:
            return []
        return [
            resolve(pred, close_t, close, ts, self.cost_bps, self.eps)
            for pred, close_t in bucket.values()
        ]

    def add_predictions(self, predictions: Iterable[Mapping[str, Any]]) -> list[Outcome]:
        """Register predictions made at already-seen bars.

        Returns the outcomes of predictions whose label bar has *already* arrived (a late
        prediction whose bars ``t`` and ``t + h`` are both still in the ring); usually empty.
        """
        by_ts = {ts: (index, close) for index, ts, close in self._bars}
        ready: list[Outcome] = []
        for pred in predictions:
            horizon = int(pred.get("horizon", 0))
            if horizon not in self.horizons:
                self._drop("bad_horizon")
                continue
            prob = pred.get("prob_up")
            if not isinstance(prob, int | float) or not 0.0 <= float(prob) <= 1.0:
                self._drop("bad_prob")
                continue
            found = by_ts.get(int(pred["ts"]))
            if found is None:
                self._drop("unknown_bar")
                continue
            index, close_t = found
            target = index + horizon
            if target < self._n_bars:  # label bar already seen: resolve now
                _, end_ts, end_close = self._bars[target - self._bars[0][0]]
                ready.append(resolve(pred, close_t, end_close, end_ts, self.cost_bps, self.eps))
                continue
            key: PendingKey = (
                int(pred["ts"]),
                horizon,
                str(pred["model_name"]),
                str(pred["model_version"]),
                str(pred["role"]),
            )
            self._due.setdefault(target, {})[key] = (dict(pred), close_t)
        self._enforce_bound()
        return ready

    def _enforce_bound(self) -> None:
        excess = len(self) - self.max_pending
        while excess > 0:
            oldest = min(self._due)
            bucket = self._due[oldest]
            while bucket and excess > 0:
                bucket.pop(next(iter(bucket)))
                excess -= 1
                self._drop("overflow")
            if not bucket:
                del self._due[oldest]

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
