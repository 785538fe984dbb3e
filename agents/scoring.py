"""The pure heart of the scoring stage: a micro-batch of feature records in, predictions out.

No I/O here: the runner (the Faust agent, a replay) hands in
:class:`~schemas.records.FeatureVector` records and gets back
:class:`~schemas.records.Prediction` records (the TypedDicts of the ``.avsc`` contracts). The
champion and every challenger score every record (shadow by default); each prediction names
its model, version and role.

Per batch the rows are packed into ONE float64 matrix and each model's ``predict_proba`` is
called ONCE on it (XGBoost ``inplace_predict`` / LightGBM ``Booster.predict`` underneath, see
:class:`training.champion.PackagedModel`): a booster call costs hundreds of µs of set-up, so
row-by-row scoring would cap a worker at a few thousand events per second.

Choices, stated once:

* **Warm-up rows are scored.** ``NaN`` values (an indicator still warming up, a feature the
  data cannot have, such as quotes on daily bars) go to the model as ``NaN``; XGBoost and
  LightGBM route missing values down the default branch learned in training, where the
  same warm-up rows were kept. ``±inf`` is turned into ``NaN`` as in training.
* **Rows that cannot be scored are rejected, never crash the batch**: a different
  feature-set version, a wrong number of values, non-numeric values. They come back in
  :attr:`ScoreBatch.rejected` with a reason (the runner dead-letters or counts them). A
  model whose ``predict_proba`` raises is listed in :attr:`ScoreBatch.failures`; the
  other models' predictions still go out.
* **scoring_latency_ms** is per batch: the wall-clock time from the start of the batch's
  scoring to the moment that model's probabilities for the whole batch were ready (matrix
  build and earlier models included). It is what each row of the batch actually waited
  inside this stage, not the batch time divided by the rows.
* **expected_return** = (2·P(up) − 1) · ``return_scale``, where ``return_scale`` is the mean
  absolute forward log return of the model's training rows.
* **A model may read a subset of the stream's columns.** Given the stream's column names
  ``columns`` and the ``compatible`` feature-set versions (the named sets the stream's set
  contains, :func:`indicators.feature_sets.contained`), a model trained on a compatible set
  is fed its own columns, picked by name from the stream's vector; a model of any other
  version, or naming a column the stream lacks, is refused with the reason.
* **Explanations, champion only.** With ``explain_top_k`` > 0 the champion's predictions
  carry the ``k`` largest TreeSHAP contributions of their row (``explanation_features``,
  ``explanation_contributions``, in the model's margin units; :mod:`training.explain`), from
  ONE more library call per batch; an MLP or LSTM champion's are integrated gradients of its
  logit (:mod:`training.integrated_gradients`), the LSTM's from each row's pre-step state.
  Challengers are not explained. A model without either, or an explanation call that
  raises, leaves the fields out (the failure is in
  :attr:`ScoreBatch.failures`); the probabilities still go out. The champion's
  ``scoring_latency_ms`` includes its explanation. TreeSHAP costs tens to hundreds of times a
  prediction, so ``explain_budget`` = b > 0 caps a batch's explanation time at about b times
  the champion's scoring time (b = 1 keeps ≥ 50 % of the throughput): the rows explained are
  each symbol's newest first (what the API serves), the others keep null fields; the cost per
  row is learned from the previous batches and unspent budget carries over to the next batch
  (:func:`budgeted_rows`). 0 explains every row.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from schemas.records import FeatureVector, ModelRole, Prediction
from tickcast.errors import ModelError
from training.champion import ScoringModel
from training.explain import Explanation, explanations

if TYPE_CHECKING:
    from tickcast.config import Settings

CHAMPION: Final = "CHAMPION"
CHALLENGER: Final = "CHALLENGER"


@dataclass(frozen=True)
class ModelSet:
    """The champion (``None`` before one is registered) and the challengers that shadow it."""

    champion: ScoringModel | None = None
    challengers: Sequence[ScoringModel] = ()

    def with_roles(self) -> list[tuple[ScoringModel, ModelRole]]:
        """Every model with the role it scores under, champion first."""
        out: list[tuple[ScoringModel, ModelRole]] = (
            [(self.champion, CHAMPION)] if self.champion is not None else []
        )
        return out + [(m, CHALLENGER) for m in self.challengers]

    def describe(self) -> dict[str, Any]:
        """``{"champion": "name:v", "challengers": [...]}`` for logs and health pages."""
        return {
            "champion": f"{self.champion.name}:{self.champion.version}" if self.champion else None,
            "challengers": [f"{m.name}:{m.version}" for m in self.challengers],
        }


@dataclass
class ScoreBatch:
    """What one micro-batch produced."""

    predictions: list[Prediction] = field(default_factory=list)
    rejected: list[tuple[FeatureVector, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def refusal(
    model: ScoringModel,
    expected_feature_set_version: str,
    columns: Sequence[str] | None = None,
    compatible: Collection[str] = (),
) -> str | None:
    """Why ``model`` cannot score the stream's features (or ``None``).

    The stream computes ``expected_feature_set_version`` with ``columns``; a model trained on
    a ``compatible`` version scores when the stream computes every column it names.
    """
    who = f"{model.name} v{model.version}"
    fsv = model.feature_set_version
    if fsv != expected_feature_set_version and (columns is None or fsv not in compatible):
        return (
            f"{who}: trained on feature set {fsv!r}, the stream computes "
            f"{expected_feature_set_version!r}; restart the worker with a TICKCAST_FEATURE_SET "
            "that contains the model's set"
        )
    if not model.feature_names:
        return f"{who}: no feature names"
    if fsv != expected_feature_set_version and columns is not None:
        have = set(columns)
        missing = [n for n in model.feature_names if n not in have]
        if missing:
            return f"{who}: the stream does not compute {len(missing)} of its columns {missing[:5]}"
    return None


def column_index(model: ScoringModel, columns: Sequence[str] | None) -> np.ndarray | None:
    """Positions of ``model``'s columns in the stream's (``None``: the whole vector, in order)."""
    if columns is None or tuple(model.feature_names) == tuple(columns):
        return None
    where = {name: i for i, name in enumerate(columns)}
    return np.array([where[n] for n in model.feature_names], dtype=np.intp)


class Scorer:
    """Scores micro-batches with a :class:`ModelSet`; swaps sets atomically.

    The constructor raises :class:`ModelError` when a model of the initial set was trained
    on another feature set; :meth:`swap` instead returns the refusals and keeps the
    previous set, so a bad registry state never takes scoring down.
    """

    def __init__(
        self,
        model_set: ModelSet,
        expected_feature_set_version: str,
        explain_top_k: int = 0,
        *,
        columns: Sequence[str] | None = None,
        compatible: Collection[str] = (),
        explain_budget: float = 0.0,
    ) -> None:
        self.expected_feature_set_version = expected_feature_set_version
        self.columns = tuple(columns) if columns is not None else None
        """The stream's column names (``None``: every model reads the whole vector)."""
        self.compatible = frozenset(compatible)
        """Versions whose models read their columns by name from the stream's vector."""
        self._take: dict[int, np.ndarray | None] = {}
        self.explain_top_k = max(0, int(explain_top_k))
        self.explain_budget = max(0.0, float(explain_budget))
        self._explain_cost_s: dict[str, float] = {}  # seconds per explained row, per model
        self._explain_credit_s: dict[str, float] = {}  # unspent budget carried over, per model
        self._set = ModelSet()
        self._memory: dict[str, dict[str, Any]] = {}
        refusals = self.swap(model_set)
        if refusals:
            raise ModelError("; ".join(refusals))

    @property
    def model_set(self) -> ModelSet:
        """The set currently scoring."""
        return self._set

    @property
    def n_features(self) -> int | None:
        """Width of the stream's feature vectors (``None`` without models)."""
        models = self._set.with_roles()
        if models and self.columns is not None:
            return len(self.columns)
        return len(models[0][0].feature_names) if models else None

    def swap(self, new_set: ModelSet) -> list[str]:
        """Use ``new_set`` from the next batch on, unless a model is refused.

        All or nothing: any refusal (wrong feature-set version, a column the stream lacks, or
        whole-vector models disagreeing on the feature count) keeps the previous set and
        returns the reasons; ``[]`` means swapped.
        """
        models = new_set.with_roles()
        expected, columns = self.expected_feature_set_version, self.columns
        refusals = [
            reason
            for model, _ in models
            if (reason := refusal(model, expected, columns, self.compatible)) is not None
        ]
        if refusals:
            return refusals
        take = {
            id(m): None if m.feature_set_version == expected else column_index(m, columns)
            for m, _ in models
        }
        widths = {len(m.feature_names) for m, _ in models if take[id(m)] is None}
        if columns is not None:
            widths.add(len(columns))
        if len(widths) > 1:
            refusals.append(f"models disagree on the number of features: {sorted(widths)}")
        if not refusals:
            self._set, self._take = new_set, take
        return refusals

    def score(self, rows: Sequence[FeatureVector], now_ms: int) -> list[Prediction]:
        """Predictions of every model for every scorable row (see :meth:`score_batch`)."""
        return self.score_batch(rows, now_ms).predictions

    def score_batch(
        self,
        rows: Sequence[FeatureVector],
        now_ms: int,
        states: Mapping[str, MutableMapping[str, Any]] | None = None,
    ) -> ScoreBatch:
        """Score a micro-batch: one matrix, one ``predict_proba`` call per model.

        Predictions are grouped by model (champion first), rows in input order within each.
        ``now_ms`` becomes ``produced_at``. A stateful model (LSTM, ARIMA) advances each
        symbol's state by one step per row: ``states`` maps a symbol to its checkpointed
        ``SymbolStream.extra`` (the model's state is kept under its ``state_key``); without
        it the scorer keeps the states in memory.
        """
        began = time.perf_counter()
        out = ScoreBatch()
        models = self._set.with_roles()
        if not rows:
            return out
        if not models:
            out.rejected = [(row, "no_model") for row in rows]
            return out
        good, matrix = self._matrix(rows, out.rejected)
        if not good:
            return out
        for model, role in models:
            take = self._take.get(id(model))
            own = matrix if take is None else matrix[:, take]
            started = time.perf_counter()
            try:
                if getattr(model, "stateful", False):  # online challengers have no state
                    prob = self._step(model, good, own, states)
                else:
                    prob = np.asarray(model.predict_proba(own), dtype=np.float64)
                if prob.shape != (len(good),):
                    raise ModelError(f"returned shape {prob.shape} for {len(good)} rows")
            except Exception as exc:  # one broken model must not silence the others
                out.failures.append((f"{model.name}:{model.version}", repr(exc)[:500]))
                continue
            explained: dict[int, Explanation] = {}
            if role == CHAMPION and self.explain_top_k:
                spent = time.perf_counter() - started
                explained = self._explain(model, own, good, spent, out.failures)
            latency_ms = (time.perf_counter() - began) * 1000.0
            out.predictions.extend(_predictions(model, role, good, prob, latency_ms, now_ms))
            start = len(out.predictions) - len(good)
            for i, (names, values) in explained.items():
                out.predictions[start + i]["explanation_features"] = names
                out.predictions[start + i]["explanation_contributions"] = values
        return out

    def _explain(
        self,
        model: ScoringModel,
        matrix: np.ndarray,
        rows: list[FeatureVector],
        scoring_s: float,
        failures: list[tuple[str, str]],
    ) -> dict[int, Explanation]:
        """Top-k TreeSHAP contributions by row index, within the budget (``{}``: none or
        failed, listed in ``failures``)."""
        key = f"{model.name}:{model.version}"
        chosen: list[int] | None = None
        if self.explain_budget > 0:
            # unspent budget carries over (capped at 1 s), so a batch too small to pay for one
            # row still lets a later one explain
            credit = self._explain_credit_s.get(key, 0.0) + self.explain_budget * scoring_s
            self._explain_credit_s[key] = credit = min(credit, 1.0)
            cost = self._explain_cost_s.get(key)
            n = 1 if cost is None else int(credit / max(cost, 1e-9))
            if n < len(rows):
                chosen = budgeted_rows([row["symbol"] for row in rows], n)
        try:
            began = time.perf_counter()
            part = matrix if chosen is None else matrix[chosen]
            if not len(part):
                contributions = None
            elif getattr(model, "stateful", False):  # the LSTM: from the pre-step states
                contributions = model.contributions(part, chosen)
            else:
                contributions = model.contributions(part)
            if contributions is None:
                return {}
            found = explanations(contributions, model.feature_names, self.explain_top_k)
        except Exception as exc:  # an explanation must never cost the prediction
            failures.append((f"{key}:explain", repr(exc)[:500]))
            return {}
        elapsed = time.perf_counter() - began
        if key in self._explain_credit_s:
            self._explain_credit_s[key] -= elapsed
        per_row = elapsed / len(found)
        previous = self._explain_cost_s.get(key)
        self._explain_cost_s[key] = per_row if previous is None else 0.7 * previous + 0.3 * per_row
        return dict(zip(range(len(rows)) if chosen is None else chosen, found, strict=True))

    def _step(
        self,
        model: ScoringModel,
        rows: list[FeatureVector],
        matrix: np.ndarray,
        states: Mapping[str, MutableMapping[str, Any]] | None,
    ) -> np.ndarray:
        """One stateful step per row; the states change only when the whole batch scored."""
        key = model.state_key
        symbols = [row["symbol"] for row in rows]
        if states is None:
            memory = self._memory.setdefault(key, {})
            view = dict(memory)
            prob = np.asarray(model.step(matrix, symbols, view), dtype=np.float64)
            memory.update(view)
            return prob
        view = {s: states[s].get(key) for s in set(symbols) if s in states}
        prob = np.asarray(model.step(matrix, symbols, view), dtype=np.float64)
        for symbol, value in view.items():
            if symbol in states:
                states[symbol][key] = value
        return prob

    def _matrix(
        self, rows: Sequence[FeatureVector], rejected: list[tuple[FeatureVector, str]]
    ) -> tuple[list[FeatureVector], np.ndarray]:
        """The scorable rows and their float64 matrix; the others go to ``rejected``."""
        width = self.n_features or 0
        version = self.expected_feature_set_version
        good: list[FeatureVector] = []
        values: list[Any] = []
        for row in rows:
            vec = row.get("values")
            if row.get("feature_set_version") != version:
                rejected.append((row, "feature_set_mismatch"))
            elif vec is None or len(vec) != width:
                rejected.append((row, "wrong_width"))
            else:
                good.append(row)
                values.append(vec)
        if not good:
            return good, np.empty((0, width))
        try:
            matrix = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            return self._matrix_slow(good, values, rejected, width)
        matrix[np.isinf(matrix)] = np.nan
        return good, matrix

    @staticmethod
    def _matrix_slow(
        good: list[FeatureVector],
        values: list[Any],
        rejected: list[tuple[FeatureVector, str]],
        width: int,
    ) -> tuple[list[FeatureVector], np.ndarray]:
        """Row by row, only when a batch holds a non-numeric value (None counts as NaN)."""
        kept, vectors = [], []
        for row, vec in zip(good, values, strict=True):
            try:
                vectors.append([np.nan if v is None else float(v) for v in vec])
                kept.append(row)
            except (TypeError, ValueError):
                rejected.append((row, "non_numeric"))
        matrix = np.array(vectors, dtype=np.float64).reshape(len(kept), width)
        matrix[np.isinf(matrix)] = np.nan
        return kept, matrix


