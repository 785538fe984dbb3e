"""Where drift's reference comes from: the champion's training reference in the MLflow registry.

The model is ``TICKCAST_DRIFT_REFERENCE_MODEL``, by default the served model (the first of
``TICKCAST_MODEL_NAME``, the one the worker scores into Redis and the API answers with);
``stream`` turns the registry off (see :func:`reference_model_name`). Its reference is the
``reference.json`` artifact (``training/reference.py``'s ``ReferenceDistributions``) of the
run behind the model's ``champion`` alias.

:class:`ChampionReferences` is the thin I/O adapter: :meth:`~ChampionReferences.poll` asks
the registry which version is the champion and, when it is not the one in use, downloads and
checks its reference. A reference it cannot use is refused with a reason (the drift process
keeps its current reference, logs and counts it):

* ``registry``: MLflow does not answer (retried at the next poll);
* ``missing``: the run has no ``reference.json`` (or it cannot be downloaded);
* ``garbage``: the artifact is not the JSON described in :func:`parse_reference`;
* ``empty``: no feature of the stream's feature set has a usable distribution (a model
  registered without a reference stores an empty one);
* ``feature_set``: it describes a feature-set version the stream does not serve (neither
  the stream's own nor one of the sets it contains, whose models the worker scores on their
  own columns: a ``classic`` champion on a ``classic+alpha158`` stream is compared on its
  41 columns).

A version refused as ``garbage``, ``empty`` or ``feature_set`` is not fetched again (its
artifacts do not change); ``registry`` and ``missing`` (an artifact store that is down looks
the same) are retried at every poll. A River challenger promoted online is registered by
``online_learning.frozen.register_online`` with the reference of the champion it replaced
(it has no training set of its own), so drift switches to the new version's label with the
same distributions; a champion that had none leaves the new version ``empty`` too.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from monitoring.drift import ReferenceDistribution
from tickcast.config import Settings
from tickcast.errors import TickcastError

REFERENCE_ARTIFACT = "reference.json"
#: ``TICKCAST_DRIFT_REFERENCE_MODEL`` value that turns the registry off.
STREAM_ONLY = "stream"
Source = Literal["champion", "stream"]
Reason = Literal["registry", "missing", "garbage", "empty", "feature_set"]
#: Refusals that stay true for a version (its artifacts do not change): not fetched again.
PERMANENT: frozenset[str] = frozenset({"garbage", "empty", "feature_set"})


class ReferenceRefused(TickcastError):
    """A champion's reference drift cannot use; ``reason`` is one of :data:`Reason`."""

    def __init__(self, reason: Reason, message: str, model: str = "", version: str = "") -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.model = model
        self.version = version


@dataclass(frozen=True, slots=True)
class Reference:
    """The reference drift compares with, and where it came from (the PSI rows carry it)."""

    source: Source
    model: str
    version: str
    distributions: Mapping[str, ReferenceDistribution] = field(default_factory=dict)


def reference_model_name(settings: Settings) -> str | None:
    """The registered model whose champion is the reference; ``None``: the stream only.

    >>> s = Settings(model_name="a-h1, b-h5")
    >>> reference_model_name(s), reference_model_name(s.model_copy(
    ...     update={"drift_reference_model": "b-h5"}))
    ('a-h1', 'b-h5')
    >>> reference_model_name(s.model_copy(update={"drift_reference_model": "stream"})) is None
    True
    """
    chosen = settings.drift_reference_model.strip()
    if chosen == STREAM_ONLY:
        return None
    if chosen:
        return chosen
    served = [n.strip() for n in settings.model_name.split(",") if n.strip()]
    return served[0] if served else None


