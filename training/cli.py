"""``tickcast train``: walk-forward evaluation, final fit, and registration in MLflow.

Mount it with ``app.add_typer(training.cli.app, name="train")`` (options directly after
``train``) or ``app.command("train")(training.cli.train_command)``.

Per horizon: features of the training window are computed once with the stream's indicator
code; the walk-forward run evaluates XGBoost and LightGBM against the baselines (purged
folds, costs); the report (HTML + JSON) goes to ``<data_dir>/reports/<run>``; each chosen
model is then fitted on the whole training window and registered under
``tickcast-direction-h{horizon}``. When that name has no champion yet, the model with the
better walk-forward ``--metric`` is registered first and becomes the champion; the others
become challengers. Bars after ``--train-until`` are held out for streaming.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from indicators.feature_sets import SPECS as FEATURE_SETS
from indicators.feature_sets import feature_set as named_set
from tickcast.config import Settings
from tickcast.errors import ConfigError, TickcastError

app = typer.Typer(
    add_completion=False,
    help="Walk-forward evaluate, fit and register direction models (XGBoost, LightGBM).",
)
console = Console()
#: Models ``--model`` can register (the random forest is a baseline unless registered).
CANDIDATES = ("xgboost", "lightgbm", "random_forest", "mlp", "lstm", "arima", "stack")
TREES = ("xgboost", "lightgbm", "random_forest")
LOWER_IS_BETTER = {"log_loss", "brier", "max_drawdown", "volatility"}
METRICS = {"accuracy", "auc", "log_loss", "brier", "sharpe", "sortino", "ic_mean",
           "rank_ic_mean", "annualized_return", "max_drawdown"}  # fmt: skip
SHOWN = {
    "accuracy": "acc", "auc": "auc", "log_loss": "logloss",
    "sharpe": "sharpe", "max_drawdown": "max dd", "accuracy_vs_best_naive": "Δacc naive",
    "sharpe_vs_best_naive": "Δsharpe naive",
}  # fmt: skip


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``tickcast train`` was asked to do."""

    dataset: str = "sp500-daily"
    symbols: int = 100
    train_until: str | None = None
    horizons: tuple[int, ...] = (1,)
    window: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = None
    splits: int = 5
    cost_bps: float = 1.0
    models: tuple[str, ...] = ("xgboost", "lightgbm")
    baselines: bool = True
    metric: str = "auc"
    name: str | None = None
    n_estimators: int | None = None
    seed: int = 0
    cache_dir: Path | None = None
    feature_set: str = "classic"
    """The named feature set (indicators.feature_sets) of the frame and the models."""
    side: bool = False
    """Add the side features (TICKCAST_SIDE_*; macro from statsmodels macrodata)."""
    side_news: Path | None = None
    """News headlines (JSON lines) for the side features' sentiment columns."""
    side_macro: tuple[str, ...] = ()
    """``SERIES=FILE`` FRED files (JSON or CSV) for macro series; macrodata for the others."""
    tune: int = 0
    """Optuna trials per training window (0: no tuning); tunable models become ``*_tuned``."""
    stack_bases: tuple[str, ...] = ()
    """Base models of ``stack`` (empty: training.stacking.DEFAULT_BASES)."""

    def registered_models(self) -> tuple[str, ...]:
        """The models to register: with ``tune``, each tunable one as ``<model>_tuned``."""
        from training.tuning import SPACES, SUFFIX

        if not self.tune:
            return self.models
        return tuple(m + SUFFIX if m in SPACES else m for m in self.models)

    def evaluated_models(self) -> tuple[str, ...]:
        """Registered models, then the untuned originals of tuned ones and the baselines."""
        from training.models import BASELINES

        extra = BASELINES if self.baselines else ()
        return tuple(dict.fromkeys(self.registered_models() + self.models + extra))

    def model_params(self) -> dict[str, dict[str, Any]]:
        """Per chosen model (the baselines keep their defaults): ``--n-estimators`` (tree
        models and the stack's trees), ``--tune``, ``--stack-bases``."""
        params: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(self.registered_models() + self.models):
            base = name.removesuffix("_tuned")
            entry: dict[str, Any] = {}
            if self.n_estimators and (base in TREES or base == "stack"):
                entry["n_estimators"] = self.n_estimators
            if name.endswith("_tuned"):
                entry["n_trials"] = self.tune
            if name == "stack" and self.stack_bases:
                entry["bases"] = self.stack_bases
            if entry:
                params[name] = entry
        return params


