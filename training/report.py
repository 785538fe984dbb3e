"""Write a walk-forward result as JSON (every figure) and as one self-contained HTML page.

The HTML embeds its plots as base64 PNGs: out-of-sample equity curves per model (net of
costs), per-fold directional accuracy with Wilson intervals, and the summary table against the
naive baselines. Matplotlib is driven through its object API (no pyplot global state).
:func:`write_shap_report` adds a page of SHAP summary plots of the final models.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.walk_forward import WalkForwardResult

TABLE_COLUMNS = [
    "accuracy", "accuracy_lower", "accuracy_upper", "auc", "log_loss", "brier", "ic_mean",
    "ic_t", "rank_ic_mean", "sharpe", "sortino", "annualized_return", "max_drawdown",
    "var_hist_95", "cvar_hist_95", "turnover", "total_cost", "fold_accuracy_mean",
    "fold_accuracy_std", "accuracy_vs_best_naive", "sharpe_vs_best_naive", "is_baseline",
]  # fmt: skip


@dataclass(frozen=True)
class ReportPaths:
    """Where the report files were written."""

    json: Path
    html: Path


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def equity_figure(result: WalkForwardResult) -> Figure:
    """Compounded out-of-sample equity of each model's long/short strategy."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    for name, rets in result.strategy_returns.items():
        if rets.empty:
            continue
        x = pd.to_datetime(rets.index.to_numpy(), unit="ms")
        style = "-" if name in ("xgboost", "lightgbm") else "--"
        ax.plot(x, np.cumprod(1.0 + rets.to_numpy()), style, label=name, linewidth=1.2)
    ax.axhline(1.0, color="grey", linewidth=0.6)
    ax.set_title(f"Out-of-sample equity, net of {result.config.cost_bps:g} bps costs")
    ax.set_ylabel("equity (start = 1)")
    ax.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    return fig


def fold_accuracy_figure(result: WalkForwardResult) -> Figure:
    """Directional accuracy per fold and model with Wilson confidence intervals."""
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    folds = result.fold_metrics
    models = list(dict.fromkeys(folds["model"])) if not folds.empty else []
    width = 0.8 / max(len(models), 1)
    for i, name in enumerate(models):
        f = folds[folds["model"] == name]
        x = f["fold"].to_numpy() + (i - (len(models) - 1) / 2) * width
        acc = f["accuracy"].to_numpy(dtype=float)
        err = np.vstack([acc - f["accuracy_lower"], f["accuracy_upper"] - acc])
        ax.errorbar(x, acc, yerr=err, fmt="o", capsize=2, markersize=3, label=name)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("fold")
    ax.set_ylabel("directional accuracy")
    ax.set_title(f"Per-fold accuracy with {result.config.confidence:.0%} Wilson intervals")
    ax.legend(fontsize=8, ncol=2)
    return fig


def report_json(result: WalkForwardResult) -> str:
    """The full result as strict JSON (NaN → null)."""
    return json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str)


def report_html(result: WalkForwardResult, title: str = "tickcast walk-forward report") -> str:
    """One self-contained HTML page."""
    table = result.table()
    shown = table[[c for c in TABLE_COLUMNS if c in table.columns]]
    folds = pd.DataFrame([f.to_dict() for f in result.folds])
    cfg = html.escape(json.dumps(result.config.to_dict(), default=str))
    feats = html.escape(", ".join(result.feature_names))
    equity, acc = _png(equity_figure(result)), _png(fold_accuracy_figure(result))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Features ({html.escape(result.feature_set_version or "unversioned")}): {feats}</p>