def parse_reference(
    payload: Any,
    names: Sequence[str] | None = None,
    feature_set_version: str | Collection[str] | None = None,
) -> dict[str, ReferenceDistribution]:
    """Per-feature references from ``training/reference.py``'s JSON.

    ``features`` is a list of ``{"name", "edges", "proportions", ...}`` (or a mapping name →
    ``{"edges", "proportions"}``); features without edges (never finite in training) are
    skipped, and so are features not in ``names`` when given. Raises
    :class:`ReferenceRefused`: ``garbage`` for anything else, ``feature_set`` when the
    payload's ``feature_set_version`` is set and is not ``feature_set_version`` (or not one
    of them, a collection: the versions the stream serves), ``empty`` when no feature is
    left.

    >>> parse_reference({"features": [{"name": "x", "edges": [0, 1, 2],
    ...                                "proportions": [0.5, 0.5]}]})["x"].cuts.tolist()
    [1.0]
    >>> for bad in ({"features": {"x": {"edges": "no", "proportions": [1, 1]}}}, {"features": []}):
    ...     try:
    ...         parse_reference(bad)
    ...     except ReferenceRefused as exc:
    ...         print(exc.reason)
    garbage
    empty
    """
    try:
        features = payload["features"]
        items = (
            [(str(f["name"]), f) for f in features]
            if isinstance(features, list)
            else [(str(k), v) for k, v in features.items()]
        )
        refs = {
            name: ReferenceDistribution.from_parts(spec["edges"], spec["proportions"])
            for name, spec in items
            if spec.get("edges") and sum(spec.get("proportions") or ()) > 0
        }
        stored_version = str(payload.get("feature_set_version") or "")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReferenceRefused("garbage", f"not a drift reference: {exc!s:.200}") from exc
    accepted = (
        {feature_set_version} if isinstance(feature_set_version, str) else feature_set_version
    )
    if accepted and stored_version and stored_version not in accepted:
        raise ReferenceRefused(
            "feature_set", f"reference of feature set {stored_version}, stream serves "
            f"{sorted(accepted)}",
        )  # fmt: skip
    if names is not None:
        refs = {n: r for n, r in refs.items() if n in set(names)}
    if not refs:
        raise ReferenceRefused("empty", "no feature of the stream has a reference distribution")
    return refs


class ChampionReferences:
    """The ``champion`` alias of ``model`` and its reference (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        names: Sequence[str],
        feature_set_version: str | Collection[str],
    ) -> None:
        self.settings = settings
        self.model = model
        self.names = tuple(names)
        self.feature_set_version = feature_set_version
        self.refused: set[str] = set()

    def champion(self) -> tuple[str, str] | None:
        """``(version, run_id)`` behind the ``champion`` alias; ``None`` when there is none."""
        from training import registry

        try:
            # watch_aliases first: registry.champion alone reads an unreachable HTTP registry
            # as "no alias" (its error message names the alias endpoint)
            if registry.watch_aliases(self.settings, self.model)[0] is None:
                return None
            found = registry.champion(self.settings, self.model)
        except Exception as exc:  # DependencyError, and anything a broken store raises
            raise ReferenceRefused("registry", f"{type(exc).__name__}: {exc!s:.300}",
                                   self.model) from exc  # fmt: skip
        return None if found is None else (str(found.version), found.run_id)

    def fetch(self, version: str, run_id: str) -> Reference:
        """Download and check the reference of ``version`` (run ``run_id``)."""
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=REFERENCE_ARTIFACT,
                    tracking_uri=self.settings.mlflow_uri, dst_path=tmp,
                )  # fmt: skip
                text = Path(path).read_text(encoding="utf-8")
            except Exception as exc:  # no such artifact, or an unreadable artifact store
                raise ReferenceRefused("missing", f"{type(exc).__name__}: {exc!s:.300}",
                                       self.model, version) from exc  # fmt: skip
        try:
            payload = json.loads(text)
            refs = parse_reference(payload, self.names, self.feature_set_version)
        except json.JSONDecodeError as exc:
            raise ReferenceRefused("garbage", f"not JSON: {exc}", self.model, version) from exc
        except ReferenceRefused as exc:
            raise ReferenceRefused(exc.reason, str(exc), self.model, version) from exc
        return Reference("champion", self.model, version, refs)

    def poll(self, current: str | None) -> Reference | None:
        """The champion's reference when the champion is not ``current`` (a version), else
        ``None`` (no champion, the same one, or one already refused). Raises
        :class:`ReferenceRefused`; the version is then remembered unless the registry failed.
        """
        found = self.champion()
        if found is None or found[0] == current or found[0] in self.refused:
            return None
        try:
            return self.fetch(*found)
        except ReferenceRefused as exc:
            if exc.reason in PERMANENT:
                self.refused.add(found[0])
            raise
