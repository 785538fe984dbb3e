"""Backtest plumbing without services: offset search, run ids, namespaces, the command line."""

from __future__ import annotations

import bisect
import doctest
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import backtesting.cli as cli
import backtesting.replay as replay
import backtesting.runner as runner
from backtesting.config import SignStrategy, ThresholdStrategy, TopBottomKStrategy
from backtesting.replay import PartitionRange, Probe, find_range, in_order_within, monotonic
from tickcast.config import Settings
from tickcast.errors import ConfigError


class FakeReader:
    """One partition: ``ts[i]`` is the event time at offset ``low + i`` (None: undecodable);
    offsets in ``gaps`` hold no record (e.g. transaction markers)."""

    def __init__(self, ts: list[int | None], low: int = 0, gaps: set[int] | None = None) -> None:
        self.ts, self.low, self.gaps = ts, low, gaps or set()
        self.calls = 0

    def read(self, partition: int, offset: int, high: int) -> Probe | None:
        self.calls += 1
        for o in range(max(offset, self.low), high):
            value = self.ts[o - self.low]
            if o not in self.gaps and value is not None:
                return (o, value)
        return None


def reference(ts: list[int | None], low: int, from_ms: int, to_ms: int) -> tuple[int, int]:
    """Independent answer for sorted ``ts``: bisect over the decodable records."""
    known = [(low + i, t) for i, t in enumerate(ts) if t is not None]
    times = [t for _, t in known]
    first = bisect.bisect_left(times, from_ms)
    last = bisect.bisect_right(times, to_ms)
    if first >= last:
        return (-1, -1)
    return known[first][0], known[last - 1][0] + 1


@pytest.mark.parametrize("seed", range(25))
def test_binary_search_matches_bisect_on_sorted_partitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    ts = np.sort(rng.integers(0, 500, n)).tolist()  # many equal stamps
    low = int(rng.integers(0, 1000))
    for _ in range(20):
        a, b = sorted(rng.integers(-10, 510, 2).tolist())
        reader = FakeReader(ts, low)
        got = find_range(reader, 3, low, low + n, a, b)
        want = reference(ts, low, a, b)
        assert not got.linear
        assert got.partition == 3
        if want == (-1, -1):
            assert got.size == 0
        else:
            assert (got.start, got.end) == want
            assert all(a <= ts[o - low] <= b for o in range(got.start, got.end))
        assert reader.calls <= 2 * math.ceil(math.log2(n + 1)) + 2


def test_search_skips_gaps_and_undecodable_records() -> None:
    ts: list[int | None] = [10, None, 20, 20, None, 30, 40, None, 50]
    reader = FakeReader(ts, low=100, gaps={103})
    got = find_range(reader, 0, 100, 109, 20, 40)
    # the first record at or after the bound's offset: 102 (ts 20); last kept 106 (ts 40)
    assert (got.start, got.end, got.linear) == (101, 107, False)
    records = [(o, ts[o - 100]) for o in range(got.start, got.end) if o != 103]
    assert all(t is None or 20 <= t <= 40 for _, t in records)


def test_empty_and_inverted_ranges() -> None:
    assert find_range(FakeReader([]), 0, 5, 5, 0, 10).size == 0
    assert find_range(FakeReader([1, 2, 3]), 0, 0, 3, 9, 1).size == 0
    everything = find_range(FakeReader([1, 2, 3]), 0, 0, 3, 0, 99)
    assert (everything.start, everything.end) == (0, 3)
    none_after = find_range(FakeReader([1, 2, 3]), 0, 0, 3, 50, 99)
    assert none_after.size == 0


def test_non_monotonic_partition_falls_back_to_linear_scan() -> None:
    ts: list[int | None] = [50, 60, 70, 10, 20, 30, 40, 80, 90]
    got = find_range(FakeReader(ts), 1, 0, len(ts), 15, 45)
    assert got == PartitionRange(1, 0, len(ts), linear=True, probes=got.probes)


