"""Which feature set the stream computes: one choice shared by the worker and drift.

**The feature set is chosen once, at start** (:func:`choose_feature_set`):
``TICKCAST_FEATURE_SET`` when set, else the union (:func:`sidestreams.feature_sets.union`)
of the named sets of the registered champions and challengers of ``TICKCAST_MODEL_NAME``,
else ``classic``; :func:`stream_feature_set` adds the side columns when
``TICKCAST_SIDE_FEATURES`` asks for them. The worker (agents.worker) computes that set and
the drift process (monitoring.drift_process) reads it, so both follow the registry the same
way; a process started after a promotion that widened the union follows the new set, one
that was running keeps its own until restarted. :func:`scored_sets` names the sets whose
models (and drift references) a stream of that set serves, by column name.
"""

from __future__ import annotations

import structlog

from sidestreams.feature_sets import configured, contained, named, union
from tickcast.config import Settings
from tickcast.errors import TickcastError

__all__ = ["choose_feature_set", "scored_sets", "stream_feature_set"]

log = structlog.get_logger(__name__)


def choose_feature_set(settings: Settings) -> tuple[str, str]:
    """(name of the set the worker computes, why): explicit, the models' union, or classic.

    An unknown ``TICKCAST_FEATURE_SET`` raises :class:`FeatureSetError` naming the known
    sets; an unreachable registry falls back to ``classic`` (logged).
    """
    explicit = settings.feature_set.strip()
    if explicit:
        named(explicit, settings)  # an unknown name raises, naming the known ones
        return configured(settings, explicit), "TICKCAST_FEATURE_SET"
    if not settings.scoring_enabled:
        return "classic", "scoring disabled"
    from training.registry import feature_sets_in_use, resolve_versions  # mlflow: on use

    models = [n.strip() for n in settings.model_name.split(",") if n.strip()]
    pinned = [v for v in settings.model_versions.split(",") if v.strip()]
    try:
        names: list[str] = []
        for i, model in enumerate(models):
            # the first model pinned (backtests): exactly those versions, not the aliases
            versions = resolve_versions(settings, model, pinned) if pinned and i == 0 else None
            names.extend(feature_sets_in_use(settings, model, versions))
    except TickcastError as exc:  # registry down, or a pinned version that does not exist
        log.warning("feature_set_registry_unavailable", error=str(exc)[:300], using="classic")
        return "classic", f"registry: {str(exc)[:200]}"
    if not names:
        return "classic", "no registered model"
    return union(names), f"union of the registered models' sets {sorted(set(names))}"


def stream_feature_set(settings: Settings) -> tuple[str, str]:
    """(name, why) of the set on the ``features`` topic: :func:`choose_feature_set`, with
    the side columns when ``TICKCAST_SIDE_FEATURES`` is on (``NAME+side``)."""
    name, why = choose_feature_set(settings)
    return configured(settings, name), why


def scored_sets(name: str) -> tuple[str, ...]:
    """The named sets a stream computing ``name`` serves (its own and those it contains).

    >>> scored_sets("classic+alpha158")
    ('classic', 'alpha158', 'classic+alpha158')
    """
    return contained(name)
