"""``tickcast demo``: the main job on the embedded defaults, end to end, in its own namespace.

1. reset the ``demo`` namespace (topics, consumer groups, Redis keys, its registered model);
2. train XGBoost and LightGBM on the first 80 % of the real S&P 500 daily bars with
   walk-forward validation against baselines, register them in MLflow (champion, challenger);
3. start a stream worker (the direct runner), a ClickHouse sink, the online learner and the
   drift process, replay all bars through Kafka;
4. show features and the champion's predictions read back from Redis, the held-out accuracy
   and the drift against the champion's training reference from ClickHouse history, and the
   worker's metrics summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from backtesting.namespace import reset_namespace
from devtools import datasets
from devtools.prometheus_runner import free_port
from devtools.stack.recorded import demo_pid_file, stop_recorded
from indicators.feature_set import FeatureSet
from monitoring.lag import collect_lag
from sinks import redis_keys
from sinks.feature_blob import decode as decode_blob
from streams.replay import publish
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.processes import ServiceProcess

DEMO_MODEL = "tickcast-demo-h1"
#: The demo's drift window: four weeks of daily bars (one day holds one bar per symbol, and
#: a week of a few symbols leaves most decile bins empty, which PSI punishes).
DEMO_DRIFT_WINDOW_MS = 28 * 86_400_000


def demo_settings(settings: Settings) -> Settings:
    """The demo's own namespace beside whatever else runs on the stack."""
    return settings.model_copy(
        update={
            "topic_prefix": "demo.",
            "redis_key_prefix": "demo:",
            "consumer_group": "tickcast-demo",
            "clickhouse_database": "demo",
            # embedded chDB is locked by the process that opens it: the demo's sink gets its
            # own store, so a production sink on the default path keeps running beside it
            "clickhouse_dsn": f"chdb://{settings.data_dir / 'clickhouse-demo'}",
            "model_name": DEMO_MODEL,
            # drift compares with the champion's training reference (the default: the served
            # model's champion), whatever TICKCAST_DRIFT_REFERENCE_MODEL says outside the demo
            "drift_reference_model": "",
            "drift_window_ms": DEMO_DRIFT_WINDOW_MS,
            "clickhouse_read_port": free_port(),
            # the console's symbol chart draws the closes the sink stored
            "sink_topics": "ticks,features,predictions,outcomes,drift,model-events",
        }
    )


