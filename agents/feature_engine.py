"""The pure heart of the feature stage: a micro-batch of raw ticks in, features out.

No I/O here: a runner (the Faust agent, a replay, a backtest) hands in raw records and a
way to load a symbol's state, and takes back feature records, dead letters and the states
to persist. Per event the work is decode → validate → O(1) indicator updates; everything
that costs a round trip (state writes, Redis, produces) happens once per batch outside.

Exactly-once state: every symbol's state remembers the offset of the last tick it applied
(offsets are per partition and a symbol lives in one partition), so a tick redelivered
after a crash is recognised and skipped instead of being counted twice.

Hostile input is refused before it can hurt: a symbol that fails the configured pattern
(BAD_SYMBOL) or a record whose Kafka key is missing or is not its symbol (KEY_MISMATCH) is
dead-lettered before any state is loaded or created; a tick too far ahead of
max(wall clock, the partition's latest accepted event time) is FUTURE_TIMESTAMP and leaves
the symbol's state and the partition's clock alone (one tick stamped 2100 would otherwise
turn every later good tick into OUT_OF_ORDER).

A loaded state of another feature set (a worker restarted with a new set) keeps its guard,
offsets and ``extra`` but starts the new set's indicators afresh, so the records never
carry one set's values under another's version (``BatchOutput.reset_states`` counts them).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from indicators.alpha158 import Alpha158
from indicators.alpha158.rows import BatchRows
from indicators.bar import Bar
from indicators.columns import ClassicColumns, covers
from indicators.errors import InvalidBarError
from indicators.feature_set import FeatureSet
from schemas.records import FeatureVector, Tick
from streams.codec import AvroCodec
from streams.hot_codec import TickDecoder
from streams.raw_record import RawRecord
from streams.validation import (
    SymbolGuard,
    ValidationRules,
    check_key,
    check_symbol,
    validate,
)
from tickcast.errors import SchemaError


@dataclass
class SymbolStream:
    """Everything the feature stage remembers about one symbol (small, picklable)."""

    guard: SymbolGuard
    features: Any
    partition: int = -1
    last_offset: int = -1
    last_ts: int = -1
    last_values: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """State of later stages of the same symbol (e.g. the outcome joiner), saved with it."""

    def dumps(self) -> bytes:
        """Serialise for the state store."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(payload: bytes) -> SymbolStream:
        """Inverse of :meth:`dumps`."""
        state = pickle.loads(payload)
        if not isinstance(state, SymbolStream):
            raise TypeError("not a SymbolStream")
        return state


@dataclass
class BatchOutput:
    """What one micro-batch produced."""

    features: list[FeatureVector] = field(default_factory=list)
    closes: list[float] = field(default_factory=list)
    """The close of the tick behind each feature record (same order as ``features``)."""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[str, SymbolStream] = field(default_factory=dict)
    first_offsets: dict[str, int] = field(default_factory=dict)
    """Per symbol, the offset of the batch's first tick that changed its state: a rolling
    checkpoint may commit no further until a snapshot covering it is durable."""
    skipped_replayed: int = 0
    reset_states: int = 0
    """Loaded states of another feature set whose indicators started afresh."""

    def latest(self) -> dict[str, FeatureVector]:
        """Each symbol's last feature record of the batch (for the serving copy)."""
        return {record["symbol"]: record for record in self.features}


#: Reasons of the indicator layer's own refusals, as dead-letter reason codes.
_BAR_REASONS = {
    "non_finite": "BAD_PRICE",
    "non_positive_price": "BAD_PRICE",
    "not_a_number": "BAD_PRICE",
    "high_below_low": "BAD_RANGE",
    "negative_volume": "NEGATIVE_VOLUME",
    "duplicate": "DUPLICATE",
    "out_of_order": "OUT_OF_ORDER",
}

StateLoader = Callable[[str, int], SymbolStream | None]


class SideColumns(Protocol):
    """Columns appended after the indicators (agents.side_inputs: macro, news, sectors)."""

    def extend(self, symbol: str, ts: int, close: float, extra: dict[str, Any]) -> list[float]:
        """The side values of ``symbol``'s bar at ``ts`` (``extra``: the symbol's saved state)."""
        ...


