"""Benchmark: the console's page weight, time to first render and live-update latency.

Runs the real pipeline (``devtools.pipeline``: topics, worker, sink, API) in a throw-away
namespace, replays bars, then drives Debian's Chromium (Selenium, headless):

1. weight: bytes of each page's HTML plus the static files it loads (no compression);
2. first render: ``first-contentful-paint`` and ``domContentLoadedEventEnd`` of each page,
   from the browser's own Performance API, median of ``--loads`` loads per page;
3. live: ``--ticks`` bars produced one by one into Kafka (a warm producer) for the open
   symbol page; latency is produce time → the update's arrival in the page (``Date.now()``
   in the SSE handler; same machine, same clock; polled every 5 ms), p50 and p95.

Prints a JSON object on its last line.

    .venv/bin/python benchmarks/bench_console.py --loads 5 --ticks 40
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from devtools.browser import chromium
from devtools.pipeline import PASSWORD, Pipeline, pipeline
from devtools.synthetic.bars import random_walk_bars
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import publish, tick_records
from tickcast.config import Settings

PAGES = (
    "/console/symbols/SYM0",
    "/console/models",
    "/console/drift",
    "/console/stream",
    "/console/backtests",
    "/console/symbols",
)
STATIC = (
    "/console/static/console.css",
    "/console/static/console.js",
    "/console/static/vendor/uPlot.iife.min.js",
    "/console/static/vendor/uPlot.min.css",
)


def _bars(symbols: int, n: int) -> pd.DataFrame:
    frames = [
        random_walk_bars(n, seed=i, symbol=f"SYM{i}", step_ms=60_000, with_quotes=False)
        for i in range(symbols)
    ]
    frame = pd.concat(frames)
    return frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def _login(driver: Any, base: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/console/login")
    driver.find_element(By.ID, "username").send_keys("vic")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "/console/login" not in d.current_url)


def _weights(running: Pipeline, cookie: str) -> dict[str, int]:
    """HTML plus what it loads: every page the stylesheet, the symbol page also the script
    and uPlot."""
    size = {p: len(httpx.get(running.base + p).content) for p in STATIC}
    css = size["/console/static/console.css"]
    out = {}
    for page in PAGES:
        html = len(httpx.get(running.base + page, cookies={"tickcast_console": cookie}).content)
        out[page] = html + (sum(size.values()) if page.startswith("/console/symbols/") else css)
    return out


_PAINT = """
const nav = performance.getEntriesByType('navigation')[0];
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
return [fcp ? fcp.startTime : null, nav ? nav.domContentLoadedEventEnd : null];
"""


def _first_render(driver: Any, base: str, loads: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for page in PAGES:
        fcp: list[float] = []
        dcl: list[float] = []
        for _ in range(loads):
            driver.get(base + page)
            deadline = time.monotonic() + 10
            paint, loaded = driver.execute_script(_PAINT)
            while paint is None and time.monotonic() < deadline:
                time.sleep(0.05)
                paint, loaded = driver.execute_script(_PAINT)
            fcp.append(float(paint))
            dcl.append(float(loaded))
        out[page] = {
            "fcp_ms_median": statistics.median(fcp),
            "dcl_ms_median": statistics.median(dcl),
        }
    return out


def _live(driver: Any, running: Pipeline, last_ts: int, ticks: int) -> list[float]:
    """Produce time (right before the produce, on a warm producer) → arrival in the page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    codec = get_codec("Tick")
    producer = BatchProducer(running.settings)
    topic = running.settings.topic("ticks")
    driver.get(f"{running.base}/console/symbols/SYM0")
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "live-state").text == "live")
    latencies: list[float] = []
    columns = ["symbol", "ts_ms", "open", "high", "low", "close", "volume"]
    for k in range(1, ticks + 1):
        ts = last_ts + k * 60_000
        bar = pd.DataFrame([("SYM0", ts, 100.0, 101.0, 99.0, 100.5, 1e4)], columns=columns)
        (record,) = tick_records(bar, "bench-console")
        produced = time.time() * 1000
        producer.produce(topic, b"SYM0", codec.encode(record))
        producer.flush(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = driver.execute_script(
                "const u = window.tickcastLastUpdate; return u && u.features ? "
                "[u.features.event_time, u.received_at] : null;"
            )
            if got and int(got[0]) == ts:
                latencies.append(float(got[1]) - produced)
                break
            time.sleep(0.005)
        time.sleep(0.2)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=300)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=40)
    args = parser.parse_args()
    frame = _bars(args.symbols, args.bars)
    with tempfile.TemporaryDirectory() as tmp, pipeline(Settings(), Path(tmp)) as running:
        publish(running.settings, frame, "bench-console")
        auth = {"Authorization": f"Bearer {running.token('ann')}"}
        url = f"{running.base}/v1/predictions/SYM0/history?start=0&end=4000000000000&limit=1"

        def stored() -> bool:
            answer = httpx.get(url, headers=auth, timeout=10)
            return answer.status_code == 200 and bool(answer.json()["rows"])

        running.wait("predictions in ClickHouse", stored, 300)
        with chromium() as driver:
            _login(driver, running.base)
            cookie = driver.get_cookie("tickcast_console")["value"]
            weights = _weights(running, cookie)
            render = _first_render(driver, running.base, args.loads)
            latencies = _live(driver, running, int(frame["ts_ms"].max()), args.ticks)
    result = {
        "page_bytes": weights,
        "first_render": render,
        "max_fcp_ms_median": max(v["fcp_ms_median"] for v in render.values()),
        "live_updates": len(latencies),
        "live_latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "live_latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "live_latency_ms_max": max(latencies) if latencies else None,
    }
    for page, figures in render.items():
        print(
            f"{page:28s} {weights[page]:>8,d} B  FCP {figures['fcp_ms_median']:6.1f} ms  "
            f"DCL {figures['dcl_ms_median']:6.1f} ms"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