def wait_for_groups(
    settings: Settings, topics: dict[str, str], timeout_s: float, alive: Callable[[], bool]
) -> float:
    """Wait until each ``group → topic`` has consumed and committed everything."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise DependencyError("demo", "a demo process stopped", "see .tickcast/logs/demo-*")
        rows = collect_lag(settings.kafka_bootstrap, list(topics))
        done = {
            group
            for group, topic in topics.items()
            if (mine := [r for r in rows if r.group == group and r.topic == topic])
            and all(r.lag == 0 for r in mine)
        }
        if done == set(topics):
            return time.monotonic()
        time.sleep(0.5)
    raise DependencyError("demo", f"not consumed after {timeout_s:.0f} s: {topics}")


def _forget_demo_model(settings: Settings) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from online_learning.checkpoint import forget_checkpoints

    with contextlib.suppress(MlflowException):  # nothing registered yet
        MlflowClient(tracking_uri=settings.mlflow_uri).delete_registered_model(DEMO_MODEL)
    forget_checkpoints(settings)  # the learners start afresh on the fresh topics


def train(demo: Settings, console: Console, symbols: int) -> dict[str, Any]:
    """Walk-forward train and register the demo champion; print the summary table."""
    from training.cli import TrainOptions, run_training

    options = TrainOptions(symbols=symbols, name=DEMO_MODEL)
    with console.status("walk-forward training (XGBoost, LightGBM, baselines)…"):
        outcomes, facts = run_training(options, demo)
    outcome = outcomes[0]
    table = Table(title="walk-forward out-of-sample, horizon 1 bar (training period only)")
    shown = ["accuracy", "auc", "log_loss", "sharpe", "max_drawdown"]
    table.add_column("model")
    for column in shown:
        table.add_column(column, justify="right")
    for model, row in outcome.table.iterrows():
        table.add_row(str(model), *[f"{row.get(c, float('nan')):.3f}" for c in shown])
    console.print(table)
    for reg in outcome.registered:
        console.print(f"registered {reg.name} v{reg.version} as {reg.role}")
    console.print(f"report: {outcome.report_html}")
    return facts


def features_table(settings: Settings, symbols: list[str], names: list[str]) -> Table:
    """A few features of a few symbols, read back from Redis by name."""
    fs = FeatureSet.default()
    client = redis.Redis.from_url(settings.redis_url)
    table = Table(title="latest features in Redis (by name)")
    table.add_column("feature")
    for symbol in symbols:
        table.add_column(symbol, justify="right")
    raw = client.mget([redis_keys.feature_key(settings.redis_key_prefix, s) for s in symbols])
    # one column per symbol, even when a symbol has no blob (its cells say so)
    blobs = [decode_blob(p) if isinstance(p, bytes) else None for p in raw]
    index = {name: i for i, name in enumerate(fs.names)}
    table.add_row(
        "event time",
        *[str(pd.Timestamp(b.event_ts_ms, unit="ms")) if b else "none" for b in blobs],
    )
    for name in names:
        table.add_row(name, *[f"{b.values[index[name]]:.4g}" if b else "—" for b in blobs])
    return table


def predictions_table(settings: Settings, symbols: list[str]) -> Table:
    """The champion's latest prediction per symbol, from Redis."""
    import orjson

    client = redis.Redis.from_url(settings.redis_url)
    table = Table(title="latest champion predictions in Redis")
    for column in ("symbol", "event time", "P(up)", "E\\[return]", "model", "version"):
        table.add_column(column)
    raw = client.mget([redis_keys.prediction_key(settings.redis_key_prefix, s) for s in symbols])
    for symbol, payload in zip(symbols, raw, strict=True):
        if not isinstance(payload, bytes):
            table.add_row(symbol, "none", "", "", "", "")
            continue
        p = orjson.loads(payload)
        table.add_row(
            symbol,
            str(pd.Timestamp(p["event_time"], unit="ms")),
            f"{p['value']:.3f}",
            f"{p['expected_return']:+.4f}",
            str(p["model"]),
            str(p["version"]),
        )
    return table


def learner_table(settings: Settings) -> Table:
    """What the learner published: online metrics per model and the test's verdict."""
    import orjson

    client = redis.Redis.from_url(settings.redis_url)
    raw_metrics = client.get(redis_keys.model_metrics_key(settings.redis_key_prefix))
    raw_test = client.get(redis_keys.model_test_key(settings.redis_key_prefix))
    metrics = orjson.loads(raw_metrics) if isinstance(raw_metrics, bytes) else {}
    test = orjson.loads(raw_test) if isinstance(raw_test, bytes) else {}
    decision = test.get("last_decision") or {}
    verdict = (
        f"champion {test.get('champion')}; last decision: "
        f"{'PROMOTE' if decision.get('promote') else 'keep'} "
        f"({decision.get('reason', 'no test yet')}, p={decision.get('p_value', float('nan')):.3g}, "
        f"n={decision.get('n', 0)})"
    )
    table = Table(
        title=f"online evaluation by the learner (rolling window of recent outcomes) — {verdict}"
    )
    for column in ("model:version", "role", "outcomes seen", "accuracy", "log loss"):
        table.add_column(column)
    for key, row in sorted(metrics.get("models", {}).items()):
        table.add_row(
            key,
            str(row.get("role", "")),
            str(row.get("n_total", "")),
            f"{row.get('accuracy', float('nan')):.3f}",
            f"{row.get('log_loss', float('nan')):.3f}",
        )
    return table


