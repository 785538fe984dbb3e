"""In-stream scoring and the outcome join: the stage after the features in the worker's batch.

:class:`PredictionStage` implements :class:`agents.stages.BatchStage`. Per micro-batch:

1. **Score.** Every feature record is scored by the champion and every challenger of each
   configured registered model (``Settings.model_name``, comma-separated; the first is the
   *primary*), plus the online River challengers restored from the newest learner
   checkpoint (shadow, role ``CHALLENGER``, version ``online-<n_learned>``). One matrix and
   ONE ``predict_proba`` call per model per batch (:class:`agents.scoring.Scorer`).
2. **Serve.** The primary champion's newest prediction per symbol becomes the Redis JSON the
   API reads (``prediction:<SYMBOL>``); the newest challenger's (the newest registered one,
   else the first online one) goes to ``prediction:<SYMBOL>:challenger``.
3. **Join.** Per symbol an :class:`online_learning.outcomes.OutcomeJoiner` lives in
   ``SymbolStream.extra["outcomes"]``, so it is checkpointed and restored atomically with
   the feature state. For each feature record in stream order: ``on_bar(ts, close)`` first
   (resolves predictions made ``h`` bars ago, whose label is now known), then this bar's
   predictions are added, each carrying the prediction-time feature vector, so the outcome
   carries it to the learner. State is bounded by the largest horizon.

Model changes are picked up between batches, never inside one: :meth:`PredictionStage.refresh`
(awaited by the feature agent between batches) polls the registry aliases and the online
checkpoint id at most every ``model_poll_interval_s`` in a worker thread, loads what changed
in that thread while the stream keeps flowing, and swaps the finished set at a later
``refresh``. A model trained on a feature set the stream's does not contain (or naming a
column it lacks) is refused with the reason (``model_set_refused``,
``tickcast_model_refusals_total``) and the old set kept: the stream's set is fixed for the
run (agents.worker), serving a new one takes a restart.
Without a champion nothing is scored (log line, ``tickcast_model_info`` 0);
MLflow down: log, ``tickcast_dependency_up{component="mlflow"}`` 0, retry at the next poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agents.feature_engine import BatchOutput
from agents.online_models import OnlineModel, select, to_models
from agents.scoring import CHALLENGER, CHAMPION, ModelSet, Scorer, load_model_set, watch_aliases
from agents.stages import StageOutput
from indicators.feature_set import FeatureSet
from online_learning.challengers import OnlineChallenger
from online_learning.outcomes import OutcomeJoiner
from schemas.records import FeatureVector, Outcome, Prediction
from schemas.serving import serving_json
from tickcast.config import Settings
from tickcast.errors import DependencyError, TickcastError
from tickcast.metrics import Metrics
from training.champion import PackagedModel, feature_importance

log = structlog.get_logger(__name__)

Versions = tuple[int | None, tuple[int, ...]]
Publish = Callable[[list[Prediction]], None]
_PENDING_DROP = ("produced_at", "scoring_latency_ms")


class ModelSource(Protocol):
    """Where models come from (MLflow in production; a fake in tests)."""

    def watch(self, name: str) -> Versions:
        """(champion version, challenger versions newest first) of ``name``."""
        ...

    def load(self, name: str, versions: Versions) -> ModelSet:
        """The models of ``name`` at ``versions``."""
        ...

    def checkpoint_id(self) -> str | None:
        """Id of the newest online-learner checkpoint (``None``: none yet)."""
        ...

    def restore(self) -> tuple[str | None, list[OnlineChallenger]]:
        """The newest checkpoint's id and challengers."""
        ...


