"""Write a :class:`~backtesting.evaluate.BacktestReport` as strict JSON and one HTML page, and
log it to MLflow.

The HTML embeds base64 PNGs (matplotlib object API, no pyplot state): equity curves of every
model × strategy beside buy-and-hold and the naive baselines, drawdowns, rolling Sharpe,
return distributions with their VaR marks, IC over time, and the top/bottom per-symbol P&L
contributions. The JSON holds every number behind the table and the plots (NaN → null).
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from backtesting.evaluate import CONVENTION, IDENT_COLUMNS, BacktestReport, RunResult
from tickcast.config import Settings
from tickcast.errors import DependencyError
from training.report import ReportPaths, _png

EXPERIMENT = "tickcast-backtests"
MAX_PANELS = 12
TOP_N = 10
HIST_BINS = 40
IC_SMOOTH = 20
TABLE_METRICS = (
    "total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar",
    "max_drawdown", "max_drawdown_duration", "var_hist_95", "cvar_hist_95", "var_gauss_95",
    "cvar_gauss_95", "var_hist_99", "cvar_hist_99", "var_gauss_99", "cvar_gauss_99",
    "profit_factor", "hit_rate", "turnover", "exposure", "net_exposure", "total_cost", "ic_mean",
    "ic_t", "rank_ic_mean", "rank_ic_t", "accuracy", "auc", "sharpe_vs_buy_and_hold",
)  # fmt: skip


def _x(index: pd.Index) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(index, dtype="int64"), unit="ms")


def _style(run: RunResult) -> dict[str, Any]:
    if run.kind == "benchmark":
        return {"color": "black", "linewidth": 1.8, "linestyle": "-"}
    return {"linewidth": 1.1, "linestyle": "-" if run.kind == "model" else "--"}


def _lines(report: BacktestReport, title: str, ylabel: str, series: str) -> Figure:
    fig = Figure(figsize=(10, 4.8))
    ax = fig.add_subplot()
    for run in report.runs.values():
        s = getattr(run, series)
        ax.plot(_x(s.index), s.to_numpy(dtype=float), label=run.key, **_style(run))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    return fig


def equity_figure(report: BacktestReport) -> Figure:
    """Compounded equity of every run (buy-and-hold in black, baselines dashed)."""
    cfg = report.config
    fig = _lines(
        report,
        f"Equity, net of {cfg.cost_bps:g} bps costs + {cfg.slippage_bps:g} bps slippage",
        "equity (start = 1, log scale)",
        "equity",
    )
    fig.axes[0].set_yscale("log")
    fig.axes[0].axhline(1.0, color="grey", linewidth=0.6)
    return fig


def drawdown_figure(report: BacktestReport) -> Figure:
    """Drawdown below the running equity peak (positive = loss), every run."""
    fig = _lines(report, "Drawdown from peak", "drawdown", "drawdown")
    fig.axes[0].invert_yaxis()
    return fig


def rolling_sharpe_figure(report: BacktestReport) -> Figure:
    """Annualised Sharpe ratio over a trailing window, every run."""
    w = report.config.rolling_window
    fig = _lines(report, f"Rolling Sharpe ({w} bars, annualised)", "Sharpe", "rolling_sharpe")
    fig.axes[0].axhline(0.0, color="grey", linewidth=0.6)
    return fig


def _panels(n: int, width: float = 3.4, height: float = 2.6) -> tuple[Figure, list[Axes]]:
    cols = min(3, max(n, 1))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(width * cols, height * rows))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def _shown(report: BacktestReport, kinds: tuple[str, ...]) -> list[RunResult]:
    return [r for r in report.runs.values() if r.kind in kinds][:MAX_PANELS]


def histograms(report: BacktestReport) -> dict[str, dict[str, Any]]:
    """Return-distribution data per run: bin edges, counts and the VaR marks (as returns)."""
    out: dict[str, dict[str, Any]] = {}
    for run in report.runs.values():
        r = run.result.returns.to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        counts: list[int] = []
        edges: list[float] = []
        if r.size:
            c, e = np.histogram(r, bins=HIST_BINS)
            counts, edges = [int(x) for x in c], [float(x) for x in e]
        m = run.metrics
        out[run.key] = {
            "edges": edges,
            "counts": counts,
            "var_marks": {k: -m[k] for k in ("var_hist_95", "var_hist_99", "var_gauss_95")},
        }
    return out


def distribution_figure(report: BacktestReport) -> Figure:
    """Histogram of per-period net returns with historical 95/99 % and normal 95 % VaR."""
    data = histograms(report)
    runs = _shown(report, ("benchmark", "model"))
    fig, axes = _panels(len(runs))
    for ax, run in zip(axes, runs, strict=True):
        d = data[run.key]
        if d["counts"]:
            ax.stairs(d["counts"], d["edges"], fill=True, alpha=0.6)
        for (name, mark), color in zip(
            d["var_marks"].items(), ("red", "darkred", "orange"), strict=True
        ):
            if np.isfinite(mark):
                ax.axvline(mark, color=color, linewidth=1, linestyle="--", label=name)
        ax.set_title(run.key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("Per-period return distribution (VaR marks at −VaR)")
    fig.tight_layout()
    return fig


def ic_figure(report: BacktestReport) -> Figure:
    """Per-period IC (thin line) and the rolling mean of the rank IC (thick line) per signal."""
    keys = [k for k, f in report.ic.items() if not f.empty][:MAX_PANELS]
    fig, axes = _panels(len(keys), width=4.5)
    for ax, key in zip(axes, keys, strict=True):
        f = report.ic[key]
        x = _x(f.index)
        ax.plot(x, f["ic"].to_numpy(float), color="steelblue", alpha=0.5, lw=0.7, label="IC")
        smooth = f["rank_ic"].rolling(min(IC_SMOOTH, len(f)), min_periods=1).mean()
        ax.plot(x, smooth.to_numpy(float), color="darkred", label=f"rank IC, {IC_SMOOTH}-bar mean")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(f"{key}: mean IC {f['ic'].mean():.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def contribution_extremes(report: BacktestReport) -> dict[str, dict[str, dict[str, float]]]:
    """Top and bottom ``TOP_N`` per-symbol P&L contributions of each run."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for run in report.runs.values():
        c = run.contributions
        out[run.key] = {
            "top": {str(s): float(v) for s, v in c.head(TOP_N).items()},
            "bottom": {str(s): float(v) for s, v in c.tail(TOP_N).iloc[::-1].items()},
        }
    return out