def history(demo: Settings, console: Console, held_out_ms: int) -> None:
    """Example ClickHouse queries over what the sink stored, with their answers."""
    from sinks.history import accuracy_by_model_day, open_reader

    client = open_reader(demo)
    rows = accuracy_by_model_day(client, demo.clickhouse_database, held_out_ms, 2**62)
    frame = pd.DataFrame(rows)
    console.print("[bold]ClickHouse:[/] accuracy by model on the held-out period")
    console.print(
        "  SQL: SELECT model_name, model_version, avg(hit), count() "
        f"FROM {demo.clickhouse_database}.outcomes FINAL WHERE ts >= <held-out start> GROUP BY 1, 2"
    )
    if frame.empty:
        console.print("  (no outcomes stored yet)")
        return
    table = Table(title="held-out directional accuracy (from ClickHouse outcomes)")
    for column in ("model", "version", "outcomes", "accuracy", "strategy return"):
        table.add_column(column)
    grouped = frame.groupby(["model_name", "model_version"])
    for (model, version), group in grouped:
        n = int(group["n"].sum())
        accuracy = float((group["accuracy"] * group["n"]).sum() / max(n, 1))
        strategy = float(group.get("strategy_return", pd.Series([0.0])).sum())
        table.add_row(str(model), str(version), str(n), f"{accuracy:.3f}", f"{strategy:+.3f}")
    console.print(table)