def budgeted_rows(symbols: Sequence[str], n: int) -> list[int]:
    """The ``n`` rows to explain, ascending: each symbol's newest row first (newest symbols
    first), then the older rows, newest first.

    >>> budgeted_rows(["A", "B", "A", "C", "A"], 3)
    [1, 3, 4]
    >>> budgeted_rows(["A", "B", "A"], 5)
    [0, 1, 2]
    """
    seen: set[str] = set()
    newest: list[int] = []
    older: list[int] = []
    for i in range(len(symbols) - 1, -1, -1):
        (older if symbols[i] in seen else newest).append(i)
        seen.add(symbols[i])
    return sorted((newest + older)[: max(0, n)])


def _predictions(
    model: ScoringModel,
    role: ModelRole,
    rows: list[FeatureVector],
    prob: np.ndarray,
    latency_ms: float,
    now_ms: int,
) -> Iterable[Prediction]:
    scale = model.return_scale
    expected = ((2.0 * prob - 1.0) * scale).tolist()
    name, version, horizon = model.name, str(model.version), model.horizon
    fsv = model.feature_set_version
    return (
        {
            "symbol": row["symbol"],
            "ts": row["ts"],
            "horizon": horizon,
            "prob_up": p,
            "expected_return": e,
            "model_name": name,
            "model_version": version,
            "role": role,
            "feature_set_version": fsv,
            "scoring_latency_ms": latency_ms,
            "correlation_id": row.get("correlation_id"),
            "produced_at": now_ms,
        }
        for row, p, e in zip(rows, prob.tolist(), expected, strict=True)
    )