def test_monotonic_and_copy_checks() -> None:
    assert monotonic([(3, 5), (1, 1), (2, 5)])
    assert not monotonic([(1, 7), (2, 6)])
    assert monotonic([(1, 7), (2, None), (3, 7)])
    msgs = [(b"k", b"v", None, ts, i, None) for i, ts in enumerate([10, None, 12, 12, 15])]
    assert in_order_within(msgs, 10, 15)
    assert not in_order_within(msgs, 11, 15)  # a record before the range
    assert not in_order_within(msgs, 10, 14)  # a record after it
    swapped = [msgs[0], msgs[2], msgs[4], msgs[3]]
    assert not in_order_within(swapped, 10, 15)


def test_bars_frame_dedupes_and_uses_price_for_trades() -> None:
    trades = pd.DataFrame(
        {"symbol": ["B", "A", "A"], "ts_ms": [2, 1, 1], "price": [3.0, 1.0, 2.0], "volume": 1.0}
    )
    bars = replay.bars_frame(trades)
    assert bars.to_dict("list") == {"symbol": ["A", "B"], "ts_ms": [1, 2], "close": [2.0, 3.0]}


def test_load_frame_cuts_range_and_symbols(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "symbol": ["C", "A", "B", "A", "C"],
            "ts_ms": [1000, 2000, 2000, 3000, 4000],
            "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0,
        }
    )  # fmt: skip
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    got = replay.load_frame(str(path), from_ms=2000, to_ms=4000, symbols=2, cache_dir=tmp_path)
    assert sorted(zip(got["symbol"], got["ts_ms"], strict=True)) == [
        ("A", 2000), ("A", 3000), ("B", 2000),
    ]  # fmt: skip
    with pytest.raises(Exception, match="neither 'topic'"):
        replay.load_frame(str(tmp_path / "missing.csv"))
    assert replay.source_label(str(path)) == "backtest:bars.csv"


# --------------------------------------------------------------------------- run ids


def test_new_run_id_format_and_uniqueness() -> None:
    stamp = datetime(2024, 5, 1, 13, 4, 5, tzinfo=UTC)
    assert runner.new_run_id(stamp, "abcdef") == "bt-20240501T130405Z-abcdef"
    ids = {runner.new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(runner.RUN_ID_PATTERN.match(i) and i.startswith("bt-") for i in ids)


def test_run_settings_isolate_every_namespace_part() -> None:
    base = Settings()
    ns = runner.run_settings(base, "bt-x-123456")
    assert ns.topic("ticks") == "bt-x-123456.ticks"
    assert ns.consumer_group == "bt-x-123456"
    assert ns.redis_key_prefix == "bt-x-123456:"
    assert ns.sink_run_id == "bt-x-123456"
    assert ns.topic_prefix != base.topic_prefix
    assert ns.kafka_bootstrap == base.kafka_bootstrap
    assert ns.clickhouse_database == base.clickhouse_database  # rows are told apart by run_id


@pytest.mark.parametrize("bad", ["", "ab", "bt.run", "bt:run", "-bt", "bt run", "x" * 101])
def test_illegal_run_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="run id"):
        runner.check_run_id(bad, Settings())


def test_run_id_must_not_collide_with_the_base_namespace() -> None:
    base = Settings(consumer_group="tickcast", topic_prefix="", redis_key_prefix="tcx:")
    with pytest.raises(ConfigError, match="consumer group"):
        runner.check_run_id("tickcast", base)
    with pytest.raises(ConfigError, match="Redis key prefix"):
        runner.check_run_id("tcx", base)
    prod = Settings(consumer_group="prod-a", topic_prefix="prod.", redis_key_prefix="p:")
    with pytest.raises(ConfigError, match="consumer group"):
        runner.check_run_id("prod", prod)  # cleanup would delete prod-* groups
    assert runner.check_run_id("bt-ok-1", base) == "bt-ok-1"


