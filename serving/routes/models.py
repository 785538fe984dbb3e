"""Models: registry view with live metrics, champion/challenger test state, promote, rollback."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request

from online_learning.promotion import PromotionError
from serving.circuit import DependencyUnavailable
from serving.deps import ModelsReader, ModelsWriter, RuntimeDep
from serving.errors import Conflict, NotFound
from serving.freshness import age_of
from serving.models import METRICS_KEY, TEST_KEY, ActionResult, VersionInfo, read_live
from serving.runtime import Runtime
from serving.schemas.common import PROTECTED, error_responses
from serving.schemas.models import (
    AbPublic,
    ActionPublic,
    Freshness,
    ModelEventPublic,
    ModelPublic,
    ModelsPublic,
    PromoteRequest,
    RollbackRequest,
    TestPublic,
    VersionPublic,
)
from tickcast.errors import ModelError

router = APIRouter(prefix="/models", tags=["models"])
log = structlog.get_logger("serving.models")


async def _live(runtime: Runtime, key: str) -> tuple[dict[str, Any] | None, Freshness]:
    prefix = runtime.settings.redis_key_prefix
    value = await runtime.redis_breaker.call(read_live, runtime.clients.redis, prefix, key)
    updated = value.get("updated_at") if value else None
    if not isinstance(updated, int | float) or isinstance(updated, bool):
        return value, Freshness(updated_at=None, age_s=None, stale=True)
    age = age_of(int(updated), now_s=runtime.clients.clock())
    return value, Freshness(
        updated_at=int(updated), age_s=age, stale=age > runtime.settings.stale_after_s
    )


def _version(info: VersionInfo, live: dict[str, Any]) -> VersionPublic:
    metrics = live.get(f"{info.name}:{info.version}")
    return VersionPublic(
        version=info.version,
        role=info.role,
        run_id=info.run_id,
        tags=info.tags,
        metrics=metrics if isinstance(metrics, dict) else None,
    )


@router.get("", response_model=ModelsPublic, responses=error_responses(*PROTECTED))
async def list_models(_: ModelsReader, runtime: RuntimeDep) -> ModelsPublic:
    """Champion and challengers of each configured model (``TICKCAST_API_MODELS``) from the
    MLflow registry, joined with the learner's live metrics (``<prefix>model-metrics``).

    MLflow down: the live metrics are still answered, with ``registry_error`` saying why the
    registry view is missing."""
    value, freshness = await _live(runtime, METRICS_KEY)
    raw = (value or {}).get("models")
    live: dict[str, Any] = raw if isinstance(raw, dict) else {}
    live = {k: v for k, v in live.items() if isinstance(v, dict)}
    models: list[ModelPublic] = []
    read_at: int | None = None
    error: str | None = None
    try:
        view, at = await runtime.models.view()
        read_at = int(at * 1000)
        for name, entry in view.items():
            champion = entry["champion"]
            models.append(
                ModelPublic(
                    name=name,
                    champion=None if champion is None else _version(champion, live),
                    challengers=[_version(c, live) for c in entry["challengers"]],
                )
            )
    except DependencyUnavailable as exc:
        error = f"{exc.component} unavailable: {exc}"[:300]
    return ModelsPublic(
        models=models,
        registry_read_at=read_at,
        registry_error=error,
        live=freshness,
        live_metrics=live,
    )


@router.get("/test", response_model=TestPublic, responses=error_responses(*PROTECTED))
async def champion_challenger_test(_: ModelsReader, runtime: RuntimeDep) -> TestPublic:
    """The champion/challenger test as the learner last published it (``<prefix>model-test``:
    pairs per challenger, policy, last decision, cooldown) and this process's A/B split."""
    value, freshness = await _live(runtime, TEST_KEY)
    settings = runtime.settings
    counts = runtime.ab_counter.report()
    ab = AbPublic(
        enabled=settings.ab_enabled,
        split=settings.ab_split,
        counts={k: float(v) for k, v in counts.items() if k != "champion_share"},
    )
    return TestPublic(ab=ab, test=value, live=freshness)


#: Refusals that mean "nothing known by that name": 404; any other refusal is a 409.
NOT_FOUND = frozenset({"unknown_model", "unknown_challenger", "unknown_version", "no_checkpoint"})


def _refused(exc: PromotionError | ModelError) -> NotFound | Conflict:
    if isinstance(exc, ModelError):
        return NotFound(str(exc), code="unknown_model")
    if exc.reason in NOT_FOUND:
        return NotFound(str(exc), code=exc.reason)
    return Conflict(str(exc), code=exc.reason)


async def _act(
    runtime: Runtime, action: str, actor: str, name: str, call: Any, **fields: str | None
) -> ActionPublic:
    try:
        result: ActionResult = await call
    except (PromotionError, ModelError) as exc:
        await runtime.audit.record(
            action, "refused", subject=actor, model=name, why=str(exc)[:200], **fields
        )
        raise _refused(exc) from None
    except DependencyUnavailable as exc:
        await runtime.audit.record(
            action, "failed", subject=actor, model=name, why=str(exc)[:200], **fields
        )
        raise
    event = result.event
    await runtime.audit.record(
        action,
        "ok",
        subject=actor,
        model=name,
        version=event["version"],
        from_version=event["from_version"],
        published=result.published,
        learner=event["inputs"].get("online_name"),  # None (dropped) unless online
        online_version=event["inputs"].get("online_version"),
    )
    return ActionPublic(
        event=ModelEventPublic.model_validate(event),
        published=result.published,
        publish_error=result.publish_error,
    )


def _cid(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


@router.post(
    "/promote", response_model=ActionPublic, responses=error_responses(*PROTECTED, 404, 409)
)
async def promote(
    body: PromoteRequest, admin: ModelsWriter, runtime: RuntimeDep, request: Request
) -> ActionPublic:
    """Make ``version`` the champion (admin only, audited): the MLflow ``champion`` alias moves
    and a PROMOTED ModelEvent goes to the ``model-events`` topic. 409 when it already is the
    champion, 404 for an unknown version; ``published`` false if Kafka did not take the event
    (the registry change stands).

    ``version: "online-N"`` with ``learner`` promotes an online learner as
    ``tickcast learner promote LEARNER online-N --into NAME`` does: its newest checkpoint is
    frozen, checked against the champion and registered as a new version, which the event
    names (``inputs.online_version``: N). 404 no checkpoint, learner or such version; 409 a
    horizon, feature-set or feature mismatch (nothing registered)."""
    models = runtime.models
    try:
        name = models.resolve(body.name)
    except PromotionError as exc:
        raise _refused(exc) from None
    call = models.promote(
        admin.sub, name, body.version, body.reason, _cid(request), learner=body.learner
    )
    return await _act(
        runtime, "models.promote", admin.sub, name, call, version=body.version, learner=body.learner
    )


@router.post(
    "/rollback", response_model=ActionPublic, responses=error_responses(*PROTECTED, 404, 409)
)
async def rollback(
    body: RollbackRequest, admin: ModelsWriter, runtime: RuntimeDep, request: Request
) -> ActionPublic:
    """Restore the champion that the current one replaced, or ``version`` (admin only,
    audited): alias move and a ROLLED_BACK ModelEvent. 409 when there is nothing to roll back
    to."""
    models = runtime.models
    try:
        name = models.resolve(body.name)
    except PromotionError as exc:
        raise _refused(exc) from None
    call = models.rollback(admin.sub, name, body.reason, body.version, _cid(request))
    return await _act(runtime, "models.rollback", admin.sub, name, call, version=body.version)
