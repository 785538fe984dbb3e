"""The MLflow model registry of tickcast: register, look up, load and promote direction models.

Layout (``docs/models.md`` has the long version):

* one experiment, :data:`EXPERIMENT`, whose artifacts live under ``Settings.mlflow_artifacts``
  when the tracking store is local; one run per registered model, holding its parameters,
  walk-forward metrics, report (``report/``), ``features.json``, ``reference.json`` and the
  pyfunc model (``model``: a :class:`PyfuncWrapper` around a :class:`PackagedModel`);
* one registered model per horizon, ``tickcast-direction-h{horizon}`` by default;
* aliases: ``champion`` (what trading systems act on) and ``challenger`` (the newest
  challenger); every version carries a tag ``role`` = ``champion`` | ``challenger`` |
  ``retired``, so all challengers can shadow-score, not only the aliased one.

The first version registered under a name becomes the champion; later ones challengers.
:func:`promote` moves the ``champion`` alias and demotes the old champion to challenger.
MLflow being down surfaces as :class:`~tickcast.errors.DependencyError`; an unknown model or
version as :class:`~tickcast.errors.ModelError`.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from indicators.feature_sets import name_of
from tickcast.config import Settings
from tickcast.errors import DependencyError, ModelError
from training.champion import PackagedModel, ScoringModel
from training.compiled_trees import cache_dir
from training.reference import ReferenceDistributions

EXPERIMENT = "tickcast-training"
CHAMPION = "champion"
CHALLENGER = "challenger"
RETIRED = "retired"
ROLE_TAG = "role"
Role = Literal["auto", "champion", "challenger"]


def default_name(horizon: int) -> str:
    """The registered model name of a horizon: ``tickcast-direction-h{horizon}``."""
    return f"tickcast-direction-h{horizon}"


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model version and its role."""

    name: str
    version: int
    run_id: str
    role: str
    tags: Mapping[str, str] = field(default_factory=dict)


class PyfuncWrapper(PythonModel):
    """MLflow pyfunc face of a :class:`PackagedModel`.

    ``predict`` takes a frame with the feature columns (what ``mlflow models serve`` would
    send); tickcast itself unwraps the model and calls the packaged ``predict_proba``.
    """

    def __init__(self, packaged: PackagedModel) -> None:
        self.packaged = packaged
        self.reference: ReferenceDistributions | None = None

    def load_context(self, context: Any) -> None:
        """Read the reference distributions shipped with the model."""
        path = (context.artifacts or {}).get("reference")
        if path:
            text = Path(path).read_text(encoding="utf-8")
            self.reference = ReferenceDistributions.from_json(text)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        """P(up) of each row of ``model_input``."""
        frame = pd.DataFrame(model_input)
        matrix = frame[list(self.packaged.feature_names)].to_numpy(dtype=np.float64)
        return self.packaged.predict_proba(matrix)


#: Guards MLflow's process-global tracking/registry URIs (re-entrant: blocks may nest).
_GLOBAL_URIS = threading.RLock()


def _is_local(settings: Settings) -> bool:
    return urlparse(settings.mlflow_uri).scheme in {"", "sqlite", "file"}