def contribution_figure(report: BacktestReport) -> Figure:
    """Horizontal bars of the best and worst contributing symbols of each model run."""
    runs = _shown(report, ("model",)) or _shown(report, ("benchmark",))
    fig, axes = _panels(len(runs), width=4.0, height=4.0)
    for ax, run in zip(axes, runs, strict=True):
        c = run.contributions
        picked = pd.concat([c.head(TOP_N), c.tail(TOP_N)])
        picked = picked[~picked.index.duplicated()].sort_values()
        colors = ["seagreen" if v >= 0 else "firebrick" for v in picked]
        ax.barh([str(s) for s in picked.index], picked.to_numpy(float), color=colors)
        ax.set_title(run.key, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"Per-symbol P&L contribution (top/bottom {TOP_N}, additive, net)")
    fig.tight_layout()
    return fig


FIGURES = {
    "equity": equity_figure,
    "drawdown": drawdown_figure,
    "rolling_sharpe": rolling_sharpe_figure,
    "return_distribution": distribution_figure,
    "ic": ic_figure,
    "contributions": contribution_figure,
}


def jsonable(obj: Any) -> Any:
    """Recursively turn NaN/±inf into ``None`` and numpy scalars into Python ones."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _run_dict(r: RunResult) -> dict[str, Any]:
    res = r.result
    return {
        **{c: getattr(r, c) for c in IDENT_COLUMNS},
        "ts_ms": [int(t) for t in res.returns.index],
        "net_return": res.returns.tolist(),
        "gross_return": res.gross_returns.tolist(),
        "cost": res.costs.tolist(),
        "turnover": res.turnover.tolist(),
        "exposure": res.exposure.tolist(),
        "net_exposure": res.net_exposure.tolist(),
        "equity": r.equity.tolist(),
        "drawdown": r.drawdown.tolist(),
        "rolling_sharpe": r.rolling_sharpe.tolist(),
        "contributions": {str(s): float(v) for s, v in r.contributions.items()},
    }


def report_dict(report: BacktestReport, run_id: str) -> dict[str, Any]:
    """Every number of the report and its plots as JSON-ready data (NaN → None).

    Keys: ``run_id``, ``convention``, ``config``, ``meta``, ``metrics`` (run key → identity
    and every metric), ``runs`` (run key → per-period series and per-symbol contributions),
    ``ic`` (model key → per-timestamp IC and rank IC), ``figures`` (histograms with VaR marks,
    top/bottom contributions).
    """
    doc = {
        "run_id": run_id,
        "convention": CONVENTION,
        "config": report.config.to_dict(),
        "meta": report.meta,
        "metrics": {
            k: {**{c: getattr(r, c) for c in IDENT_COLUMNS}, **r.metrics}
            for k, r in report.runs.items()
        },
        "runs": {k: _run_dict(r) for k, r in report.runs.items()},
        "ic": {
            k: {
                "ts_ms": [int(t) for t in f.index],
                "ic": f["ic"].tolist(),
                "rank_ic": f["rank_ic"].tolist(),
            }
            for k, f in report.ic.items()
        },
        "figures": {
            "return_distribution": histograms(report),
            "contributions": contribution_extremes(report),
        },
    }
    out: dict[str, Any] = jsonable(doc)
    return out


def report_json(report: BacktestReport, run_id: str) -> str:
    """Strict JSON (``allow_nan=False``: NaN and ±inf become null)."""
    return json.dumps(report_dict(report, run_id), indent=1, allow_nan=False)


def report_html(report: BacktestReport, run_id: str) -> str:
    """One self-contained HTML page: table of metrics (runs side by side) and the plots."""
    table = report.table()
    shown = table[[c for c in TABLE_METRICS if c in table.columns]].T
    cfg = html.escape(json.dumps(jsonable(report.config.to_dict())))
    meta = html.escape(json.dumps(jsonable(report.meta)))
    title = f"tickcast backtest {run_id}"
    imgs = "\n".join(
        f"<h2>{html.escape(name.replace('_', ' '))}</h2>"
        f'<img alt="{name}" src="data:image/png;base64,{_png(make(report))}">'
        for name, make in FIGURES.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:11px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}img{{max-width:100%}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Convention: a prediction at bar t earns the close-to-close return from t to the next bar.
Losses (drawdown, VaR, CVaR) are positive numbers; ratios are annualised with
{report.config.periods_per_year:g} periods per year.</p>
<p>Configuration: <code>{cfg}</code></p>
<p>Data: <code>{meta}</code></p>
<h2>Metrics (runs side by side)</h2>
{shown.to_html(float_format=lambda v: f"{v:.4f}", na_rep="–")}
{imgs}
</body></html>
"""