def api(
    demo: Settings, console: Console, symbols: list[str], logs: Path
) -> tuple[ServiceProcess, str | None]:
    """Start the API on the demo namespace, log in for real, print ready-to-paste curls; the
    second value is where the console is and the login that opens it."""
    import secrets

    import httpx

    from serving.security.users import UserError, create_user_command

    port = demo.api_port if _port_free(demo.api_port) else free_port()
    served = demo.model_copy(update={"api_port": port})
    server = ServiceProcess(served, ["serve", "--port", str(port)], logs / "demo-api.log").start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not server.running():
            raise DependencyError("api", "the API stopped", f"see {logs / 'demo-api.log'}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    password = secrets.token_urlsafe(18)
    try:  # the namespace reset removed any user of an earlier demo
        create_user_command(served, "demo-admin", password, "admin")
    except UserError as exc:
        console.print(f"[yellow]cannot create the demo user: {exc}[/]")
        return server, None

    token_answer = httpx.post(
        f"{base}/v1/auth/token",
        data={"grant_type": "password", "username": "demo-admin", "password": password},
        timeout=10,
    )
    if token_answer.status_code != 200:
        console.print(f"[yellow]login failed ({token_answer.status_code}); see docs/api.md[/]")
        return server, None
    token = token_answer.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    latest = httpx.get(f"{base}/v1/predictions/{symbols[0]}/latest", headers=auth, timeout=10)
    console.print(f"GET /v1/predictions/{symbols[0]}/latest → {latest.status_code}")
    console.print_json(latest.text)
    curl = 'curl -s -H "Authorization: Bearer $TICKCAST_TOKEN"'
    console.print("[bold]try the API (token valid for "
                  f"{served.access_token_ttl_s // 60} min; docs at {base}/docs):[/]")  # fmt: skip
    lines = [f"export TICKCAST_TOKEN={token}"]
    for path in (
        f"/v1/predictions/{symbols[0]}/latest",
        f"/v1/features/{symbols[1]}/latest",
        f"/v1/predictions/{symbols[0]}/history?start=2010-06-01&end=2010-08-21&limit=5",
        f"/v1/outcomes/{symbols[0]}/history?start=2010-06-01&end=2010-08-21&limit=5",
        "/v1/models",
        "/v1/models/test",
    ):
        lines.append(f"{curl} '{base}{path}'")
    batch = f'{{"symbols": ["{symbols[0]}", "{symbols[1]}"]}}'
    lines.append(
        f"{curl} -X POST '{base}/v1/features:batch' "
        f"-H 'Content-Type: application/json' -d '{batch}'"
    )
    lines += [f"curl -s {base}/readyz", f"curl -s {base}/metrics | head"]
    for line in lines:  # unwrapped, so each pastes as one shell line
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    return server, f"{base}/console/ (user demo-admin, password {password})"


def wait_for_drift(
    demo: Settings, last_ts_ms: int, timeout_s: float, alive: Callable[[], bool]
) -> None:
    """Wait until the sink stored the drift of the last window that can close (the one
    before the window of the last bar); the last one is published when drift stops."""
    from sinks.read_endpoint import open_reader

    window = demo.drift_window_ms
    closing = last_ts_ms - last_ts_ms % window - window
    sql = (
        f"SELECT count() FROM {demo.clickhouse_database}.drift "
        f"WHERE window_start = fromUnixTimestamp64Milli({closing})"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise DependencyError("demo", "a demo process stopped", "see .tickcast/logs/demo-*")
        with contextlib.suppress(Exception):  # the table appears with the first drift row
            if open_reader(demo).query(sql).result_rows[0][0] > 0:
                return
        time.sleep(0.5)
    raise DependencyError("demo", f"drift not stored after {timeout_s:.0f} s")


def drift_table(demo: Settings, held_out_ms: int) -> Table:
    """Drift per reference (the champion version each PSI row names), from ClickHouse."""
    from sinks.read_endpoint import open_reader

    sql = f"""
        SELECT model_name, model_version, uniqExact(window_start) AS windows,
               countIf(level = 'WARN') AS warn, countIf(level = 'ALERT') AS alert,
               avgIf(psi, window_start >= fromUnixTimestamp64Milli({held_out_ms})) AS held_out,
               argMax(feature, psi) AS top, max(psi) AS top_psi
        FROM {demo.clickhouse_database}.drift FINAL
        WHERE symbol = ''
        GROUP BY model_name, model_version ORDER BY model_name, model_version"""
    table = Table(title="feature drift (PSI per 4-week window) against the reference, "
                        "from ClickHouse drift")  # fmt: skip
    for column in ("reference (champion)", "windows", "WARN", "ALERT", "mean PSI held out",
                   "largest PSI"):  # fmt: skip
        table.add_column(column)
    for model, version, windows, warn, alert, held_out, top, top_psi in (
        open_reader(demo).query(sql).result_rows
    ):
        table.add_row(f"{model} v{version}", str(windows), str(warn), str(alert),
                      f"{held_out:.3f}", f"{top_psi:.2f} {top}")  # fmt: skip
    return table


def _stop_previous_demo(demo: Settings) -> None:
    """Stop the API and sink an earlier demo left running, and forget its ClickHouse store.

    Why: a live sink of the last run would keep its group (the reset waits on it) and its
    embedded ClickHouse; rows and learner state of an earlier run must not leak into this one.
    """
    import shutil

    stop_recorded(demo_pid_file(demo))
    shutil.rmtree(demo.clickhouse.removeprefix("chdb://"), ignore_errors=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run_demo(settings: Settings, console: Console, symbols: int | None = 100) -> dict[str, Any]:
    """Run the demo; returns the figures it printed."""
    demo = demo_settings(settings)
    console.rule("[bold]tickcast demo")
    console.print(f"namespace: topics '{demo.topic_prefix}*', Redis '{demo.redis_key_prefix}*'")
    _stop_previous_demo(demo)
    reset_namespace(demo)
    _forget_demo_model(demo)
    apply_topics(demo)
    frame = datasets.load("sp500-daily")
    n_symbols = symbols or int(frame["symbol"].nunique())
    keep = sorted(frame["symbol"].unique())[:n_symbols]
    frame = frame[frame["symbol"].isin(keep)].reset_index(drop=True)
    info = datasets.describe("sp500-daily")
    console.print(
        f"data: {len(frame):,} real daily bars of {n_symbols} S&P 500 symbols "
        f"({info.get('start')} → {info.get('end')})"
    )
    console.rule("1. train on the first 80 %, honestly")
    facts = train(demo, console, n_symbols)
    held_out_ms = int(pd.Timestamp(facts["held_out_from"], tz="UTC").value // 1_000_000)

    console.rule("2. stream every bar through Kafka → worker → Redis / topics → ClickHouse")
    logs = demo.data_dir / "logs"
    metrics_port = free_port()
    worker = ServiceProcess(
        demo, ["worker", "--metrics-port", str(metrics_port)], logs / "demo-worker.log"
    ).start()
    sink = ServiceProcess(demo, ["sink", "run"], logs / "demo-sink.log").start()
    learner_args = ["learner", "run", "--checkpoint-every", "15", "--min-samples", "200"]
    learner = ServiceProcess(demo, learner_args, logs / "demo-learner.log").start()
    # drift starts once every partition of `features` holds data: a partition it has not
    # heard of yet does not hold its watermark back, and a replay runs weeks ahead in minutes
    drift = ServiceProcess(demo, ["drift"], logs / "demo-drift.log")
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("replay → Kafka ticks", total=len(frame))
            started = time.monotonic()
            publish(demo, frame, "replay:sp500-daily", None, lambda n: progress.advance(task, n))
        alive = lambda: worker.running() and sink.running()  # noqa: E731
        processed = wait_for_groups(demo, {demo.consumer_group: demo.topic("ticks")}, 900, alive)
        drift.start()
        sink_group = f"{demo.consumer_group}-clickhouse-sink"
        wait_for_groups(demo, {sink_group: demo.topic("outcomes")}, 300, alive)
        learner_group = f"{demo.consumer_group}-learner"
        with console.status("River challengers learning from the outcomes…"):
            wait_for_groups(demo, {learner_group: demo.topic("outcomes")}, 600, learner.running)
        with console.status("drift against the champion's training reference…"):
            last_ts = int(frame["ts_ms"].max())
            wait_for_drift(demo, last_ts, 300, lambda: alive() and drift.running())
            drift.stop()  # publishes the last, open window
            wait_for_groups(demo, {sink_group: demo.topic("drift")}, 120, sink.running)
        figures = {
            "bars": len(frame),
            "symbols": n_symbols,
            "stream_s": round(processed - started, 2),
            "ticks_per_s": round(len(frame) / (processed - started)),
        }
        console.print(
            f"worker: {figures['bars']:,} ticks → features, predictions and outcomes in "
            f"{figures['stream_s']} s, the worker's start-up included"
        )
        sample = keep[:4]
        console.print(
            features_table(demo, sample, ["rsi_14", "macd_12_26_9", "bb_pctb_20_2", "atr_14"])
        )
        console.print(predictions_table(demo, sample))
        console.print(learner_table(demo))
        console.rule("3. history and operations")
        history(demo, console, held_out_ms)
        console.print(drift_table(demo, held_out_ms))
        from monitoring.summary import print_summary

        print_summary(demo, f"http://127.0.0.1:{metrics_port}/metrics", console=console)
        console.rule("4. the API")
        server, console_login = api(demo, console, keep, logs)
    except BaseException:
        sink.stop()
        raise
    finally:
        worker.stop()
        learner.stop()
        drift.stop()
    sink.detach()  # these two outlive the demo on purpose (the curls above)
    server.detach()
    demo_pid_file(demo).write_text(
        "\n".join(str(p.proc.pid) for p in (sink, server) if p.proc is not None)
    )
    console.print(f"read any symbol by name: tickcast features {keep[0]} --namespace demo")
    console.print(f"logs: {logs}/demo-*.log")
    console.print(
        f"the API (pid {server.proc.pid if server.proc else '?'}) and the ClickHouse sink "
        f"(pid {sink.proc.pid if sink.proc else '?'}) keep running for the curls above; "
        "`tickcast down` (or the next demo) stops them"
    )
    if console_login:
        console.print(f"[bold]open the console:[/] {console_login}", soft_wrap=True)
    return figures
