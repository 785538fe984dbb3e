"""The per-tick work every peer runs: tickcast's own decode, checks, validation, indicators.

Pure and framework-free, so the unit tests import it from the project's environment
(tests/unit/benchmarks/test_peer_transform.py checks it against
:class:`agents.feature_engine.FeatureEngine`) while the peer apps run it inside Quix Streams
or Bytewax. :meth:`PeerTransform.step` is the body of ``FeatureEngine.process`` for one
record, in the same order, with the state handed in and out by the framework's own state
(a dict, Quix's ``State``, Bytewax's ``stateful_map``) instead of a loader.
"""

from __future__ import annotations

from typing import NamedTuple

from agents.feature_engine import SymbolStream
from indicators.bar import Bar
from indicators.errors import InvalidBarError
from indicators.feature_sets import feature_set
from sinks.feature_blob import encode
from streams.hot_codec import TickDecoder
from streams.validation import SymbolGuard, ValidationRules, check_key, check_symbol, validate
from tickcast.errors import SchemaError

#: The indicator layer's refusals as dead-letter reasons (as agents.feature_engine maps them).
BAR_REASONS = {
    "non_finite": "BAD_PRICE",
    "non_positive_price": "BAD_PRICE",
    "not_a_number": "BAD_PRICE",
    "high_below_low": "BAD_RANGE",
    "negative_volume": "NEGATIVE_VOLUME",
    "duplicate": "DUPLICATE",
    "out_of_order": "OUT_OF_ORDER",
}


class Features(NamedTuple):
    """One tick's feature vector."""

    symbol: str
    ts: int
    values: list[float]


class Refusal(NamedTuple):
    """A tick tickcast would dead-letter (``reason`` is the dead-letter reason code)."""

    reason: str
    detail: str


Outcome = Features | Refusal | None
"""``None``: a redelivered tick the state already holds (skipped, as the engine does)."""


class PeerTransform:
    """Decode → key/symbol checks → validation → indicator update, one tick at a time."""

    def __init__(self, feature_set_name: str, rules: ValidationRules | None = None) -> None:
        self.feature_set = feature_set(feature_set_name)
        self.version = self.feature_set.version
        self.rules = rules or ValidationRules()
        self.decode = TickDecoder().decode
        self.partition_latest: dict[int, int] = {}
        """The FUTURE_TIMESTAMP reference per partition (in memory, as the engine keeps it)."""

    def new_state(self) -> SymbolStream:
        """A fresh symbol state (the engine's own type, so snapshots are the same size)."""
        return SymbolStream(
            SymbolGuard(window=self.rules.outlier_window), self.feature_set.new_state()
        )

    def step(
        self,
        state: SymbolStream | None,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        offset: int,
        now_ms: int,
    ) -> tuple[SymbolStream | None, Outcome]:
        """Apply one record to its symbol's ``state`` (``None``: none yet); the new state and
        what came out. A refused symbol or key never creates a state."""
        try:
            if value is None:
                raise SchemaError("UNDECODABLE", "empty (tombstone) payload")
            tick = self.decode(value)
        except SchemaError as exc:
            return state, Refusal(exc.reason, str(exc))
        symbol = tick["symbol"]
        refused = check_symbol(symbol, self.rules) or check_key(key, symbol)
        if refused is not None:
            return state, Refusal(*refused)
        latest = self.partition_latest
        if state is None:
            state = self.new_state()
        elif partition == state.partition and offset <= state.last_offset:
            return state, None
        problem = validate(tick, state.guard, self.rules, now_ms, latest.get(partition, -1))
        state.partition = partition
        state.last_offset = offset
        if problem is not None:
            return state, Refusal(*problem)
        bar = Bar(
            tick["ts"],
            tick["open"],
            tick["high"],
            tick["low"],
            tick["close"],
            tick["volume"],
            tick["bid"],
            tick["ask"],
            tick["bid_size"],
            tick["ask_size"],
        )
        try:
            values = state.features.update(bar, same_ts_ok=True)
        except InvalidBarError as exc:
            return state, Refusal(BAR_REASONS.get(exc.reason, "OTHER"), str(exc))
        state.last_ts = tick["ts"]
        state.last_values = values
        if state.last_ts > latest.get(partition, -1):
            latest[partition] = state.last_ts
        return state, Features(symbol, tick["ts"], values)

    def blobs(self, latest: dict[str, Features], now_ms: int) -> dict[str, bytes]:
        """Each symbol's Redis value (:mod:`sinks.feature_blob`), as the worker writes it."""
        return {s: encode(f.ts, now_ms, self.version, f.values) for s, f in latest.items()}