def test_model_set_is_frozen_for_the_run() -> None:
    ns = runner.run_settings(Settings(), "bt-x-123456", "m", ("3", "5"))
    assert ns.model_name == "m"
    assert ns.model_versions == "3,5"  # the worker scores exactly these (MlflowSource.watch)
    assert ns.model_poll_interval_s >= 1e9
    assert ns.online_shadow_models == ""
    frozen = set(runner.FROZEN_MODEL_SET)
    assert runner.model_overrides(None, (), frozen) == runner.FROZEN_MODEL_SET


def test_model_overrides_only_set_known_fields() -> None:
    both = {"model_name", "model_versions"}
    assert runner.model_overrides("m", ("7", "8"), both) == {
        "model_name": "m", "model_versions": "7,8",
    }  # fmt: skip
    assert runner.model_overrides("m", (), both) == {"model_name": "m"}
    assert runner.model_overrides(None, ("7",), both) == {}
    assert runner.model_overrides("m", ("7",), set()) == {}
    assert runner.model_overrides("m", ("7",), {"model_name", "model_version"}) == {
        "model_name": "m", "model_version": "7",
    }  # fmt: skip


# --------------------------------------------------------------------------- evaluation


def _bars(n_symbols: int = 4, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        (f"S{s}", 1_000 + i, float(c))
        for s in range(n_symbols)
        for i, c in enumerate(50 * np.exp(np.cumsum(rng.normal(0, 0.01, n))))
    ]
    return pd.DataFrame(rows, columns=["symbol", "ts_ms", "close"])


def test_evaluate_run_without_predictions_reports_baselines_with_a_note() -> None:
    empty = pd.DataFrame(columns=list(runner.PREDICTION_COLUMNS))
    report, note = runner.evaluate_run(empty, _bars(), runner.BacktestRequest(model="m"))
    assert "features-only" in note
    assert "m:*" in note
    assert "buy_and_hold" in report.runs
    assert {r.model_name for r in report.runs.values()} >= {"always_up", "prev_return_sign"}


def test_evaluate_run_selects_the_requested_versions() -> None:
    bars = _bars()
    rng = np.random.default_rng(1)
    preds = pd.DataFrame(
        [
            (s, t, name, v, float(rng.uniform()))
            for s, t in zip(bars["symbol"], bars["ts_ms"], strict=True)
            for name, v in (("m", "1"), ("m", "2"), ("other", "1"))
        ],
        columns=["symbol", "ts", "model_name", "model_version", "prob_up"],
    )
    request = runner.BacktestRequest(model="m", versions=("1", "2"))
    report, note = runner.evaluate_run(preds, bars, request)
    assert note == ""
    models = {(r.model_name, r.model_version) for r in report.runs.values() if r.kind == "model"}
    assert models == {("m", "1"), ("m", "2")}


# --------------------------------------------------------------------------- command line


def test_parse_time_bounds() -> None:
    assert cli.parse_time("2010-01-04") == 1_262_563_200_000
    assert cli.parse_time("2010-01-04", end=True) == 1_262_563_200_000 + 86_400_000 - 1
    assert cli.parse_time("2010-01-04T21:00:00Z", end=True) == 1_262_638_800_000
    with pytest.raises(ConfigError):
        cli.parse_time("yesterday-ish")


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("sign", SignStrategy()),
        ("sign:long", SignStrategy(long_only=True)),
        ("threshold", ThresholdStrategy(p_hi=0.55, p_lo=0.45)),
        ("threshold:0.6:0.3", ThresholdStrategy(p_hi=0.6, p_lo=0.3)),
        ("threshold:0.7", ThresholdStrategy(p_hi=0.7, p_lo=0.3)),
        ("topk:10", TopBottomKStrategy(k=10)),
        ("topk:3:long", TopBottomKStrategy(k=3, long_only=True)),
        ("TOP_BOTTOM_K", TopBottomKStrategy(k=5)),
    ],
)
def test_parse_strategy(text: str, want: Any) -> None:
    assert cli.parse_strategy(text) == want