@contextmanager
def _mlflow(settings: Settings) -> Iterator[Any]:
    """The MLflow client for ``settings``; fluent calls use the same URIs inside the block.

    MLflow's fluent API (start_run, log_model) reads process-global URIs, so blocks are
    serialised by a lock: without it, a block in one thread (e.g. a model poll) restored the
    default URI under another thread's run, which then wrote to ./mlflow.db.
    Connection and store failures become :class:`DependencyError`.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if _is_local(settings):
        from training.mlflow_store import prepare

        prepare(settings)
    uri = settings.mlflow_uri
    with _GLOBAL_URIS:
        previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield MlflowClient(tracking_uri=uri, registry_uri=uri)
        except MlflowException as exc:
            if _missing(exc):
                raise ModelError(str(exc).splitlines()[0]) from exc
            raise DependencyError("mlflow", str(exc).splitlines()[0][:300], uri) from exc
        except OSError as exc:
            raise DependencyError("mlflow", str(exc)[:300], uri) from exc
        finally:
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])


def _missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _experiment_id(client: Any, settings: Settings) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    location = Path(settings.mlflow_artifacts).resolve().as_uri() if _is_local(settings) else None
    try:
        return str(client.create_experiment(EXPERIMENT, artifact_location=location))
    except MlflowException:  # created meanwhile by another process
        again = client.get_experiment_by_name(EXPERIMENT)
        if again is None:
            raise
        return str(again.experiment_id)


def _scalar_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(_scalar_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]
    return out


def _finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, int | float | np.number) and np.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for package in ("numpy", "pandas", "scikit-learn", "xgboost", "lightgbm"):
        try:
            reqs.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return reqs


def _role_of(version: Any) -> str:
    if CHAMPION in (getattr(version, "aliases", None) or []):
        return CHAMPION
    return str((version.tags or {}).get(ROLE_TAG, CHALLENGER))


def _entry(version: Any, role: str | None = None) -> RegisteredModel:
    return RegisteredModel(
        name=str(version.name),
        version=int(version.version),
        run_id=str(version.run_id or ""),
        role=role or _role_of(version),
        tags=dict(version.tags or {}),
    )


def register(
    model: PackagedModel,
    *,
    name: str | None = None,
    feature_set: Any = None,
    horizon: int | None = None,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    report_paths: Sequence[Path | str] = (),
    reference: ReferenceDistributions | None = None,
    train_window: tuple[int, int] | None = None,
    settings: Settings,
    role: Role = "auto",
    sample: np.ndarray | None = None,
    requirements: Sequence[str] = (),
) -> RegisteredModel:
    """Log ``model`` as an MLflow run and register it as a new version of ``name``.

    ``role="auto"``: champion when ``name`` has no champion yet, else challenger.
    ``sample`` (rows × features) feeds the signature; zeros are used without it.
    ``requirements`` are pip requirements the model needs beyond the stock ones (e.g. River).
    """
    from mlflow.models import infer_signature

    horizon = int(horizon if horizon is not None else model.horizon)
    name = name or default_name(horizon)
    version_tag = str(getattr(feature_set, "version", "") or model.feature_set_version)
    if version_tag != model.feature_set_version:
        raise ModelError(
            f"feature set {version_tag} differs from the model's {model.feature_set_version}"
        )
    window = train_window or model.train_window
    names = list(model.feature_names)
    rows = sample if sample is not None else np.zeros((4, len(names)))
    example = pd.DataFrame(np.asarray(rows, dtype=np.float64)[:100], columns=names)
    signature = infer_signature(example, model.predict_proba(example.to_numpy()))
    with _mlflow(settings) as client, tempfile.TemporaryDirectory() as tmp:
        experiment_id = _experiment_id(client, settings)
        ref_path = Path(tmp) / "reference.json"
        ref = reference or ReferenceDistributions(())
        ref_path.write_text(ref.to_json(), encoding="utf-8")
        features_path = Path(tmp) / "features.json"
        features_path.write_text(
            json.dumps({"feature_set_version": version_tag, "features": names}), "utf-8"
        )
        base_version = str(getattr(feature_set, "base_version", "") or version_tag)
        base_name = name_of(base_version) or ""
        with_side = getattr(feature_set, "side", None) is not None
        tags = {
            "model_kind": model.kind,
            "horizon": str(horizon),
            "feature_set_version": version_tag,
            # the named set: indicators.feature_sets, + side columns (sidestreams.feature_sets)
            "feature_set": f"{base_name}+side" if base_name and with_side else base_name,
            "features": ",".join(names)[:5000],
        }
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{model.kind}-h{horizon}"):
            mlflow.set_tags(tags)
            mlflow.log_params(
                _scalar_params(
                    {
                        **(params or {}),
                        "model_kind": model.kind,
                        "horizon": horizon,
                        "feature_set_version": version_tag,
                        "n_features": len(names),
                        "return_scale": model.return_scale,
                        "train_start_ms": window[0] if window else "",
                        "train_end_ms": window[1] if window else "",
                    }
                )
            )
            mlflow.log_metrics(_finite_metrics(metrics or {}))
            for path in report_paths:
                mlflow.log_artifact(str(path), artifact_path="report")
            mlflow.log_artifact(str(ref_path))
            mlflow.log_artifact(str(features_path))
            with warnings.catch_warnings():
                # the signature is given; an input example with warm-up NaNs adds nothing
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=PyfuncWrapper(model),
                    artifacts={"reference": str(ref_path)},
                    signature=signature,
                    pip_requirements=[*_requirements(), *requirements],
                    registered_model_name=name,
                )
            run_id = info.run_id
        version = int(info.registered_model_version)
        has_champion = _alias_version(client, name, CHAMPION) is not None
        chosen = role if role != "auto" else (CHALLENGER if has_champion else CHAMPION)
        for key, value in {**tags, "run_id": run_id, ROLE_TAG: chosen}.items():
            if key != "features":
                client.set_model_version_tag(name, str(version), key, value)
        if chosen == CHAMPION:
            _demote(client, name, _alias_version(client, name, CHAMPION), "replaced at register")
            client.set_registered_model_alias(name, CHAMPION, str(version))
        _refresh_challenger_alias(client, name)
        return RegisteredModel(name, version, run_id, chosen, {**tags, ROLE_TAG: chosen})


def _alias_version(client: Any, name: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        # A missing alias is INVALID_PARAMETER_VALUE "... alias X not found"; a down server
        # is INTERNAL_ERROR whose message also names the /alias URL: that one must raise.
        unset = exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
        if _missing(exc) or unset:
            return None
        raise


def _versions(client: Any, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name='{name}'"))


def _demote(client: Any, name: str, version: int | None, reason: str) -> None:
    if version is None:
        return
    client.set_model_version_tag(name, str(version), ROLE_TAG, CHALLENGER)
    client.set_model_version_tag(name, str(version), "demoted_reason", reason[:500])


def _refresh_challenger_alias(client: Any, name: str) -> None:
    """Point ``challenger`` at the newest challenger version (or remove it)."""
    found = [_entry(v) for v in _versions(client, name)]
    newest = max((e.version for e in found if e.role == CHALLENGER), default=None)
    if newest is None:
        if _alias_version(client, name, CHALLENGER) is not None:
            client.delete_registered_model_alias(name, CHALLENGER)
    else:
        client.set_registered_model_alias(name, CHALLENGER, str(newest))


def champion(settings: Settings, name: str) -> RegisteredModel | None:
    """The version behind the ``champion`` alias, or ``None``."""
    with _mlflow(settings) as client:
        version = _alias_version(client, name, CHAMPION)
        if version is None:
            return None
        return _entry(client.get_model_version(name, str(version)), CHAMPION)


def challengers(settings: Settings, name: str) -> list[RegisteredModel]:
    """Every version tagged ``role=challenger`` (never the champion), newest first."""
    with _mlflow(settings) as client:
        try:
            found = [_entry(v) for v in _versions(client, name)]
        except ModelError:
            return []
    return sorted((e for e in found if e.role == CHALLENGER), key=lambda e: -e.version)


def watch_aliases(settings: Settings, name: str) -> tuple[int | None, tuple[int, ...]]:
    """(champion version, challenger versions newest first) in one registry query.

    ``(None, ())`` when nothing is registered under ``name`` yet; cheap enough to poll.
    """
    with _mlflow(settings) as client:
        found = [_entry(v) for v in _versions(client, name)]
    champ = next((e.version for e in found if e.role == CHAMPION), None)
    chall = sorted((e.version for e in found if e.role == CHALLENGER), reverse=True)
    return champ, tuple(chall)


def feature_sets_in_use(
    settings: Settings, name: str, versions: Sequence[int] | None = None
) -> list[str]:
    """The named feature sets of ``name``'s champion and challengers (what a worker computes),
    or of exactly ``versions`` when the worker is pinned to them.

    From each version's ``feature_set`` tag, else (a version registered before the tag) the
    named set whose version its ``feature_set_version`` tag is; a version of neither is left
    out (the scorer refuses it with the reason when it loads).
    """
    with _mlflow(settings) as client:
        try:
            found = [_entry(v) for v in _versions(client, name)]
        except ModelError:
            return []
    out: list[str] = []
    for entry in found:
        if versions is None:
            if entry.role not in (CHAMPION, CHALLENGER):
                continue
        elif entry.version not in versions:
            continue
        tags = entry.tags
        set_name = tags.get("feature_set") or name_of(tags.get("feature_set_version", ""))
        if set_name and set_name not in out:
            out.append(set_name)
    return out


def resolve_versions(settings: Settings, name: str, refs: Sequence[str]) -> tuple[int, ...]:
    """Version numbers of ``refs`` (numbers or aliases such as ``champion``), in order.

    Raises :class:`ModelError` naming the first that does not exist, so a pinned run fails
    before it starts rather than scoring nothing.
    """
    from mlflow.exceptions import MlflowException

    out: list[int] = []
    with _mlflow(settings) as client:
        for ref in refs:
            text = str(ref).strip()
            if text.isdigit():
                try:
                    client.get_model_version(name, text)
                except MlflowException as exc:
                    if _missing(exc):
                        raise ModelError(f"{name} has no version {text}") from exc
                    raise  # the registry is down: DependencyError from _mlflow
                out.append(int(text))
                continue
            version = _alias_version(client, name, text) if text else None
            if version is None:
                raise ModelError(f"{name} has no version or alias {text!r}")
            out.append(version)
    return tuple(dict.fromkeys(out))


def set_version_tags(settings: Settings, name: str, version: int, tags: Mapping[str, str]) -> None:
    """Add ``tags`` to a registered version (values cut to 5000 characters)."""
    with _mlflow(settings) as client:
        client.get_model_version(name, str(version))  # ModelError when it does not exist
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value)[:5000])


def set_alias(settings: Settings, name: str, alias: str, version: int) -> None:
    """Point ``alias`` of ``name`` at ``version`` (no role tags change; see :func:`promote`)."""
    with _mlflow(settings) as client:
        client.get_model_version(name, str(version))  # ModelError when it does not exist
        client.set_registered_model_alias(name, alias, str(version))


def promote(
    settings: Settings, name: str, version: int, reason: str
) -> tuple[RegisteredModel | None, RegisteredModel]:
    """Make ``version`` the champion; the old champion becomes a challenger.

    Returns ``(old champion or None, new champion)``; promoting the champion is a no-op.
    The reason and time are recorded as version tags.
    """
    with _mlflow(settings) as client:
        target = client.get_model_version(name, str(version))
        old_version = _alias_version(client, name, CHAMPION)
        old = _entry(client.get_model_version(name, str(old_version))) if old_version else None
        if old_version == int(version):
            return old, _entry(target, CHAMPION)
        now = str(int(time.time() * 1000))
        _demote(client, name, old_version, f"replaced by v{version}: {reason}")
        client.set_registered_model_alias(name, CHAMPION, str(version))
        client.set_model_version_tag(name, str(version), ROLE_TAG, CHAMPION)
        client.set_model_version_tag(name, str(version), "promoted_at_ms", now)
        client.set_model_version_tag(name, str(version), "promotion_reason", reason[:500])
        _refresh_challenger_alias(client, name)
        new = _entry(client.get_model_version(name, str(version)), CHAMPION)
        demoted = _entry(client.get_model_version(name, str(old_version))) if old else None
        return demoted, new


def retire(settings: Settings, name: str, version: int, reason: str) -> None:
    """Stop a challenger from shadow-scoring (tag ``role=retired``); the champion cannot be."""
    with _mlflow(settings) as client:
        if _alias_version(client, name, CHAMPION) == int(version):
            raise ModelError(f"{name} v{version} is the champion; promote another first")
        client.set_model_version_tag(name, str(version), ROLE_TAG, RETIRED)
        client.set_model_version_tag(name, str(version), "retired_reason", reason[:500])
        _refresh_challenger_alias(client, name)


def load_scoring_model(
    settings: Settings, name: str, version: int, role: str | None = None
) -> ScoringModel:
    """Load a registered version back as a :class:`ScoringModel` (role from the registry)."""
    with _mlflow(settings) as client:
        entry = _entry(client.get_model_version(name, str(version)))
        loaded = mlflow.pyfunc.load_model(f"models:/{name}/{int(version)}")
    wrapper = loaded.unwrap_python_model()
    packaged = getattr(wrapper, "packaged", None)
    if not isinstance(packaged, PackagedModel):
        raise ModelError(f"{name} v{version} is not a tickcast model (got {type(wrapper)})")
    # LightGBM compiled (cached); a random forest turned into an XGBoost booster
    packaged.prepare(compiled_dir=cache_dir(settings.data_dir))
    return ScoringModel.from_packaged(
        packaged,
        name=name,
        version=int(version),
        role=role or entry.role,
        reference=getattr(wrapper, "reference", None),
    )