def latest_champion(predictions: Iterable[Prediction]) -> dict[str, Prediction]:
    """Each symbol's champion prediction with the latest ``ts`` (later wins a tie)."""
    latest: dict[str, Prediction] = {}
    for pred in predictions:
        if pred.get("role") != CHAMPION:
            continue
        current = latest.get(pred["symbol"])
        if current is None or pred["ts"] >= current["ts"]:
            latest[pred["symbol"]] = pred
    return latest


def watch_aliases(settings: Settings, name: str) -> tuple[int | None, tuple[int, ...]]:
    """(champion version, challenger versions newest first): one cheap registry query.

    Poll it; when the answer changes, :func:`load_model_set` and :meth:`Scorer.swap`.
    """
    from training.registry import watch_aliases as _watch

    return _watch(settings, name)


def load_model_set(
    settings: Settings,
    name: str,
    versions: tuple[int | None, tuple[int, ...]] | None = None,
) -> ModelSet:
    """Load the champion and challengers of ``name`` (``versions`` from :func:`watch_aliases`)."""
    from training.registry import load_scoring_model
    from training.registry import watch_aliases as _watch

    champ, chall = versions if versions is not None else _watch(settings, name)
    return ModelSet(
        champion=load_scoring_model(settings, name, champ, "champion") if champ else None,
        challengers=[load_scoring_model(settings, name, v, "challenger") for v in chall],
    )
