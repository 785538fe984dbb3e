"""The worker's side columns, in process: records in any order, features equal the frame's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.feature_engine import SymbolStream
from agents.side_inputs import SideFeatureEngine, SideInputs
from devtools.synthetic.bars import random_walk_panel
from indicators import compute_frame
from indicators.feature_set import FeatureSet
from sidestreams.features import SideSpec
from sidestreams.frame import join_side
from sidestreams.sector import load_sector_map
from sidestreams.sources import MacroData, NewsFile, kafka_records
from streams.codec import get_codec
from streams.raw_record import RawRecord
from streams.replay import tick_records
from tickcast.config import Settings
from tickcast.metrics import Metrics

START = 1_243_886_400_000  # 2009-06-01T20:00Z: two GDP releases and the news fixture follow
NOW = 1_800_000_000_000  # wall clock for validation: after every tick
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "side"
SPEC = SideSpec(macro_series=("realgdp", "unemp"), half_life_hours=48.0, sectors=load_sector_map())
MACRO = MacroData(series=("realgdp", "unemp", "infl")).load().records
NEWS = NewsFile(FIXTURES / "news_headlines.jsonl").load().records


def _inputs() -> tuple[SideInputs, Metrics]:
    metrics = Metrics()
    return SideInputs(Settings(), SPEC, metrics), metrics


def _side_records() -> list[tuple[str, bytes, bytes]]:
    out = []
    for record in [*MACRO, *NEWS]:
        for topic, key, value in kafka_records(record):
            stem = "macro_observation" if topic == "macro" else "news_item"
            out.append((topic, key.encode(), get_codec(stem).encode(value)))
    return out


def _ticks(bars: pd.DataFrame) -> list[RawRecord]:
    codec = get_codec("Tick")
    return [
        RawRecord("ticks", 0, i, t["symbol"].encode(), codec.encode(t))
        for i, t in enumerate(tick_records(bars, "test"))
    ]


def test_outcomes_are_counted_and_bad_records_refused() -> None:
    inputs, metrics = _inputs()
    macro_codec, news_codec = get_codec("macro_observation"), get_codec("news_item")
    gdp = next(r for r in MACRO if r["series_id"] == "realgdp")
    infl = next(r for r in MACRO if r["series_id"] == "infl")
    item = NEWS[0]
    assert inputs.apply("macro", b"realgdp", macro_codec.encode(gdp)) == "applied"
    assert inputs.apply("macro", b"infl", macro_codec.encode(infl)) == "ignored"
    assert inputs.apply("macro", b"x", b"garbage") == "refused"
    assert inputs.apply("macro", b"x", None) == "refused"
    nan = {**gdp, "value": math.nan}
    assert inputs.apply("macro", b"realgdp", macro_codec.encode(nan)) == "refused"
    key = item["symbols"][0].encode()
    assert inputs.apply("news", key, news_codec.encode(item)) == "applied"
    assert inputs.apply("news", b"NOT-IT", news_codec.encode(item)) == "refused"
    inputs.extend(item["symbols"][0], item["published_at"] + 10, 1.0, {})
    assert inputs.apply("news", key, news_codec.encode(item)) == "late"
    count = metrics.value
    assert count("tickcast_side_records_total", topic="macro", outcome="refused") == 3
    assert count("tickcast_side_records_total", topic="news", outcome="late") == 1


class _Offline(SideInputs):
    """No broker: the records handed in are what 'arrived' before each batch."""

    def __init__(self, arrivals: list[list[tuple[str, bytes, bytes]]]) -> None:
        super().__init__(Settings(), SPEC, Metrics())
        self.arrivals = arrivals
        self.macro = self.news = object()  # type: ignore[assignment]

    def poll(self, owned: object) -> None:
        for kind, key, value in self.arrivals.pop(0) if self.arrivals else []:
            assert self.apply(kind, key, value) in {"applied", "ignored"}


@pytest.mark.parametrize("batches", [1, 7])
def test_live_columns_equal_the_training_frame(batches: int) -> None:
    bars = random_walk_panel(("AAPL", "MSFT", "XOM", "JPM"), 300, start_ts_ms=START)
    side = _side_records()
    side.reverse()  # arrival order does not matter while records come before their time
    engine = SideFeatureEngine(FeatureSet.default(), _Offline([side]))
    states: dict[str, SymbolStream] = {}
    got: list[tuple[str, int, list[float]]] = []
    ticks = _ticks(bars)
    for chunk in np.array_split(np.arange(len(ticks)), batches):
        out = engine.process([ticks[i] for i in chunk], lambda s, p: states.get(s), NOW)
        assert out.dead_letters == []
        states.update(out.touched)
        got += [(f["symbol"], f["ts"], f["values"]) for f in out.features]
    frame = join_side(compute_frame(bars), bars, SPEC, MACRO, NEWS)
    want = {
        (s, int(t)): row
        for s, t, row in zip(
            frame["symbol"], frame["ts_ms"], frame[list(engine.feature_set.names)].to_numpy(),
            strict=True,
        )
    }  # fmt: skip
    assert len(got) == len(want)
    for symbol, ts, values in got:
        np.testing.assert_array_equal(values, want[(symbol, ts)], err_msg=f"{symbol} {ts}")
    cols = pd.DataFrame([v[-len(SPEC.names) :] for _, _, v in got], columns=list(SPEC.names))
    assert cols["macro_realgdp"].nunique() == 3  # 2009Q1, Q2 and Q3 figures as published
    assert cols["news_sent_hl48h"].notna().sum() > 100
    assert cols["rel_sector_ret"].notna().mean() > 0.9
    assert engine.version != FeatureSet.default().version
    assert len(engine.feature_set.names) == len(FeatureSet.default().names) + len(SPEC.names)


def test_sector_returns_survive_a_restart_through_the_symbol_state() -> None:
    bars = random_walk_panel(("AAPL", "MSFT"), 50, start_ts_ms=1_199_188_800_000)
    ticks = _ticks(bars)
    first = SideFeatureEngine(FeatureSet.default(), _Offline([]))
    out = first.process(ticks[:60], lambda s, p: None, NOW)
    saved = {s: SymbolStream.loads(st.dumps()) for s, st in out.touched.items()}
    again = SideFeatureEngine(FeatureSet.default(), _Offline([]))
    resumed = again.process(ticks[60:], lambda s, p: saved.get(s), NOW)
    straight = SideFeatureEngine(FeatureSet.default(), _Offline([]))
    kept = straight.process(ticks[:60], lambda s, p: None, NOW).touched
    whole = {}
    for f in straight.process(ticks[60:], lambda s, p: kept.get(s), NOW).features:
        whole[(f["symbol"], f["ts"])] = f["values"]
    assert len(resumed.features) == 40
    # from the second symbol's first tick after the restart on, all symbols are back
    for f in resumed.features[2:]:
        np.testing.assert_array_equal(f["values"], whole[(f["symbol"], f["ts"])])
