"""What the console's pages read beyond the latest state: ClickHouse history (through the
sink's read endpoint for embedded chDB), the worker's metrics, lag, and backtest reports.

Blocking reads run in worker threads behind the history circuit breaker, so a dead
ClickHouse costs a page a bounded wait and an error line, never the API.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.parser import text_string_to_metric_families

from sinks import history as ch
from sinks.history import open_reader
from sinks.redis_keys import feature_key
from tickcast.config import Settings
from tickcast.errors import DependencyError, TickcastError

if TYPE_CHECKING:
    from serving.runtime import Runtime

log = structlog.get_logger("serving.console")
DAY_MS = 86_400_000
#: Symbols the symbol index lists at most.
MAX_SYMBOLS = 500


class ConsoleReader:
    """ClickHouse reads of the console, one client per worker thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = open_reader(self.settings)
            self._local.client = client
        return client

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(client, database, *args, **kwargs)``; a failure drops the thread's client."""
        try:
            return fn(self._client(), self.settings.clickhouse_database, *args, **kwargs)
        except TickcastError:
            raise
        except Exception as exc:  # the driver's errors vary; the client may be broken
            self._local.client = None
            raise DependencyError("clickhouse", f"console query failed: {exc}"[:300]) from exc


async def _query(
    runtime: Runtime, reader: ConsoleReader, fn: Any, *args: Any, **kwargs: Any
) -> Any:
    return await runtime.history.breaker.call(asyncio.to_thread, reader.call, fn, *args, **kwargs)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


async def known_symbols(runtime: Runtime) -> list[str]:
    """Symbols with a feature row in Redis (at most :data:`MAX_SYMBOLS`, sorted)."""
    empty = feature_key(runtime.settings.redis_key_prefix, "")
    pattern = empty + "*"
    found: set[str] = set()

    async def scan() -> None:
        async for key in runtime.clients.redis.scan_iter(match=pattern, count=1000):
            found.add((key if isinstance(key, str) else key.decode()).removeprefix(empty))
            if len(found) >= MAX_SYMBOLS:
                return

    try:
        await runtime.redis_breaker.call(scan)
    except TickcastError as exc:
        log.warning("console_symbols_unavailable", error=str(exc)[:200])
    return sorted(found)


async def series(
    runtime: Runtime, reader: ConsoleReader, symbol: str, days: int, end_ms: int | None
) -> dict[str, Any]:
    """Closes, champion P(up) and outcomes of ``symbol`` over ``days`` ending at ``end_ms``."""
    if end_ms is None:
        latest = await runtime.store.get_prediction(symbol)
        end_ms = int(latest["event_time"]) + 1 if latest else int(time.time() * 1000) + 1
    start_ms = max(0, end_ms - days * DAY_MS)
    try:
        bars = await _query(runtime, reader, ch.price_bars, symbol, start_ms, end_ms)
        preds = await _query(runtime, reader, ch.champion_series, symbol, start_ms, end_ms)
    except TickcastError as exc:
        return {"symbol": symbol, "error": str(exc)[:300], "start_ms": start_ms, "end_ms": end_ms}
    return {
        "symbol": symbol,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "price": {"ts": [r["ts_ms"] for r in bars], "close": [_finite(r["close"]) for r in bars]},
        "predictions": {
            "ts": [r["ts_ms"] for r in preds],
            "prob_up": [_finite(r["prob_up"]) for r in preds],
            "hit": [None if r["hit"] is None else int(r["hit"]) for r in preds],
            "model": [f"{r['model_name']} v{r['model_version']}" for r in preds],
        },
    }


async def model_events(runtime: Runtime, reader: ConsoleReader) -> dict[str, Any]:
    """The latest model events, or the reason they cannot be read."""
    try:
        return {"rows": await _query(runtime, reader, ch.model_events, limit=50), "error": None}
    except TickcastError as exc:
        return {"rows": [], "error": str(exc)[:300]}


