"""Models for the API: the registry (MLflow), the learner's live state (Redis), and the admin
actions promote and rollback, each recorded as a ModelEvent on the ``model-events`` topic.

Seams (tests put fakes there): :class:`ModelRegistry` (real: :class:`MlflowRegistry` over
``training.registry``) and :class:`EventPublisher` (real: :class:`KafkaEventPublisher`, a
``streams.producer.BatchProducer`` with the ``ModelEvent`` Avro codec). Registry calls
block, so :class:`ModelService` runs them in a thread behind the ``mlflow`` circuit breaker,
and caches the registry view for ``view_ttl_s`` (a promotion through this API clears it).

Live state comes from the learner process (``tickcast learner run``) through two Redis keys,
plain JSON that the learner writes after each micro-batch (a contract; see docs/api.md):

* ``<prefix>model-metrics``: ``{"updated_at": ms, "models": {"<name>:<version>": row}}``,
  where ``row`` is a row of ``online_learning.evaluation.OnlineEvaluator.snapshot()``.
* ``<prefix>model-test``: ``{"updated_at": ms, "champion": "<name>:<version>" | null,
  "cooldown_until": ms, "policy": {...}, "pairs": {"<challenger key>": n},
  "last_decision": {...} | null}`` — the champion/challenger test.

Online learners: ``promote`` with an ``online-N`` version and the learner's name registers the
learner of the newest checkpoint as a new integer version of the model first, through
:func:`online_learning.frozen.checkpoint_registrar` (the code ``tickcast learner promote``
runs), then moves the alias to that version. The ``registrar`` seam builds that hook.

Rollback target: the registry tags a demoted champion ``demoted_reason = "replaced by v<N>:
..."``; the version that the current champion replaced (the most recently promoted of them)
is restored, unless the caller names one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from online_learning.promotion import (
    ChampionChallengerTest,
    ModelRef,
    PromotionController,
    PromotionError,
    PromotionPolicy,
    Registrar,
    is_online,
)
from serving.circuit import CircuitBreaker
from sinks import redis_keys
from tickcast.config import Settings
from tickcast.errors import ModelError

log = structlog.get_logger("serving.models")
METRICS_KEY = redis_keys.MODEL_METRICS
TEST_KEY = redis_keys.MODEL_TEST


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A registered version as the API shows it."""

    name: str
    version: str
    role: str
    run_id: str
    tags: dict[str, str]


class ModelRegistry(Protocol):
    """Blocking registry access (called from a worker thread)."""

    def champion(self, name: str) -> VersionInfo | None:
        """The champion of ``name``, or None."""
        ...

    def challengers(self, name: str) -> list[VersionInfo]:
        """Challenger versions of ``name``, newest first."""
        ...

    def promote(self, name: str, version: str, reason: str) -> None:
        """Make ``version`` the champion (ModelError when it does not exist)."""
        ...


class EventPublisher(Protocol):
    """Publishes ModelEvent records."""

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver one event or raise DependencyError."""
        ...


def _info(entry: Any) -> VersionInfo:
    return VersionInfo(
        name=str(entry.name),
        version=str(entry.version),
        role=str(entry.role),
        run_id=str(entry.run_id),
        tags={str(k): str(v) for k, v in dict(entry.tags).items()},
    )


class MlflowRegistry:
    """:class:`ModelRegistry` over ``training.registry`` (the MLflow registry)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def champion(self, name: str) -> VersionInfo | None:
        """See :func:`training.registry.champion`."""
        from training import registry

        try:
            found = registry.champion(self.settings, name)
        except ModelError:
            return None
        return None if found is None else _info(found)

    def challengers(self, name: str) -> list[VersionInfo]:
        """See :func:`training.registry.challengers`."""
        from training import registry

        return [_info(e) for e in registry.challengers(self.settings, name)]

    def promote(self, name: str, version: str, reason: str) -> None:
        """See :func:`training.registry.promote`."""
        from training import registry

        if not version.isdigit():
            raise ModelError(f"{name}:{version} is not a registered version (digits)")
        registry.promote(self.settings, name, int(version), reason)