def write_backtest_report(report: BacktestReport, out_dir: Path | str, run_id: str) -> ReportPaths:
    """Write ``backtest_<run_id>.json`` and ``backtest_<run_id>.html`` into ``out_dir``."""
    stem = "backtest_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(json=out / f"{stem}.json", html=out / f"{stem}.html")
    paths.json.write_text(report_json(report, run_id), encoding="utf-8")
    paths.html.write_text(report_html(report, run_id), encoding="utf-8")
    return paths


def _metric_name(run: RunResult, model_name: str, model_version: str, metric: str) -> str:
    own = run.model_name == model_name and run.model_version == model_version
    prefix = run.strategy if own else run.key.replace("@", "_")
    return re.sub(r"[^A-Za-z0-9_./ -]+", "_", f"{prefix}.{metric}")


def log_to_mlflow(
    report: BacktestReport,
    paths: ReportPaths,
    settings: Settings,
    model_name: str,
    model_version: str,
) -> str:
    """Log one model version's backtest to an MLflow run in :data:`EXPERIMENT`; its run id.

    Metrics are ``<strategy>.<metric>`` for the version's own runs and
    ``<run key>.<metric>`` for buy-and-hold and the baselines (non-finite values are not
    logged); parameters are the configuration; the JSON and HTML are artifacts.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    own = report.runs_of(model_name, model_version)
    if not own:
        raise ValueError(f"the report has no run of {model_name}:{model_version}")
    others = [r for r in report.runs.values() if r.kind != "model"]
    try:
        client = MlflowClient(tracking_uri=settings.mlflow_uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            exp_id = exp.experiment_id
        else:
            local = not settings.mlflow_uri.startswith(("http://", "https://"))
            where = Path(settings.mlflow_artifacts).resolve().as_uri() if local else None
            exp_id = client.create_experiment(EXPERIMENT, artifact_location=where)
        run = client.create_run(
            exp_id,
            run_name=f"{model_name}-v{model_version}-backtest",
            tags={"model_name": model_name, "model_version": model_version, "kind": "backtest"},
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        cfg = report.config
        params = {
            "strategies": ",".join(s.label for s in cfg.strategies),
            "signal": cfg.signal,
            "cost_bps": cfg.cost_bps,
            "slippage_bps": cfg.slippage_bps,
            "max_position": cfg.max_position,
            "max_gross": cfg.max_gross,
            "periods_per_year": cfg.periods_per_year,
            "n_symbols": report.meta.get("n_symbols"),
            "first_ts_ms": report.meta.get("first_ts_ms"),
            "last_ts_ms": report.meta.get("last_ts_ms"),
        }
        metrics = [
            Metric(_metric_name(r, model_name, model_version, k), float(v), now, 0)
            for r in (*own, *others)
            for k, v in r.metrics.items()
            if np.isfinite(v)
        ]
        for i in range(0, max(len(metrics), 1), 900):
            client.log_batch(
                run_id,
                metrics=metrics[i : i + 900],
                params=[Param(k, str(v)) for k, v in params.items()] if i == 0 else [],
                tags=[RunTag("role", own[0].role)] if i == 0 else [],
            )
        client.log_artifact(run_id, str(paths.json))
        client.log_artifact(run_id, str(paths.html))
        client.set_terminated(run_id)
    except Exception as exc:  # MLflow raises many unrelated types; one typed error out
        raise DependencyError(
            "mlflow",
            f"cannot log backtest: {exc}".splitlines()[0][:300],
            "check TICKCAST_MLFLOW_TRACKING_URI",
        ) from exc
    return str(run_id)