@pytest.mark.parametrize(
    "bad", ["", "momentum", "threshold:0.4:0.6", "threshold:1.5", "threshold:x", "topk:0",
            "topk:ten", "sign:3"],
)  # fmt: skip
def test_bad_strategies_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        cli.parse_strategy(bad)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[runner.BacktestRequest]:
    seen: list[runner.BacktestRequest] = []

    def fake_run(settings: Settings, request: runner.BacktestRequest, console: Any) -> Any:
        seen.append(request)
        return runner.BacktestOutcome(
            request.run_id or "bt-fake", Path("."), 0, pd.DataFrame(columns=["x"]), None
        )

    monkeypatch.setattr(cli, "run_backtest", fake_run)
    return seen


def _mounted() -> typer.Typer:
    """The sub-app as the lead mounts it: ``tickcast backtest ...``."""
    root = typer.Typer()

    @root.command()
    def other() -> None: ...

    root.add_typer(cli.app, name="backtest")
    return root


def test_cli_builds_the_request(captured: list[runner.BacktestRequest], tmp_path: Path) -> None:
    config = tmp_path / "bt.yaml"
    config.write_text("cost_bps: 5\nstrategies: [{kind: sign}]\n")
    args = [
        "backtest", "--from", "2010-01-04", "--to", "2010-06-30", "--source", "sp500-daily",
        "--model", "m", "--version", "3", "--version", "4", "--version", "3",
        "--strategy", "threshold:0.6:0.4", "--strategy", "topk:10", "--config", str(config),
        "--run-id", "bt-mine", "--keep", "--symbols", "20", "--no-mlflow",
    ]  # fmt: skip
    result = CliRunner().invoke(_mounted(), args)
    assert result.exit_code == 0, result.output
    (req,) = captured
    assert req.source == "sp500-daily"
    assert req.from_ms == cli.parse_time("2010-01-04")
    assert req.to_ms == cli.parse_time("2010-06-30", end=True)
    assert (req.model, req.versions, req.run_id, req.keep, req.symbols) == (
        "m", ("3", "4"), "bt-mine", True, 20,
    )  # fmt: skip
    assert not req.log_mlflow
    assert req.config.cost_bps == 5  # from the file
    assert [s.label for s in req.config.strategies] == ["threshold_0.6_0.4", "top10_bottom10"]


def test_cli_defaults(captured: list[runner.BacktestRequest]) -> None:
    result = CliRunner().invoke(_mounted(), ["backtest"])
    assert result.exit_code == 0, result.output
    (req,) = captured
    assert (req.source, req.from_ms, req.to_ms, req.run_id, req.keep) == (
        "topic", None, None, None, False,
    )  # fmt: skip
    assert [s.label for s in req.config.strategies] == ["sign"]
    assert req.log_mlflow


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "3"], "--version needs --model"),
        (["--from", "2010-02-01", "--to", "2010-01-01"], "is after"),
        (["--strategy", "nope"], "strategy 'nope'"),
    ],
)
def test_cli_refuses_bad_arguments(
    captured: list[runner.BacktestRequest], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(_mounted(), ["backtest", *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
    assert not captured


def test_doctests() -> None:
    for module in (replay, runner, cli):
        assert doctest.testmod(module).failed == 0


def test_reset_refuses_the_default_consumer_group() -> None:
    """Its groups and Faust topics are <group>-*: with the default that is production's and
    every other namespace's (a reset once deleted tickcast-demo's groups this way)."""
    from backtesting.namespace import reset_namespace
    from tickcast.errors import ConfigError

    scratch = Settings(topic_prefix="scratch.", redis_key_prefix="scratch:")
    with pytest.raises(ConfigError, match="default consumer group 'tickcast'"):
        reset_namespace(scratch)