async def drift_grid(runtime: Runtime, reader: ConsoleReader) -> dict[str, Any]:
    """PSI per feature (rows) and window (columns) of the latest windows."""
    try:
        rows = await _query(runtime, reader, ch.drift_grid, windows=24)
    except TickcastError as exc:
        return {"features": [], "windows": [], "cells": {}, "error": str(exc)[:300]}
    windows = sorted({int(r["window_ms"]) for r in rows})
    features = sorted({str(r["feature"]) for r in rows})
    cells = {
        f"{r['feature']}|{int(r['window_ms'])}": {
            "psi": _finite(r["psi"]), "ks": _finite(r["ks"]), "n": int(r["n"]),
            "level": str(r["level"]),
        }
        for r in rows
    }  # fmt: skip
    return {"features": features, "windows": windows, "cells": cells, "error": None}


def _dependencies(metrics_text: str) -> tuple[dict[str, bool], bool | None]:
    up: dict[str, bool] = {}
    degraded: bool | None = None
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "tickcast_dependency_up":
                up[sample.labels.get("component", "?")] = sample.value >= 1
            elif sample.name == "tickcast_degraded":
                degraded = bool(degraded) or sample.value >= 1
    return up, degraded


def _stream_state(settings: Settings) -> dict[str, Any]:
    from monitoring.summary import fetch_metrics, summary

    try:
        text = fetch_metrics(settings.worker_metrics_url, timeout_s=3.0)
    except TickcastError as exc:
        state = summary(settings, "")
        state["metrics_error"] = f"the worker's metrics do not answer: {exc}"[:300]
        state["dependencies"], state["degraded"] = {}, None
        return state
    state = summary(settings, text)
    state["metrics_error"] = None
    state["dependencies"], state["degraded"] = _dependencies(text)
    return state


async def stream_state(runtime: Runtime) -> dict[str, Any]:
    """The worker's figures (:func:`monitoring.summary.summary`) plus its dependency gauges."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_stream_state, runtime.settings), 20.0)
    except TimeoutError:
        return {"metrics_error": "the worker's metrics and the broker did not answer in 20 s"}


def reports_dir(settings: Settings) -> Path:
    """Where backtest reports are looked for."""
    return settings.backtest_reports_dir or settings.data_dir / "backtests"


_REPORT = re.compile(r"^backtest_[A-Za-z0-9_.-]{1,120}$")
#: Headline metrics of the report list, in order.
HEADLINE = ("sharpe", "annualized_return", "max_drawdown", "hit_rate", "turnover")


def backtest_reports(settings: Settings) -> list[dict[str, Any]]:
    """Every ``backtest_*.json`` under the reports folder with its headline metrics, newest
    first (an unreadable file is listed with its error)."""
    root = reports_dir(settings)
    found = sorted(root.glob("**/backtest_*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    out: list[dict[str, Any]] = []
    for path in found[:200]:
        entry: dict[str, Any] = {"name": path.stem, "modified": int(path.stat().st_mtime)}
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            entry["runs"] = _headlines(report)
        except (OSError, ValueError) as exc:
            entry["error"] = f"unreadable: {exc}"[:200]
        entry["has_html"] = path.with_suffix(".html").is_file()
        out.append(entry)
    return out


def _headlines(report: dict[str, Any]) -> list[dict[str, Any]]:
    runs = report.get("metrics") or {}
    rows: list[dict[str, Any]] = []
    for name, metrics in runs.items() if isinstance(runs, dict) else ():
        if isinstance(metrics, dict):
            rows.append({"run": str(name), **{k: metrics.get(k) for k in HEADLINE}})
    return rows


def backtest_report_path(settings: Settings, name: str) -> Path | None:
    """The HTML report called ``name`` under the reports folder, or None (no path escapes)."""
    if not _REPORT.fullmatch(name):
        return None
    root = reports_dir(settings).resolve()
    for path in root.glob(f"**/{name}.html"):
        if path.resolve().is_relative_to(root):
            return path
    return None