<p>Configuration: <code>{cfg}</code></p>
<h2>Summary: models vs. baselines (pooled out-of-sample)</h2>
{shown.to_html(float_format=lambda v: f"{v:.4f}", na_rep="–")}
<h2>Equity curves</h2><img alt="equity curves" src="data:image/png;base64,{equity}">
<h2>Accuracy per fold</h2><img alt="accuracy per fold" src="data:image/png;base64,{acc}">
<h2>Folds</h2>
{folds.to_html(index=False)}
{details_html(result)}
</body></html>
"""


def details_html(result: WalkForwardResult) -> str:
    """Per fold, what each tuned model's study chose and each stack's meta-learner weighed."""
    parts = []
    for name, rows in result.model_details.items():
        flat = [
            {k: json.dumps(v, default=str) if isinstance(v, dict | list) else v
             for k, v in row.items()}
            for row in rows
        ]  # fmt: skip
        parts.append(f"<h3>{html.escape(name)}</h3>{pd.DataFrame(flat).to_html(index=False)}")
    if not parts:
        return ""
    return "<h2>Tuning (Optuna, inside each training window) and stacking</h2>" + "".join(parts)


def write_report(
    result: WalkForwardResult, out_dir: Path | str, stem: str = "walk_forward"
) -> ReportPaths:
    """Write ``<stem>.json`` and ``<stem>.html`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(json=out / f"{stem}.json", html=out / f"{stem}.html")
    paths.json.write_text(report_json(result), encoding="utf-8")
    paths.html.write_text(report_html(result), encoding="utf-8")
    return paths


#: Features shown in a SHAP summary plot (largest mean |contribution| first).
SHAP_FEATURES = 15
#: Rows explained for a summary plot: the newest of the training window.
SHAP_ROWS = 2_000


def shap_summary_figure(
    contributions: np.ndarray, values: np.ndarray, names: list[str], title: str
) -> Figure:
    """A SHAP summary (bee-swarm) plot: one row per feature, one dot per explained row.

    x is the feature's contribution to the margin, the colour its value (low blue, high
    red, missing grey); features ordered by mean |contribution|. Drawn with matplotlib from
    the libraries' own TreeSHAP, as ``shap.summary_plot`` draws it (the ``shap`` package
    cannot be installed beside ``lleaves``: see docs/models.md).
    """
    phi = np.asarray(contributions, dtype=np.float64)[:, : len(names)]
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.nanmean(np.abs(phi), axis=0), kind="stable")[:SHAP_FEATURES]
    fig = Figure(figsize=(9, 0.35 * len(order) + 1.5))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for row, j in enumerate(order[::-1]):
        column = x[:, j]
        finite = np.isfinite(column)
        lo, hi = np.nanpercentile(column, [5, 95]) if finite.any() else (0.0, 1.0)
        scaled = np.clip((column - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
        jitter = rng.uniform(-0.3, 0.3, size=column.size)
        ax.scatter(phi[~finite, j], row + jitter[~finite], s=4, color="#999999")
        ax.scatter(phi[finite, j], row + jitter[finite], s=4, c=scaled[finite], cmap="coolwarm",
                   vmin=0.0, vmax=1.0)  # fmt: skip
    ax.set_yticks(range(len(order)), [names[j] for j in order[::-1]], fontsize=8)
    ax.axvline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("TreeSHAP contribution (margin units); colour: feature value, low → high")
    ax.set_title(title)
    return fig


def write_shap_report(
    models: dict[str, Any], X: np.ndarray, names: list[str], out_dir: Path | str, stem: str
) -> Path | None:
    """``<stem>.html`` with one SHAP summary plot per model that has native TreeSHAP, or
    integrated gradients (the MLP).

    ``models`` maps a name to a :class:`training.champion.PackagedModel`; ``X`` are rows in
    feature order (the newest :data:`SHAP_ROWS` are explained). ``None`` when no model has
    either. A stateful model (the LSTM) is left out: it explains a tick from its symbol's
    state, which rows without symbols do not give.
    """
    rows = np.asarray(X, dtype=np.float64)[-SHAP_ROWS:]
    sections = []
    for name, packaged in models.items():
        if packaged.stateful:
            continue
        contributions = packaged.contributions(rows)
        if contributions is None:
            continue
        units = "P(up)" if packaged.scoring_path == "forest" else "log-odds"
        if packaged.scoring_path == "onnx":
            units = f"integrated gradients, {units}"
        png = _png(shap_summary_figure(contributions, rows, names, f"{name} ({units})"))
        sections.append(
            f'<h2>{html.escape(name)}</h2><img alt="SHAP summary of {html.escape(name)}" '
            f'src="data:image/png;base64,{png}">'
        )
    if not sections:
        return None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem}.html"
    path.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(stem)}</title>'
        f"</head><body><h1>TreeSHAP summary, {len(rows):,} newest training rows</h1>"
        + "".join(sections)
        + "</body></html>",
        encoding="utf-8",
    )
    return path