class KafkaEventPublisher:
    """:class:`EventPublisher` to ``<topic_prefix>model-events``, keyed by model name."""

    def __init__(self, settings: Settings, *, flush_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.topic = settings.topic("model-events")
        self.flush_timeout_s = flush_timeout_s
        self._producer: Any = None

    def publish(self, event: dict[str, Any]) -> None:
        """Encode (Avro ModelEvent), produce and wait for delivery."""
        from streams.codec import get_codec
        from streams.producer import BatchProducer

        payload = get_codec("ModelEvent").encode(event)
        if self._producer is None:
            self._producer = BatchProducer(self.settings, **{"message.timeout.ms": 10_000})
        self._producer.produce(self.topic, str(event["model_name"]).encode(), payload)
        self._producer.flush(self.flush_timeout_s)


def rollback_target(champion: str, candidates: list[VersionInfo]) -> VersionInfo | None:
    """The version that ``champion`` replaced (the most recently promoted one), or None.

    >>> old = VersionInfo("m", "2", "challenger", "r", {"demoted_reason": "replaced by v3: x"})
    >>> rollback_target("3", [old]).version, rollback_target("4", [old])
    ('2', None)
    """
    mark = f"replaced by v{champion}:"
    found = [c for c in candidates if c.tags.get("demoted_reason", "").startswith(mark)]
    if not found:
        return None

    def order(c: VersionInfo) -> tuple[int, int]:
        promoted = c.tags.get("promoted_at_ms", "0")
        return (int(promoted) if promoted.isdigit() else 0, int(c.version or 0))

    return max(found, key=order)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a promote or rollback did: the ModelEvent and whether it reached Kafka."""

    event: dict[str, Any]
    published: bool
    publish_error: str | None


class ModelService:
    """Registry view, live state and admin actions for the routes."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        publisher: EventPublisher,
        breaker: CircuitBreaker,
        *,
        view_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        registrar: Callable[[str], Registrar] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.registrar = registrar or self._checkpoint_registrar
        self.publisher = publisher
        self.breaker = breaker
        self.view_ttl_s = view_ttl_s
        self._clock = clock
        self._view: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self.names = [n.strip() for n in settings.api_models.split(",") if n.strip()]

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.breaker.call(asyncio.to_thread, fn, *args)

    def _checkpoint_registrar(self, name: str) -> Registrar:
        """Register into ``name`` a learner of the newest checkpoint (blocking: MLflow)."""
        from online_learning.frozen import checkpoint_registrar  # River: imported when used

        return checkpoint_registrar(self.settings, target=name)

    def _view_now(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            out[name] = {
                "champion": self.registry.champion(name),
                "challengers": self.registry.challengers(name),
            }
        return out

    async def view(self) -> tuple[dict[str, Any], float]:
        """``{name: {"champion", "challengers"}}`` and when it was read (epoch s, cached)."""
        async with self._lock:
            now = time.monotonic()
            if self._view is None or now - self._view[0] > self.view_ttl_s:
                models = await self._call(self._view_now)
                self._view = (now, {"at": self._clock(), "models": models})
            return self._view[1]["models"], self._view[1]["at"]

    def resolve(self, name: str | None) -> str:
        """The model name a request means (the first configured one by default)."""
        if name is None:
            if not self.names:
                raise PromotionError("unknown_model", "no model configured (TICKCAST_API_MODELS)")
            return self.names[0]
        return name

    def _publish(self, event: dict[str, Any]) -> tuple[bool, str | None]:
        try:
            self.publisher.publish(event)
        except Exception as exc:  # the registry moved: say that the event did not go out
            log.error("model_event_unpublished", model=event["model_name"], error=str(exc))
            return False, f"{type(exc).__name__}: {exc}"[:300]
        return True, None

    def _controller(
        self, name: str, correlation_id: str | None
    ) -> tuple[PromotionController, list[ActionResult]]:
        champion = self.registry.champion(name)
        ref = ModelRef(name, champion.version) if champion else None
        results: list[ActionResult] = []

        def publish(event: dict[str, Any]) -> None:
            event = {**event, "correlation_id": event.get("correlation_id") or correlation_id}
            published, error = self._publish(event)
            results.append(ActionResult(event, published, error))

        controller = PromotionController(
            ChampionChallengerTest(PromotionPolicy(), champion=ref),
            self.registry.promote,
            publish,
            actor="serving.api",
        )
        return controller, results

    def _promote(
        self,
        actor: str,
        name: str,
        version: str,
        reason: str,
        cid: str | None,
        learner: str | None,
    ) -> ActionResult:
        subject = name
        if is_online(version):
            if learner is None:
                raise PromotionError("unknown_challenger", f"{version}: name its learner")
            subject = learner
        controller, results = self._controller(name, cid)
        if is_online(version):
            controller.register = self.registrar(name)
        event = controller.promote_by_hand(actor, version, reason, name=subject)
        return results[-1] if results else ActionResult(event, False, "not published")

    def _rollback(
        self, actor: str, name: str, reason: str, version: str | None, cid: str | None
    ) -> ActionResult:
        controller, results = self._controller(name, cid)
        current = controller.test.champion
        if current is None:
            raise PromotionError("no_champion", f"{name} has no champion to roll back")
        if version is None:
            target = rollback_target(current.version, self.registry.challengers(name))
            if target is None:
                raise PromotionError(
                    "no_history", f"no version replaced by {current}; name one to roll back to"
                )
            version = target.version
        if version == current.version:
            raise PromotionError("already_champion", f"{current} is already the champion")
        controller.history.append(ModelRef(name, version))
        event = controller.rollback(actor, reason)
        return results[-1] if results else ActionResult(event, False, "not published")

    async def promote(
        self,
        actor: str,
        name: str,
        version: str,
        reason: str,
        correlation_id: str | None = None,
        learner: str | None = None,
    ) -> ActionResult:
        """Make ``name:version`` the champion (PROMOTED event).

        An ``online-N`` version names ``learner``'s newest checkpoint: it is registered as a
        new version of ``name`` first (see the module doc), and the event names that version.
        """
        try:
            result: ActionResult = await self._call(
                self._promote, actor, name, version, reason, correlation_id, learner
            )
            return result
        finally:
            self._view = None

    async def rollback(
        self,
        actor: str,
        name: str,
        reason: str,
        version: str | None = None,
        correlation_id: str | None = None,
    ) -> ActionResult:
        """Restore the previous champion, or ``version`` (ROLLED_BACK event)."""
        try:
            result: ActionResult = await self._call(
                self._rollback, actor, name, reason, version, correlation_id
            )
            return result
        finally:
            self._view = None


async def read_live(redis: Any, prefix: str, key: str) -> dict[str, Any] | None:
    """The learner's JSON under ``<prefix><key>``, or None when absent or unreadable."""
    raw = await redis.get(f"{prefix}{key}")
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("unreadable_live_state", key=key)
        return None
    return value if isinstance(value, dict) else None