class FeatureEngine:
    """Decode, validate and featurise micro-batches of ticks."""

    def __init__(
        self,
        feature_set: FeatureSet,
        rules: ValidationRules | None = None,
        codec: AvroCodec | None = None,
        side: SideColumns | None = None,
    ) -> None:
        self.feature_set = feature_set
        self.side = side
        """When set, its columns follow the indicators' (``feature_set`` names them all)."""
        self.rules = rules or ValidationRules()
        # The struct-based decoder reads the current Tick schema; it hands any other writer
        # schema (or a damaged payload) to ``codec``/fastavro, so results are identical.
        self.codec = TickDecoder(codec)
        self.version = feature_set.version
        self.state_version = feature_set.new_state().version
        """The indicator state's version (the side columns' set shares its base's)."""
        self.held: dict[int, int] = {}
        """Per ticks partition, the first offset the last batch left unprocessed (the direct
        runner keeps the rest for its next turns, agents.held_records; agents.side_inputs:
        sector columns not final yet)."""
        self.partition_latest: dict[int, int] = {}
        self.alpha158: BatchRows | None = None
        """With :meth:`vectorise_alpha158`: the micro-batch's Alpha158 ticks, computed at once."""
        self.classic: ClassicColumns | None = None
        """With :meth:`vectorise_classic`: the classic indicators of every ready symbol as rows
        of columns, updated once per batch."""
        """Per partition of the ticks topic, the latest event time of an accepted tick (raised
        from a loaded symbol state's ``last_ts`` too): the FUTURE_TIMESTAMP reference."""

    def vectorise_alpha158(self) -> bool:
        """Update Alpha158 (if the set has it) once per batch, every tick in one numpy call
        from its symbol's last 61 bars (``TICKCAST_ALPHA158_ENGINE=vector``); values are the
        per-symbol indicator's bit for bit, snapshots unchanged. True when switched on."""
        if any(isinstance(i, Alpha158) for i in self.feature_set.new_state().indicators):
            self.alpha158 = BatchRows()
        return self.alpha158 is not None

    def vectorise_classic(self) -> bool:
        """Update the classic indicators of every warm symbol as rows of columns, once per
        batch (``TICKCAST_CLASSIC_ENGINE=vector``; indicators.columns): values are the
        per-symbol indicators' bit for bit, snapshots unchanged. True when switched on (a
        set of classic kinds only: the union with Alpha158 stays per symbol)."""
        if covers(self.feature_set):
            self.classic = ClassicColumns(self.feature_set)
        return self.classic is not None

    def new_state(self) -> SymbolStream:
        """A fresh symbol state."""
        return SymbolStream(
            SymbolGuard(window=self.rules.outlier_window), self.feature_set.new_state()
        )

    def close(self) -> None:
        """Release what the engine holds open (nothing here; the side engine's consumers)."""

    def process(self, records: Sequence[RawRecord], load: StateLoader, now_ms: int) -> BatchOutput:
        """Run one micro-batch; states come from ``load`` once and stay in ``out.touched``."""
        out = BatchOutput()
        touched = out.touched
        first_offsets = out.first_offsets
        decode = self.codec.decode
        rules = self.rules
        latest = self.partition_latest
        alpha = self.alpha158
        if alpha is not None:
            alpha.discard()  # nothing is left queued by a batch that failed half way
        classic = self.classic
        if classic is not None:
            classic.discard()  # nothing is left queued by a batch that failed half way
        for record in records:
            try:
                if record.value is None:
                    raise SchemaError("UNDECODABLE", "empty (tombstone) payload")
                tick = decode(record.value)
            except SchemaError as exc:
                out.dead_letters.append(self._dead(record, exc.reason, str(exc), now_ms, None))
                continue
            symbol = tick["symbol"]
            # Before any state is loaded: a garbage symbol or a record outside its symbol's
            # partition must never create or change a symbol's state.
            refused = check_symbol(symbol, rules) or check_key(record.key, symbol)
            if refused is not None:
                out.dead_letters.append(self._dead(record, refused[0], refused[1], now_ms, tick))
                continue
            partition = record.partition
            state = touched.get(symbol)
            if state is None:
                loaded = load(symbol, partition)
                if loaded is not None:
                    if getattr(loaded.features, "version", None) != self.state_version:
                        loaded.features = self.feature_set.new_state()  # another set's
                        loaded.last_values = []
                        out.reset_states += 1
                    if loaded.last_ts > latest.get(partition, -1):
                        latest[partition] = loaded.last_ts
                    state = loaded
                else:
                    state = self.new_state()
                touched[symbol] = state
                if alpha is not None:
                    alpha.attach(symbol, state.features)
            if partition == state.partition and record.offset <= state.last_offset:
                out.skipped_replayed += 1
                continue
            problem = validate(tick, state.guard, rules, now_ms, latest.get(partition, -1))
            state.partition = record.partition
            state.last_offset = record.offset
            if symbol not in first_offsets:
                first_offsets[symbol] = record.offset
            if problem is not None:
                out.dead_letters.append(self._dead(record, problem[0], problem[1], now_ms, tick))
                continue
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
                reason = _BAR_REASONS.get(exc.reason, "OTHER")
                out.dead_letters.append(self._dead(record, reason, str(exc), now_ms, tick))
                continue
            if self.side is not None:
                values = values + self.side.extend(symbol, tick["ts"], tick["close"], state.extra)
            if alpha is not None:
                alpha.bind(values)  # its Alpha158 block is inserted by flush() below
            if classic is not None:
                classic.after(symbol, state.features, values)  # filled in by flush() below
            state.last_ts = tick["ts"]
            state.last_values = values
            if state.last_ts > latest.get(partition, -1):
                latest[partition] = state.last_ts
            out.closes.append(tick["close"])
            out.features.append(
                {
                    "symbol": symbol,
                    "ts": tick["ts"],
                    "feature_set_version": self.version,
                    "values": values,
                    "source_topic": record.topic,
                    "source_partition": record.partition,
                    "source_offset": record.offset,
                    "correlation_id": tick["correlation_id"],
                }
            )
        if alpha is not None:
            alpha.flush()
        if classic is not None:
            classic.flush()
        return out

    @staticmethod
    def _dead(
        record: RawRecord, reason: str, detail: str, now_ms: int, tick: Tick | None
    ) -> dict[str, Any]:
        return {
            "source_topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "payload": record.value or b"",
            "reason": reason,
            "detail": detail[:1000],
            "failed_at": now_ms,
            "correlation_id": tick.get("correlation_id") if tick else None,
            "processor": "features",
            "event_ts": tick.get("ts") if tick else None,
        }


def is_ready(values: Sequence[float]) -> bool:
    """True when no feature is still warming up (no NaN)."""
    return not any(math.isnan(v) for v in values)