class MlflowSource:
    """The MLflow registry and the online checkpoints of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pinned: Versions | None = None

    def watch(self, name: str) -> Versions:
        pinned = [v for v in self.settings.model_versions.split(",") if v.strip()]
        first = self.settings.model_name.split(",")[0].strip()
        if not pinned or name != first:
            return watch_aliases(self.settings, name)
        if self._pinned is None:  # resolved once: a pinned run never follows an alias
            from training.registry import resolve_versions  # mlflow: imported on use

            versions = resolve_versions(self.settings, name, pinned)
            self._pinned = (versions[0], versions[1:])
        return self._pinned

    def load(self, name: str, versions: Versions) -> ModelSet:
        return load_model_set(self.settings, name, versions)

    def checkpoint_id(self) -> str | None:
        from online_learning.checkpoint import latest_checkpoint_id

        return latest_checkpoint_id(self.settings)

    def restore(self) -> tuple[str | None, list[OnlineChallenger]]:
        from online_learning.checkpoint import restore_checkpoint

        found = restore_checkpoint(self.settings)
        return (None, []) if found is None else (found.run_id, found.challengers)


@dataclass
class _Poll:
    """What one registry poll found (built in a thread, applied on the event loop)."""

    sets: dict[str, tuple[Versions, ModelSet]] = field(default_factory=dict)
    online: tuple[str | None, list[OnlineChallenger]] | None = None
    errors: list[str] = field(default_factory=list)
    reached: bool = False
    down: bool = False


class PredictionStage:
    """Scoring, serving JSON and the outcome join of one worker (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        feature_set: FeatureSet | None = None,
        source: ModelSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        compatible: Collection[str] = (),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.feature_set = feature_set or FeatureSet.default()
        self.source: ModelSource = source or MlflowSource(settings)
        self.clock = clock
        names = [n.strip() for n in settings.model_name.split(",") if n.strip()]
        self.names = names or ["tickcast-direction-h1"]
        self.primary = self.names[0]
        fsv = self.feature_set.version
        top_k = settings.explain_top_k
        cols, ok = self.feature_set.names, compatible  # models of a contained set read by name
        self.scorers = {
            name: Scorer(
                ModelSet(),
                fsv,
                top_k,
                columns=cols,
                compatible=ok,
                explain_budget=settings.explain_budget,
            )
            for name in self.names
        }
        self.registry: dict[str, ModelSet] = {name: ModelSet() for name in self.names}
        self.online: list[OnlineModel] = []
        self.seen: dict[str, Versions] = {}
        self.checkpoint: str | None = None
        self.horizons = tuple(
            sorted({int(h) for h in settings.outcome_horizons.split(",") if h.strip()})
        )
        self.unscored = 0
        self._job: asyncio.Future[_Poll] | None = None
        self._next_poll = 0.0
        self._publish: Publish | None = None

    def publish_early(self, publish: Publish) -> None:
        """Hand each batch's predictions to ``publish`` as soon as they are scored.

        Why: the tick → prediction latency ends when the prediction is produced, and the
        outcome join, the serving JSON and (in the feature stage) the Redis writes and the
        feature records do not gate it; run before the produce, they added their time to
        every tick of the batch. The predictions are still returned in the
        :class:`StageOutput`; the caller that registered ``publish`` must not produce them
        again.
        """
        self._publish = publish

    # --- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Load the current models synchronously (worker start); MLflow down is survivable."""
        self._apply(self._poll())
        self._next_poll = self.clock() + self.settings.model_poll_interval_s

    async def refresh(self) -> None:
        """Between batches: apply a finished background poll, start one when due."""
        job = self._job
        if job is not None:
            if not job.done():
                return
            self._job = None
            try:
                self._apply(job.result())
            except Exception:  # a bug in a poll must not stop the stream
                log.exception("model_poll_failed")
        if self.clock() >= self._next_poll:
            self._next_poll = self.clock() + self.settings.model_poll_interval_s
            self._job = asyncio.ensure_future(asyncio.to_thread(self._poll))

    async def reload_now(self) -> None:
        """Poll and apply at once (tests, admin hooks); waits for a running poll first."""
        if self._job is not None:
            await asyncio.wait([self._job])
            await self.refresh()
        self._apply(await asyncio.to_thread(self._poll))

    def describe(self) -> dict[str, Any]:
        """What scores right now (logs, health pages, tests)."""
        return {name: s.model_set.describe() for name, s in self.scorers.items()}

    # --- polling (worker thread) -------------------------------------------------------------
    def _poll(self) -> _Poll:
        found = _Poll()
        for name in self.names:
            try:
                versions = self.source.watch(name)
                found.reached = True
                if versions == self.seen.get(name):
                    continue
                if versions[0] is None and self.registry[name].champion is not None:
                    continue  # a registry mid-update; the champion alias never disappears
                found.sets[name] = (versions, self.source.load(name, versions))
            except DependencyError as exc:
                found.down = True
                found.errors.append(f"{name}: {exc}")
            except TickcastError as exc:
                found.errors.append(f"{name}: {exc}")
        if self.settings.online_shadow_models.strip():
            try:
                ckpt = self.source.checkpoint_id()
                if ckpt != self.checkpoint:
                    found.online = self.source.restore()
            except DependencyError as exc:
                found.down = True
                found.errors.append(f"online checkpoint: {exc}")
            except TickcastError as exc:
                found.errors.append(f"online checkpoint: {exc}")
        return found

    # --- applying (event loop, between batches) ----------------------------------------------
    def _apply(self, found: _Poll) -> None:
        for error in found.errors:
            log.warning("model_source_unavailable", error=error[:500])
        self.metrics.set_dependency("mlflow", found.reached and not found.down)
        for name, (versions, model_set) in found.sets.items():
            self.seen[name] = versions  # refused or not: retry only when the aliases move
            limit_threads(model_set, self.settings.scoring_threads)
            self._swap(name, model_set, self.online)
        if found.online is not None:
            run_id, challengers = found.online
            wanted = select(challengers, self.settings.online_shadow_models)
            champion = self.registry[self.primary].champion
            scales = {champion.horizon: champion.return_scale} if champion else {}
            models, refused = to_models(
                wanted, self.feature_set.names, self.feature_set.version, scales
            )
            for reason in refused:
                log.warning("online_challenger_refused", reason=reason)
            if self._swap(self.primary, self.registry[self.primary], models):
                self.checkpoint = run_id
        self._export_models()

    def _swap(self, name: str, registry_set: ModelSet, online: list[OnlineModel]) -> bool:
        extra = [m.as_scoring_model() for m in online] if name == self.primary else []
        candidate = ModelSet(registry_set.champion, [*registry_set.challengers, *extra])
        refusals = self.scorers[name].swap(candidate)
        if refusals:
            self.metrics.model_refusals.labels(model=name).inc()
            log.warning("model_set_refused", model=name, refusals=refusals,
                        keeping=self.scorers[name].model_set.describe())  # fmt: skip
            return False
        self.registry[name] = registry_set
        if name == self.primary:
            self.online = online
        bad = {m.horizon for m, _ in candidate.with_roles()} - set(self.horizons)
        if bad:
            log.warning("horizon_not_joined", model=name, horizons=sorted(bad),
                        outcome_horizons=self.horizons)  # fmt: skip
        log.info("model_set_loaded", model=name, **candidate.describe())
        if candidate.champion is None:
            log.warning("no_champion", model=name, detail="records are not scored")
        return True

    def _export_models(self) -> None:
        self.metrics.model_info.clear()
        importances: dict[str, dict[str, float]] = {}
        for name, scorer in self.scorers.items():
            models = scorer.model_set.with_roles()
            champion = scorer.model_set.champion
            if champion is None:
                self.metrics.model_info.labels(model=name, version="", role=CHAMPION).set(0)
            elif isinstance(champion.predictor, PackagedModel):
                importances[champion.name] = feature_importance(champion.predictor)
            for model, role in models:
                self.metrics.model_info.labels(
                    model=model.name, version=str(model.version), role=role
                ).set(1)
        self.metrics.set_feature_importances(importances)

    # --- one micro-batch ---------------------------------------------------------------------
    def process(self, out: BatchOutput, now_ms: int) -> StageOutput:
        """Score the batch's feature records and join outcomes (see the module doc)."""
        result = StageOutput()
        rows = out.features
        if not rows:
            return result
        per_row: list[list[Prediction]] = [[] for _ in rows]
        with self.metrics.stage_timer("predictions"):
            states = {symbol: state.extra for symbol, state in out.touched.items()}
            for name, scorer in self.scorers.items():
                self._score(name, scorer, rows, now_ms, per_row, result.predictions, states)
            if self._publish is not None and result.predictions:
                self._publish(result.predictions)
            self._latest(result)
        with self.metrics.stage_timer("outcomes"):
            result.outcomes = self._join(out, per_row)
        return result

    def _score(
        self,
        name: str,
        scorer: Scorer,
        rows: Sequence[FeatureVector],
        now_ms: int,
        per_row: list[list[Prediction]],
        predictions: list[Prediction],
        states: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        with self.metrics.scoring_timer(name):
            batch = scorer.score_batch(rows, now_ms, states)
        if batch.rejected:
            reasons = {reason for _, reason in batch.rejected}
            if reasons == {"no_model"}:
                self.unscored += len(batch.rejected)
            else:
                log.warning("rows_not_scored", model=name, n=len(batch.rejected),
                            reasons=sorted(reasons))  # fmt: skip
        for model, error in batch.failures:
            log.warning("model_failed", model=model, error=error)
        if not batch.predictions:
            return
        rejected = {id(row) for row, _ in batch.rejected}
        good = [i for i, row in enumerate(rows) if id(row) not in rejected]
        n = len(good)
        for k, pred in enumerate(batch.predictions):  # n predictions per model, rows in order
            per_row[good[k % n]].append(pred)
        predictions.extend(batch.predictions)
        for start in range(0, len(batch.predictions), n):
            first = batch.predictions[start]
            probs = [p["prob_up"] for p in batch.predictions[start : start + n]]
            confidences = [max(p, 1.0 - p) for p in probs] if first["role"] == CHAMPION else []
            self.metrics.record_predictions(first["model_name"], first["model_version"],
                                            first["role"], confidences, n=n)  # fmt: skip
        if scorer.explain_top_k > 0:
            champion = [p for p in batch.predictions if p["role"] == CHAMPION]
            explained = sum(1 for p in champion if p.get("explanation_features") is not None)
            self.metrics.explanations.labels(outcome="explained").inc(explained)
            self.metrics.explanations.labels(outcome="over_budget").inc(len(champion) - explained)

    def _latest(self, result: StageOutput) -> None:
        model_set = self.scorers[self.primary].model_set
        champion = model_set.champion
        newest = model_set.challengers[0] if model_set.challengers else None
        want = {
            CHAMPION: (self.primary, str(champion.version)) if champion else None,
            CHALLENGER: (newest.name, str(newest.version)) if newest else None,
        }
        targets = {CHAMPION: result.latest, CHALLENGER: result.latest_challenger}
        for pred in result.predictions:
            role = pred["role"]
            if want.get(role) != (pred["model_name"], pred["model_version"]):
                continue
            target = targets[role]
            current = target.get(pred["symbol"])
            if current is None or pred["ts"] >= current["event_time"]:
                target[pred["symbol"]] = serving_json(pred)

    def _join(self, out: BatchOutput, per_row: list[list[Prediction]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        touched = out.touched
        horizons, cost = self.horizons, self.settings.outcome_cost_bps
        for row, close, preds in zip(out.features, out.closes, per_row, strict=True):
            state = touched[row["symbol"]]
            joiner = state.extra.get("outcomes")
            if not isinstance(joiner, OutcomeJoiner) or joiner.horizons != horizons:
                joiner = OutcomeJoiner(horizons, cost_bps=cost)
                state.extra["outcomes"] = joiner
            outcomes.extend(joiner.on_bar(row["ts"], close))
            if preds:
                vec = row["values"]
                pending = [_pending(p, vec) for p in preds]
                outcomes.extend(joiner.add_predictions(pending))
        return outcomes


def _pending(pred: Prediction, vec: Any) -> dict[str, Any]:
    """What the joiner keeps of a prediction: the record without its per-batch timing
    fields, plus the prediction-time feature vector (one copy, no per-key filtering)."""
    pending: dict[str, Any] = dict(pred)
    for key in _PENDING_DROP:
        pending.pop(key, None)
    pending["features"] = vec
    return pending


def limit_threads(model_set: ModelSet, threads: int) -> None:
    """Cap the threads of each XGBoost booster's predict call (``0``: library default).

    Micro-batches are small (tens to hundreds of rows) and a worker is one process per core:
    OpenMP threads fighting for the cores cost more than they bring (a 50-row call of 300
    trees: ~8 ms with all threads on a busy 2-core machine, ~0.3 ms with one).
    """
    if threads <= 0:
        return
    for model, _ in model_set.with_roles():
        estimator = getattr(getattr(model.predictor, "model", None), "estimator", None)
        get_booster = getattr(estimator, "get_booster", None)
        if callable(get_booster):
            get_booster().set_param({"nthread": threads})


__all__ = ["MlflowSource", "ModelSource", "PredictionStage", "limit_threads", "serving_json"]
