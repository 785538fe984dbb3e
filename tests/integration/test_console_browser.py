"""The console in a real browser (Debian's Chromium) on the real pipeline.

One pipeline for the module (:func:`devtools.pipeline.pipeline`: topics, worker, a sink with
its own chDB, the API serving the console, an ``always_up`` champion, an admin, a viewer).
Screenshots of every page go to ``.tickcast/test-artifacts/console/`` (docs/console.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from devtools.browser import chromium
from devtools.pipeline import PASSWORD, Pipeline, pipeline
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import publish
from tests.support.bars import make_bars
from tickcast.config import REPO_ROOT, Settings

pytestmark = pytest.mark.integration

ARTIFACTS = REPO_ROOT / ".tickcast" / "test-artifacts" / "console"
SYMBOLS = 3
BARS = 150


@pytest.fixture(scope="module")
def console(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with pipeline(stack, tmp_path_factory.mktemp("console")) as running:
        publish(running.settings, make_bars(SYMBOLS, BARS), "console-test")
        auth = {"Authorization": f"Bearer {running.token('ann')}"}
        history = f"{running.base}/v1/predictions/S000/history?start=0&end=4000000000000&limit=500"

        def stored() -> bool:
            answer = httpx.get(history, headers=auth, timeout=10)
            return answer.status_code == 200 and len(answer.json()["rows"]) >= BARS - 5

        running.wait("the sink to store S000's predictions", stored, 180)
        yield running


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def login(browser: WebDriver, base: str, user: str, target: str = "/console/symbols") -> None:
    browser.get(f"{base}{target}")
    assert "/console/login" in browser.current_url  # not logged in: sent to the form
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: "/console/login" not in d.current_url)
    assert browser.current_url.endswith(target)


def shot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_login_and_logout(console: Pipeline, browser: WebDriver) -> None:
    browser.get(f"{console.base}/console/symbols")
    shot(browser, "login")
    login(browser, console.base, "ann")
    assert "S000" in browser.find_element(By.CSS_SELECTOR, ".symbols").text
    cookie = browser.get_cookie("tickcast_console")
    assert cookie is not None
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    shot(browser, "symbols")
    browser.find_element(By.CSS_SELECTOR, "form.who button").click()
    WebDriverWait(browser, 10).until(lambda d: "/console/login" in d.current_url)
    browser.get(f"{console.base}/console/models")
    assert "/console/login" in browser.current_url  # the session is gone
    gone = httpx.get(
        f"{console.base}/console/models", cookies={"tickcast_console": cookie["value"]}
    )
    assert gone.status_code == 303  # the old cookie no longer opens a page


def test_wrong_password_is_refused_with_a_reason(console: Pipeline, browser: WebDriver) -> None:
    browser.get(f"{console.base}/console/login")
    browser.find_element(By.ID, "username").send_keys("ann")
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    alert = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, ".error"))
    assert "Wrong user name or password" in alert.text
    assert browser.get_cookie("tickcast_console") is None


def test_symbol_page_updates_live_within_two_seconds(console: Pipeline, browser: WebDriver) -> None:
    login(browser, console.base, "ann", "/console/symbols/S001")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "live-state").text == "live")
    before = browser.find_element(By.CSS_SELECTOR, '[data-field="value"]').text
    assert 0.5 < float(before) <= 1.0  # always_up's P(up), rendered by the server
    shown = browser.find_element(By.ID, "features-time").text
    last = int(make_bars(SYMBOLS, BARS)["ts_ms"].max())
    tick = last + 60_000
    bar = pd.DataFrame(
        [("S001", tick, 50.0, 50.5, 49.5, 50.2, 1e4)],
        columns=["symbol", "ts_ms", "open", "high", "low", "close", "volume"],
    )
    publish(console.settings, bar, "console-live")
    expected = pd.Timestamp(tick, unit="ms").strftime("%Y-%m-%d %H:%M:%S")
    # the bound: on the page within 2 s of the produce, without a reload
    WebDriverWait(browser, 2.0, poll_frequency=0.05).until(
        lambda d: d.find_element(By.ID, "features-time").text == expected
    )
    assert shown != expected
    WebDriverWait(browser, 2.0, poll_frequency=0.05).until(  # scored in the same micro-batch
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-field="event_time"]').text == expected
    )
    shot(browser, "symbol")


def test_chart_renders_the_history_range(console: Pipeline, browser: WebDriver) -> None:
    login(browser, console.base, "vic", "/console/symbols/S000?days=1")
    chart = WebDriverWait(browser, 15).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#chart[data-rendered='1']")
    )
    # one day of minute bars before the latest prediction: the sink stored them all
    assert int(chart.get_attribute("data-prices") or 0) >= BARS - 5
    assert int(chart.get_attribute("data-predictions") or 0) >= BARS - 5
    assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas")


def test_viewer_sees_no_promote_button_and_is_refused_anyway(
    console: Pipeline, browser: WebDriver
) -> None:
    login(browser, console.base, "ann", "/console/models")
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action]")  # admin: roll back
    shot(browser, "models")
    browser.delete_all_cookies()
    login(browser, console.base, "vic", "/console/models")
    assert console.settings.model_name in browser.page_source
    assert not browser.find_elements(By.CSS_SELECTOR, "button[data-action]")
    cookie = browser.get_cookie("tickcast_console")
    assert cookie is not None
    csrf = browser.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    answer = httpx.post(
        f"{console.base}/console/models/action",
        data={"csrf": csrf, "action": "rollback", "name": console.settings.model_name,
              "confirm": "yes"},
        cookies={"tickcast_console": cookie["value"]},
        headers={"Origin": console.base},
    )  # fmt: skip
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"


def test_a_post_without_the_csrf_token_or_from_elsewhere_is_refused(
    console: Pipeline, browser: WebDriver
) -> None:
    login(browser, console.base, "ann", "/console/models")
    cookie = browser.get_cookie("tickcast_console")
    assert cookie is not None
    csrf = browser.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    form = {"action": "rollback", "name": console.settings.model_name, "confirm": "yes"}
    jar = {"tickcast_console": cookie["value"]}
    origin = {"Origin": console.base}
    missing = httpx.post(f"{console.base}/console/models/action", data=form, cookies=jar,
                         headers=origin)  # fmt: skip
    forged = httpx.post(f"{console.base}/console/models/action", data={**form, "csrf": "x" * 43},
                        cookies=jar, headers=origin)  # fmt: skip
    elsewhere = httpx.post(
        f"{console.base}/console/models/action", data={**form, "csrf": csrf or ""}, cookies=jar,
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    logout = httpx.post(f"{console.base}/console/logout", cookies=jar, headers=origin)
    for answer in (missing, forged, elsewhere, logout):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "csrf_failed"
    still = httpx.get(f"{console.base}/console/models", cookies=jar)
    assert still.status_code == 200  # nothing happened: the session and champion stand


def test_drift_page_shows_a_planted_shift(console: Pipeline, browser: WebDriver) -> None:
    codec = get_codec("DriftStat")
    producer = BatchProducer(console.settings)
    start = 1_600_000_000_000
    for i, (feature, psi, level) in enumerate(
        [("ret_1", 0.02, "OK"), ("rsi_14", 0.9, "ALERT"), ("ret_5", 0.15, "WARN")]
    ):
        record = {
            "feature": feature, "window_start": start, "window_end": start + 3_600_000,
            "psi": psi, "ks": 0.1 * (i + 1), "n": 500, "reference_model_name": "m",
            "reference_model_version": "1", "feature_set_version": "fs", "level": level,
            "symbol": "", "ks_pvalue": 0.01,
        }  # fmt: skip
        producer.produce(console.settings.topic("drift"), feature.encode(), codec.encode(record))
    producer.flush(10)
    login(browser, console.base, "vic", "/console/drift")

    def planted(driver: WebDriver) -> bool:
        driver.refresh()
        return bool(driver.find_elements(By.CSS_SELECTOR, "#drift td.lvl-alert"))

    WebDriverWait(browser, 60, poll_frequency=1.0).until(planted)
    row = browser.find_element(By.XPATH, "//table[@id='drift']//tr[th='rsi_14']")
    assert "0.900" in row.text
    assert "ALERT" in (row.get_attribute("innerHTML") or "")
    assert browser.find_elements(By.CSS_SELECTOR, "#drift td.lvl-warn")
    shot(browser, "drift")


def test_stream_and_backtests_pages(console: Pipeline, browser: WebDriver) -> None:
    login(browser, console.base, "vic", "/console/stream")
    assert browser.find_element(By.ID, "degraded").text == "no"
    assert "ticks" in browser.find_element(By.ID, "lag").text
    assert "redis: up" in browser.page_source
    shot(browser, "stream")
    browser.get(f"{console.base}/console/backtests")
    assert browser.find_element(By.ID, "backtests")
    shot(browser, "backtests")


def test_pages_stay_within_their_weight(console: Pipeline) -> None:
    """The symbol page with its script, style and chart library stays small (no SPA)."""
    total = 0
    for path in ("/console/static/console.js", "/console/static/console.css",
                 "/console/static/vendor/uPlot.iife.min.js",
                 "/console/static/vendor/uPlot.min.css"):  # fmt: skip
        answer = httpx.get(console.base + path)
        assert answer.status_code == 200, path
        total += len(answer.content)
    assert total < 120_000, total


def test_an_admin_action_is_confirmed_and_answered_on_the_page(
    console: Pipeline, browser: WebDriver
) -> None:
    login(browser, console.base, "ann", "/console/models")
    button = browser.find_element(By.CSS_SELECTOR, "button[data-action=rollback]")
    button.click()  # not confirmed: the browser keeps the form (the box is required)
    assert "notice" not in browser.current_url
    browser.find_element(By.CSS_SELECTOR, "input[name=confirm]").click()
    browser.find_element(By.CSS_SELECTOR, "button[data-action=rollback]").click()
    notice = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, ".notice"))
    # one version only: nothing to roll back to, refused by the API's own rule, audited
    assert "rollback refused" in notice.text
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action=rollback]")
