"""An online winner made a registered model: freeze the River learner, register, promote.

The MLflow registry and the scoring worker only know registered integer versions, while an
online challenger is a process whose version (``online-<n_learned>``) moves with every label.
When one wins the champion/challenger test, :class:`RegistryRegistrar` (the controller's
``register`` hook, :data:`online_learning.promotion.Registrar`):

1. looks the learner up by name and freezes its **current** state: a pickled deep copy of the
   River model, so it stops learning. The evidence came from the predictions of successive
   versions of that one learner (``challenger_versions`` in the event); the frozen state is
   the newest of them, having learned every label known at the decision and nothing later.
2. checks it against the current registered champion of the model it challenges (its name in
   the test, else ``tickcast-direction-h<horizon>``): same horizon, same feature-set version
   (the scorer refuses any other), same features in the same order; a learner that only
   knows positional names (``f0``, ``f1``, ...) learned the stream's vector in feature-set
   order and takes the champion's names. Anything else is a :class:`PromotionError`, which
   the controller records as a REJECTED event: nothing is registered, the alias stays.
3. registers it as a new version of that model (``training.registry.register``, role
   challenger) with ``return_scale`` and the drift reference distributions **of the current
   champion** — an online learner has no training set of its own to compute them from, and
   the champion's describe the same feature stream; this reuse is logged and recorded as
   the ``reference_source`` parameter and tag. Parameters and tags name the learner (name,
   River classes, ``n_learned``, the online version that won, the frozen version, the last
   learner checkpoint run).

The controller's promoter then moves the ``champion`` alias with ``training.registry.promote``
(so rollback finds the replaced champion as usual), and the PROMOTED ModelEvent names the
registered version. The frozen model is :class:`FrozenRiverModel` inside the usual
:class:`~training.champion.PackagedModel`; the scorer reaches it through the package's
generic path (``model.predict_proba(DataFrame)``), and it predicts with the learners' own
rule (:func:`online_learning.challengers.river_proba_many`): the champion scores exactly as
the challenger did while it won, warm-up ``NaN`` included. A ``StandardScaler |
LogisticRegression`` pipeline is read once, when frozen or unpickled, into the numpy form of
that rule (:class:`online_learning.linear.LinearPredictor`, the worker's shadow scorer's):
~0.4 µs per row at 1,000 rows (41 features) instead of ~2.4 µs through River's dataframe
path (``benchmarks/bench_online.py --frozen-only``); any other learner keeps River's path.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import structlog

from online_learning.challengers import OnlineChallenger, river_proba_many
from online_learning.linear import LinearPredictor
from online_learning.promotion import ModelRef, PromotionError, Registered, is_online
from tickcast.config import Settings

if TYPE_CHECKING:
    from training.champion import ScoringModel
    from training.registry import RegisteredModel

log = structlog.get_logger(__name__)

Lookup = Callable[[str], OnlineChallenger | None]


class FrozenRiverModel:
    """A River classifier that no longer learns, shaped like a :class:`training.models.Model`.

    ``columns`` are the frame columns it reads (the registered feature names), ``river_names``
    the keys the River model learned them under, position by position. When the model is a
    pipeline :class:`~online_learning.linear.LinearPredictor` represents exactly, its arrays
    are built here and again on unpickling (they are not pickled, so versions registered
    before them load unchanged and a pickle holds only the River model); ``model`` must not
    learn afterwards.

    >>> from river import linear_model
    >>> frozen = FrozenRiverModel(linear_model.LogisticRegression(), ["f0"], ["rsi_14"])
    >>> frozen.predict_proba(pd.DataFrame({"rsi_14": [0.3, float("nan")]})).tolist()
    [0.5, 0.5]
    >>> frozen.vectorised
    False
    """

    def __init__(
        self, model: Any, river_names: Sequence[str], columns: Sequence[str], name: str = "river"
    ) -> None:
        if len(river_names) != len(columns):
            raise ValueError(f"{len(river_names)} River names for {len(columns)} columns")
        self.model = model
        self.river_names = tuple(river_names)
        self.columns = tuple(columns)
        self.name = name
        self._linear = LinearPredictor.from_model(model, self.river_names)

    def __repr__(self) -> str:
        return f"FrozenRiverModel({self.name!r}, {type(self.model).__name__})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_linear", None)  # derived from the model: rebuilt in __setstate__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._linear = LinearPredictor.from_model(self.model, self.river_names)

    @property
    def vectorised(self) -> bool:
        """Whether it scores with numpy arrays (``True``) or through River itself."""
        return self._linear is not None

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(up) of each row of ``X`` (a frame holding at least :attr:`columns`), 1-D."""
        if X.columns.tolist() == list(self.columns):  # the package's frame: no column copy
            matrix = X.to_numpy(dtype=np.float64)
        else:
            matrix = X[list(self.columns)].to_numpy(dtype=np.float64)
        if self._linear is not None:
            return self._linear.predict_proba(matrix)
        return river_proba_many(self.model, matrix, self.river_names)