@dataclass
class HorizonOutcome:
    """What training one horizon produced."""

    horizon: int
    name: str
    report_json: Path
    report_html: Path
    table: pd.DataFrame
    registered: list[Any] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def load_bars(options: TrainOptions) -> pd.DataFrame:
    """The data set by name (``devtools.datasets``) or a CSV/Parquet bar file, symbol-limited."""
    from devtools.datasets import DATASETS, load
    from streams.files import load_user_file

    if options.dataset in DATASETS:
        bars = load(options.dataset, options.cache_dir)
    else:
        bars = load_user_file(Path(options.dataset), "bars")
    if options.symbols > 0:
        keep = sorted(bars["symbol"].unique())[: options.symbols]
        bars = bars[bars["symbol"].isin(keep)]
    return bars.reset_index(drop=True)


def split_train(bars: pd.DataFrame, train_until: str | None) -> tuple[pd.DataFrame, int]:
    """Bars strictly before the cut (``train_until`` date, else 80 % of the timestamps)."""
    stamps = np.unique(bars["ts_ms"].to_numpy())
    if train_until:
        try:
            cut = int(pd.Timestamp(train_until, tz="UTC").value // 1_000_000)
        except (TypeError, ValueError) as exc:
            raise TickcastError(f"--train-until {train_until!r} is not a date: {exc}") from None
    else:
        cut = int(stamps[min(int(len(stamps) * 0.8), len(stamps) - 1)])
    train = bars[bars["ts_ms"] < cut].reset_index(drop=True)
    if train.empty:
        raise TickcastError(f"no bars before {_date(cut)}; pick a later --train-until")
    return train, cut


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _cached(compute: Callable[[pd.DataFrame, Any], pd.DataFrame], full: pd.DataFrame) -> Any:
    """``compute`` that remembers its result for the full training frame (shared by horizons)."""
    memo: dict[str, pd.DataFrame] = {}

    def run(bars: pd.DataFrame, feature_set: Any) -> pd.DataFrame:
        if bars is full:
            if "full" not in memo:
                memo["full"] = compute(bars, feature_set)
            return memo["full"].copy()
        return compute(bars, feature_set)

    return run


def _ranked(table: pd.DataFrame, models: tuple[str, ...], metric: str) -> list[str]:
    values = table.loc[list(models), metric].astype(float).fillna(-np.inf)
    if metric in LOWER_IS_BETTER:
        values = -values.where(np.isfinite(values), np.inf)
    return list(values.sort_values(ascending=False, kind="stable").index)


def train_horizon(
    train: pd.DataFrame,
    options: TrainOptions,
    horizon: int,
    settings: Settings,
    out_dir: Path,
    compute: Callable[[pd.DataFrame, Any], pd.DataFrame],
    step: Callable[[str], None] = lambda _: None,
    feature_set: Any = None,
) -> HorizonOutcome:
    """Walk-forward, report, final fits and registration for one horizon."""
    from indicators import FeatureSet
    from training import registry
    from training.champion import PackagedModel, return_scale_of
    from training.dataset import build_dataset
    from training.point_in_time import keyed
    from training.reference import reference_from_frame
    from training.report import write_report, write_shap_report
    from training.walk_forward import WalkForwardConfig, fit_model, run_walk_forward

    fs = feature_set if feature_set is not None else FeatureSet.default()
    n_ts = len(np.unique(train["ts_ms"]))
    train_size = options.train_size
    if options.window == "rolling" and not train_size:
        train_size = max(20, 2 * n_ts // (options.splits + 1))
    config = WalkForwardConfig(
        horizon=horizon,
        n_splits=options.splits,
        window=options.window,
        train_size=train_size,
        models=options.evaluated_models(),
        model_params=options.model_params(),
        cost_bps=options.cost_bps,
        seed=options.seed,
        drop_incomplete=False,  # warm-up rows are scored live, so they are trained on too
    )
    timings: dict[str, float] = {}
    began = time.perf_counter()
    step(f"h={horizon}: walk-forward ({len(config.models)} models × {options.splits} folds)")
    result = run_walk_forward(train, fs, config, compute=compute)
    timings["walk_forward_s"] = time.perf_counter() - began
    paths = write_report(result, out_dir, stem=f"walk_forward_h{horizon}")
    table = result.table()
    name = options.name or registry.default_name(horizon)
    dataset = build_dataset(
        train, keyed(compute(train, fs)), list(fs.names), horizon,
        drop_incomplete=False, version=fs.version,
    )  # fmt: skip
    reference = reference_from_frame(dataset.frame, fs.names, fs.version)
    scale = return_scale_of(dataset.frame["fwd_return"].to_numpy())
    window = (int(dataset.frame["ts_ms"].min()), int(dataset.frame["ts_ms"].max()))
    has_champion = registry.champion(settings, name) is not None
    order = _ranked(table, options.registered_models(), options.metric)
    outcome = HorizonOutcome(horizon, name, paths.json, paths.html, table, seconds=timings)
    for rank, kind in enumerate(order):
        step(f"h={horizon}: final fit of {kind} on {len(dataset.frame):,} rows")
        t0 = time.perf_counter()
        model = fit_model(dataset, kind, config)
        packaged = PackagedModel(kind, model, tuple(fs.names), fs.version, horizon, scale, window)
        timings[f"fit_{kind}_s"] = time.perf_counter() - t0
        packaged.prepare()  # the random forest explains through its XGBoost booster
        recent = dataset.frame[list(fs.names)].to_numpy(dtype=float)
        shap = write_shap_report({kind: packaged}, recent, list(fs.names), out_dir,
                                 f"shap_{kind}_h{horizon}")  # fmt: skip
        details = write_fit_details(model, out_dir, f"fit_{kind}_h{horizon}")
        step(f"h={horizon}: register {kind} in MLflow")
        t0 = time.perf_counter()
        role: registry.Role = "auto" if not has_champion and rank == 0 else "challenger"
        outcome.registered.append(
            registry.register(
                packaged,
                name=name,
                feature_set=fs,
                horizon=horizon,
                params={"walk_forward": config.to_dict(), "model": getattr(model, "params", {})},
                metrics=result.aggregate.get(kind, {}),
                report_paths=[paths.json, paths.html, *(p for p in (shap, details) if p)],
                reference=reference,
                train_window=window,
                settings=settings,
                role=role,
                sample=dataset.frame[list(fs.names)].to_numpy()[-200:],
            )
        )
        timings[f"register_{kind}_s"] = time.perf_counter() - t0
    return outcome


def write_fit_details(model: Any, out_dir: Path, stem: str) -> Path | None:
    """``<stem>.json``: a tuned model's Optuna study (every trial) or a stack's fit summary
    (OOF rows, meta weights); ``None`` for other models. Logged with the MLflow run."""
    summary = getattr(model, "study_summary", None) or getattr(model, "fit_summary", None)
    if not callable(summary):
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(summary(), indent=2, default=str), encoding="utf-8")
    return path


def run_training(
    options: TrainOptions, settings: Settings, step: Callable[[str], None] = lambda _: None
) -> tuple[list[HorizonOutcome], dict[str, Any]]:
    """Load, split, and train every horizon; returns the outcomes and run facts."""
    from indicators import compute_frame

    began = time.perf_counter()
    step(f"load {options.dataset}")
    bars = load_bars(options)
    train, cut = split_train(bars, options.train_until)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = settings.data_dir / "reports" / run
    facts: dict[str, Any] = {
        "run": run,
        "report_dir": out_dir,
        "symbols": int(bars["symbol"].nunique()),
        "train_bars": len(train),
        "held_out_bars": len(bars) - len(train),
        "train_from": _date(int(train["ts_ms"].min())),
        "held_out_from": _date(cut),
        "load_s": time.perf_counter() - began,
    }
    compute = _cached(compute_frame, train)
    feature_set: Any = named_set(options.feature_set)
    facts["feature_set"] = options.feature_set
    if options.side:
        feature_set, side_compute = side_training(options, settings, train, facts, step)
        compute = _cached(side_compute, train)
    outcomes = []
    with warnings.catch_warnings():
        # the baselines' median imputer skips all-NaN columns (quotes on daily bars)
        warnings.filterwarnings("ignore", message="Skipping features without any observed")
        for horizon in options.horizons:
            outcomes.append(
                train_horizon(
                    train, options, horizon, settings, out_dir, compute, step, feature_set
                )
            )
    facts["total_s"] = time.perf_counter() - began
    return outcomes, facts


def side_training(
    options: TrainOptions,
    settings: Settings,
    train: pd.DataFrame,
    facts: dict[str, Any],
    step: Callable[[str], None] = lambda _: None,
) -> tuple[Any, Callable[[pd.DataFrame, Any], pd.DataFrame]]:
    """The side feature set and its computer; refuses side data that is not point-in-time."""
    from sidestreams.features import SideFeatureSet, spec_from_settings
    from sidestreams.frame import side_computer, side_frame
    from sidestreams.macro_inputs import training_macro
    from sidestreams.sources import NewsFile
    from training.point_in_time import check_side_point_in_time

    spec = spec_from_settings(settings)
    files = ", ".join(options.side_macro) or "macrodata"
    step(f"side data: {files}" + (f" and {options.side_news.name}" if options.side_news else ""))
    try:
        macro = training_macro(spec.macro_series, options.side_macro)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    news = NewsFile(options.side_news).load() if options.side_news else None
    news_records = news.records if news else []
    rejected = macro.rejected + (news.rejected if news else [])
    records: list[Any] = [*macro.records, *news_records]

    def recompute(subset: Any) -> pd.DataFrame:
        ms = [r for r in subset if "series_id" in r]
        return side_frame(train, spec, ms, [r for r in subset if "symbols" in r])

    cutoffs = check_side_point_in_time(recompute, records, spec.names)
    facts.update(
        feature_set=f"{options.feature_set}+side", side_features=list(spec.names),
        side_records=len(records),
        side_rejected=len(rejected), side_cutoffs_checked=len(cutoffs),
    )  # fmt: skip
    fs = SideFeatureSet(named_set(options.feature_set), spec)
    return fs, side_computer(spec, macro.records, news_records)


def _summary(outcome: HorizonOutcome) -> Table:
    table = Table(
        title=f"walk-forward, horizon {outcome.horizon}: pooled out-of-sample (dim = baseline)"
    )
    table.add_column("model", no_wrap=True)
    cols = [c for c in SHOWN if c in outcome.table.columns]
    for col in cols:
        table.add_column(SHOWN[col], justify="right", no_wrap=True)
    for model, row in outcome.table.iterrows():
        label = f"[dim]{model}[/]" if row.get("is_baseline") else f"[bold]{model}[/]"
        table.add_row(label, *(_fmt(row[c]) for c in cols))
    return table


def _fmt(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if not np.isfinite(number) else f"{number:.3f}"


def train_command(
    dataset: Annotated[str, typer.Option(help="Data set name or a CSV/Parquet bar file.")] = (
        "sp500-daily"
    ),
    symbols: Annotated[int, typer.Option(help="First N symbols (alphabetical); 0 = all.")] = 100,
    train_until: Annotated[
        str | None, typer.Option(help="Train on bars before this date (default: first 80 %).")
    ] = None,
    horizon: Annotated[list[int], typer.Option(help="Horizon in bars (repeatable).")] = [1],  # noqa: B006
    window: Annotated[str, typer.Option(help="expanding | rolling")] = "expanding",
    train_size: Annotated[int | None, typer.Option(help="Rolling window, in bars.")] = None,
    splits: Annotated[int, typer.Option(help="Walk-forward folds.")] = 5,
    cost_bps: Annotated[float, typer.Option(help="Cost per unit turnover, basis points.")] = 1.0,
    model: Annotated[list[str], typer.Option(help="Model to register (repeatable).")] = [  # noqa: B006
        "xgboost",
        "lightgbm",
    ],
    models: Annotated[
        str | None, typer.Option(help="Models to register, comma-separated (replaces --model).")
    ] = None,
    baselines: Annotated[bool, typer.Option(help="Evaluate the baselines too.")] = True,
    metric: Annotated[str, typer.Option(help="Walk-forward metric that picks the champion.")] = (
        "auc"
    ),
    name: Annotated[str | None, typer.Option(help="Registered model name override.")] = None,
    n_estimators: Annotated[int | None, typer.Option(help="Trees per booster.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Data set cache folder.")] = None,
    feature_set: Annotated[
        str, typer.Option(help="Feature set: classic | alpha158 | classic+alpha158.")
    ] = "classic",
    side: Annotated[
        bool, typer.Option(help="Add the side features (TICKCAST_SIDE_*, docs/side_streams.md).")
    ] = False,
    side_news: Annotated[
        Path | None, typer.Option(help="News headlines (JSON lines) for --side.")
    ] = None,
    side_macro: Annotated[
        list[str],
        typer.Option(
            help="SERIES=FILE: a FRED API JSON or CSV file for a macro series of "
            "--side (repeatable; other series from statsmodels macrodata)."
        ),
    ] = [],  # noqa: B006
    tune: Annotated[
        int,
        typer.Option(
            help="Optuna trials per walk-forward training window (0: off); registers the "
            "tunable models (xgboost, lightgbm, random_forest) as <model>_tuned."
        ),
    ] = 0,
    stack_bases: Annotated[
        str | None,
        typer.Option(help="Base models of --model stack, comma-separated (stateless ones)."),
    ] = None,
    report: Annotated[
        str,
        typer.Option(
            help="walk-forward (train and register) | ic: only the IC table of --model on "
            "--feature-set over every bar, in Qlib's layout (docs/models.md; nothing registered)."
        ),
    ] = "walk-forward",
    seeds: Annotated[int, typer.Option(help="--report ic: seeds from --seed on.")] = 5,
    topk: Annotated[int, typer.Option(help="--report ic: names per leg of the book.")] = 50,
) -> None:
    """Walk-forward evaluate, fit and register direction models (XGBoost, LightGBM)."""
    from tickcast.config import load_settings

    if window not in ("expanding", "rolling"):
        raise typer.BadParameter("window must be expanding or rolling")
    if metric not in METRICS:
        raise typer.BadParameter(f"--metric takes one of {sorted(METRICS)}")
    if models:
        model = [m.strip() for m in models.split(",") if m.strip()]
    if feature_set.endswith("+side"):  # the named side set (sidestreams.feature_sets)
        feature_set, side = feature_set.removesuffix("+side"), True
    if feature_set not in FEATURE_SETS:
        raise typer.BadParameter(f"--feature-set takes {', '.join(FEATURE_SETS)}")
    unknown = [m for m in model if m not in CANDIDATES]
    if unknown:
        raise typer.BadParameter(f"--model takes {', '.join(CANDIDATES)}, not {unknown}")
    if tune < 0:
        raise typer.BadParameter("--tune takes a number of trials >= 0")
    bases = tuple(b.strip() for b in (stack_bases or "").split(",") if b.strip())
    options = TrainOptions(
        dataset=dataset, symbols=symbols, train_until=train_until, horizons=tuple(horizon),
        window=window,  # type: ignore[arg-type]
        train_size=train_size, splits=splits, cost_bps=cost_bps,
        models=tuple(dict.fromkeys(model)), baselines=baselines, metric=metric, name=name,
        n_estimators=n_estimators, seed=seed, cache_dir=cache_dir, side=side,
        feature_set=feature_set,
        side_news=side_news, side_macro=tuple(side_macro), tune=tune, stack_bases=bases,
    )  # fmt: skip
    settings = load_settings()
    if report not in ("walk-forward", "ic"):
        raise typer.BadParameter("--report takes walk-forward or ic")
    if report == "ic":
        _ic_report(options, settings, seeds, topk)
        return
    steps = 1 + len(options.horizons) * (1 + 2 * len(options.models))
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )  # fmt: skip
    try:
        with progress:
            task = progress.add_task("train", total=steps)
            first = [True]

            def step(text: str) -> None:
                if not first[0]:
                    progress.advance(task)
                first[0] = False
                progress.update(task, description=text)

            outcomes, facts = run_training(options, settings, step)
            progress.update(task, completed=steps, description="done")
    except TickcastError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    _print(outcomes, facts)


def _ic_report(options: TrainOptions, settings: Settings, seeds: int, topk: int) -> None:
    """``--report ic``: the IC table of ``options.models`` on ``options.feature_set``."""
    import json

    from training.ic_report import ICConfig, build_datasets, run_ic_table, to_json, to_markdown

    config = ICConfig(
        feature_sets=(options.feature_set,), models=options.models,
        seeds=tuple(range(options.seed, options.seed + max(seeds, 1))),
        horizon=options.horizons[0], n_splits=options.splits, topk=topk,
        cost_bps=options.cost_bps, n_estimators=options.n_estimators,
    )  # fmt: skip
    began = time.perf_counter()
    try:
        bars = load_bars(options)
        datasets = build_datasets(bars, config.feature_sets, config.horizon)
        with console.status("IC table") as status:
            rows = run_ic_table(datasets, config, bars, step=status.update)
    except TickcastError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    facts = {"symbols": int(bars["symbol"].nunique()), "bars": len(bars),
             "total_s": round(time.perf_counter() - began, 1)}  # fmt: skip
    out = settings.data_dir / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(rows)
    (out / "ic_table.md").write_text(markdown + "\n", encoding="utf-8")
    (out / "ic_table.json").write_text(
        json.dumps(to_json(rows, config, facts), indent=2), encoding="utf-8"
    )
    console.print(markdown, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {out / 'ic_table.md'} ({facts['total_s']} s)")


def _print(outcomes: list[HorizonOutcome], facts: dict[str, Any]) -> None:
    console.print(
        f"{facts['symbols']} symbols, {facts['train_bars']:,} training bars from "
        f"{facts['train_from']}; {facts['held_out_bars']:,} bars from "
        f"{facts['held_out_from']} held out for streaming"
    )
    for outcome in outcomes:
        console.print(_summary(outcome))
        for reg in outcome.registered:
            console.print(
                f"  registered {reg.name} v{reg.version} ({reg.tags.get('model_kind', '?')}) "
                f"as [bold]{reg.role}[/] (run {reg.run_id})"
            )
        console.print(f"  report: {outcome.report_html}")
        timing = ", ".join(f"{k} {v:.1f}" for k, v in outcome.seconds.items())
        console.print(f"  seconds: {timing}")
    console.print(f"trained in {facts['total_s']:.1f} s (data load {facts['load_s']:.1f} s)")


app.callback(invoke_without_command=True)(train_command)