def describe(model: Any) -> str:
    """River classes of a model: ``StandardScaler|LogisticRegression`` for a pipeline."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict):
        return "|".join(type(step).__name__ for step in steps.values())
    return type(model).__name__


def _positional(names: Sequence[str]) -> bool:
    return tuple(names) == tuple(f"f{i}" for i in range(len(names)))


def freeze(
    challenger: OnlineChallenger,
    feature_names: Sequence[str],
    feature_set_version: str,
    horizon: int,
) -> FrozenRiverModel:
    """A frozen copy of ``challenger`` for a stream of ``feature_names``/``feature_set_version``.

    Raises :class:`PromotionError` (``horizon_mismatch``, ``feature_set_mismatch``,
    ``feature_mismatch``) when the learner cannot score that stream the way it learned.
    A learner without a feature-set version (it never read an outcome that carried one) is
    taken to be the stream's when its features fit.
    """
    who = f"{challenger.name} {challenger.version}"
    if int(challenger.horizon) != int(horizon):
        raise PromotionError(
            "horizon_mismatch", f"{who} learns horizon {challenger.horizon}, not {horizon}"
        )
    fsv = challenger.feature_set_version
    if fsv and fsv != feature_set_version:
        raise PromotionError(
            "feature_set_mismatch",
            f"{who} learned feature set {fsv!r}, the champion scores {feature_set_version!r}",
        )
    columns = tuple(feature_names)
    learned = challenger.feature_names
    if learned is not None and len(learned) != len(columns):
        raise PromotionError(
            "feature_mismatch", f"{who} has {len(learned)} features, the stream {len(columns)}"
        )
    if learned is not None and tuple(learned) != columns and not _positional(learned):
        raise PromotionError("feature_mismatch", f"{who} learned other features than the champion")
    model = pickle.loads(pickle.dumps(challenger.model, protocol=pickle.HIGHEST_PROTOCOL))
    return FrozenRiverModel(model, learned if learned is not None else columns, columns,
                            name=challenger.name)  # fmt: skip


def _river_requirement() -> list[str]:
    try:
        return [f"river=={version('river')}"]
    except PackageNotFoundError:  # pragma: no cover - River is a dependency of this package
        return []


def register_online(
    settings: Settings,
    challenger: OnlineChallenger,
    *,
    name: str,
    won_version: str,
    reason: str,
    checkpoint_run_id: str | None = None,
) -> tuple[RegisteredModel, dict[str, str]]:
    """Freeze ``challenger`` and register it as a new challenger version of ``name``.

    Returns the registered version and its lineage (for the ModelEvent's ``inputs``). The
    champion of ``name`` supplies the features, ``return_scale`` and reference distributions
    (see the module doc); ``name`` without a champion is refused (``no_champion``).
    """
    from training import registry
    from training.champion import PackagedModel

    current = registry.champion(settings, name)
    if current is None:
        raise PromotionError("no_champion", f"{name} has no registered champion to replace")
    champ: ScoringModel = registry.load_scoring_model(settings, name, current.version, "champion")
    frozen = freeze(challenger, champ.feature_names, champ.feature_set_version, champ.horizon)
    source = f"champion {name} v{current.version} (reused: an online learner has no training set)"
    lineage = {
        "online_name": challenger.name,
        "online_version": won_version,
        "frozen_version": challenger.version,
        "checkpoint_run_id": checkpoint_run_id or "",
        "reference_source": source,
    }
    log.info("online_champion_reference_reused", model=name, from_version=current.version,
             challenger=challenger.name, frozen_version=challenger.version,
             has_reference=champ.reference is not None)  # fmt: skip
    packaged = PackagedModel(
        kind=challenger.name,
        model=frozen,
        feature_names=champ.feature_names,
        feature_set_version=champ.feature_set_version,
        horizon=champ.horizon,
        return_scale=champ.return_scale,
    )
    entry = registry.register(
        packaged,
        name=name,
        horizon=champ.horizon,
        params={
            "online": {
                **{k: v for k, v in lineage.items() if k != "reference_source"},
                "learner": describe(challenger.model),
                "n_learned": challenger.n_learned,
                "last_event_ts": challenger.last_event_ts or "",
                "learned_feature_set_version": challenger.feature_set_version or "",
            },
            "reference_source": source,
            "return_scale_source": f"champion {name} v{current.version}",
            "promotion_reason": reason,
        },
        metrics={"n_learned": challenger.n_learned},
        reference=champ.reference,
        settings=settings,
        role="challenger",
        requirements=_river_requirement(),
    )
    registry.set_version_tags(settings, name, entry.version, {"source": "online", **lineage})
    return entry, {**lineage, "registered_run_id": entry.run_id}


class RegistryRegistrar:
    """The controller's ``register`` hook over the MLflow registry (see the module doc).

    ``lookup(name)`` gives the live learner of a challenger name (the learner stage's, or a
    restored checkpoint's), ``checkpoint_run()`` the run id of its newest checkpoint, and
    ``target`` forces the registered model name (else the champion's, else
    ``tickcast-direction-h<horizon>``). ``require_learned`` refuses (``unknown_version``) an
    ``online-N`` the learner has not reached (manual promotions, see
    :func:`checkpoint_registrar`).
    """

    def __init__(
        self,
        settings: Settings,
        lookup: Lookup,
        checkpoint_run: Callable[[], str | None] = lambda: None,
        *,
        target: str | None = None,
        require_learned: bool = False,
    ) -> None:
        self.settings = settings
        self.lookup = lookup
        self.checkpoint_run = checkpoint_run
        self.target = target
        self.require_learned = require_learned

    def __call__(self, won: ModelRef, champion: ModelRef | None, reason: str) -> Registered:
        """Register the learner behind ``won`` as a version of the model ``champion`` names."""
        from training.registry import default_name

        challenger = self.lookup(won.name)
        if challenger is None:
            raise PromotionError("unknown_challenger", f"no online learner named {won.name}")
        if self.require_learned:
            n = won.version.removeprefix("online-")
            if not n.isdigit() or int(n) > challenger.n_learned:
                raise PromotionError(
                    "unknown_version",
                    f"{won} is not a version of the checkpointed learner ({challenger.version})",
                )
        if self.target:
            name = self.target
        elif champion is not None and not is_online(champion.version):
            name = champion.name
        else:
            name = default_name(challenger.horizon)
        entry, inputs = register_online(
            self.settings, challenger, name=name, won_version=won.version, reason=reason,
            checkpoint_run_id=self.checkpoint_run(),
        )  # fmt: skip
        log.info("online_challenger_registered", model=name, version=entry.version,
                 online=str(won), frozen_version=inputs["frozen_version"])  # fmt: skip
        return Registered(ModelRef(name, str(entry.version)), inputs)


def checkpoint_lookup(settings: Settings) -> tuple[Lookup, str | None]:
    """A lookup over the newest learner checkpoint, and its run id (manual promotions)."""
    from online_learning.checkpoint import restore_checkpoint

    checkpoint = restore_checkpoint(settings)
    found = {c.name: c for c in checkpoint.challengers} if checkpoint else {}
    return found.get, checkpoint.run_id if checkpoint else None


def checkpoint_registrar(settings: Settings, *, target: str | None = None) -> RegistryRegistrar:
    """The ``register`` hook of a manual promotion (``tickcast learner promote``, the API).

    It freezes a learner of the newest checkpoint and registers it into ``target`` (see
    :class:`RegistryRegistrar`). Refusals (:class:`PromotionError`): no checkpoint yet
    (``no_checkpoint``, raised here), then, when called, no learner of that name in it
    (``unknown_challenger``) or an ``online-N`` beyond its ``n_learned`` (``unknown_version``:
    that state was never checkpointed). An ``online-N`` it has passed registers its newest
    state, as an automatic promotion does; the event records both versions.
    """
    lookup, run_id = checkpoint_lookup(settings)
    if run_id is None:
        raise PromotionError("no_checkpoint", "no learner checkpoint yet (tickcast learner run)")
    return RegistryRegistrar(settings, lookup, lambda: run_id, target=target, require_learned=True)
