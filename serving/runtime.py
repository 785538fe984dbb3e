"""The per-application services built from settings and clients at startup."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from online_learning.ab import AssignmentCounter
from serving.audit import AuditLog
from serving.circuit import CircuitBreaker
from serving.clients import Clients
from serving.history import ClickHouseHistory, HistoryService
from serving.models import KafkaEventPublisher, MlflowRegistry, ModelService
from serving.ratelimit import AddressLimits, Limit, RateLimiter
from serving.security.apikeys import ApiKeyStore
from serving.security.service import AuthService
from serving.security.sessions import SessionStore
from serving.security.tokens import LEEWAY_S, JwtCodec
from serving.security.users import UserStore
from serving.store import GuardedStore
from tickcast.config import Settings
from tickcast.metrics import Metrics, get_metrics


@dataclass
class Runtime:
    """What routes and dependencies use; one per application, on ``app.state.runtime``."""

    settings: Settings
    clients: Clients
    redis_breaker: CircuitBreaker
    store_breaker: CircuitBreaker
    store: GuardedStore
    limiter: RateLimiter
    audit: AuditLog
    auth: AuthService
    metrics: Metrics
    registry: CollectorRegistry
    history: HistoryService
    models: ModelService
    address_limits: AddressLimits
    ab_counter: AssignmentCounter = field(default_factory=AssignmentCounter)

    def breakers(self) -> list[CircuitBreaker]:
        """Every circuit breaker, for ``/readyz``."""
        return [
            self.redis_breaker,
            self.store_breaker,
            self.history.breaker,
            self.models.breaker,
        ]

    def request_limits(self, subject: str) -> list[Limit]:
        """The limits an authenticated request counts against."""
        s = self.settings
        return [
            Limit(f"sub:{subject}", s.rate_limit_per_subject, s.rate_limit_window_s),
            Limit("global", s.rate_limit_global, s.rate_limit_window_s),
        ]

    def auth_limits(self, client: str, account: str | None = None) -> list[Limit]:
        """The limits a token-endpoint request counts against: per client address and, when
        the request names one (``user:<name>``, ``client:<key id>``), per account."""
        s = self.settings
        limits = [
            Limit(f"auth:{client}", s.rate_limit_auth, s.rate_limit_window_s),
            Limit("global", s.rate_limit_global, s.rate_limit_window_s),
        ]
        if account:
            limits.insert(
                1, Limit(f"acct:{account}", s.rate_limit_login_account, s.rate_limit_window_s)
            )
        return limits


#: Timeouts of the slow dependencies (a history page, a registry call), in seconds.
HISTORY_TIMEOUT_S = 10.0
MLFLOW_TIMEOUT_S = 30.0


def _breaker(name: str, settings: Settings, timeout_s: float | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        name,
        failure_threshold=settings.circuit_failures,
        reset_after_s=settings.circuit_reset_s,
        timeout_s=timeout_s or settings.dependency_timeout_s,
    )


def build_runtime(settings: Settings, clients: Clients) -> Runtime:
    """Services for one application (reads JWT key files; makes no network call)."""
    prefix = settings.redis_key_prefix
    redis = clients.redis
    clock = clients.clock
    redis_breaker = _breaker("redis", settings)
    store_breaker = _breaker("store", settings)
    audit = AuditLog(
        redis,
        stream=f"{prefix}audit",
        breaker=redis_breaker,
        clock=clock,
        sample_per_key=settings.audit_sample_per_address,
        sample_window_s=settings.rate_limit_window_s,
    )
    sessions = SessionStore(
        redis,
        prefix=prefix,
        refresh_ttl_s=settings.refresh_token_ttl_s,
        access_ttl_s=settings.access_token_ttl_s,
        breaker=redis_breaker,
        clock=clock,
        marker_margin_s=LEEWAY_S + settings.token_lifetime_slack_s + 1,
    )
    limiter = RateLimiter(redis, prefix=prefix, clock=clock)
    address_limits = AddressLimits(
        limiter,
        redis_breaker,
        unauthenticated=settings.rate_limit_unauthenticated,
        failed=settings.rate_limit_failed_auth,
        window_s=settings.rate_limit_window_s,
    )
    auth = AuthService(
        codec=JwtCodec.from_settings(settings),  # PyJWT checks expiry on the wall clock
        sessions=sessions,
        users=UserStore(
            redis,
            prefix=prefix,
            breaker=redis_breaker,
            clock=clock,
            scrypt_n=settings.password_scrypt_n,
        ),
        keys=ApiKeyStore(redis, prefix=prefix, breaker=redis_breaker, clock=clock),
        audit=audit,
        address_limits=address_limits,
    )
    metrics = clients.metrics or get_metrics()
    history = HistoryService(
        clients.history or ClickHouseHistory(settings),
        _breaker("clickhouse", settings, HISTORY_TIMEOUT_S),
    )
    models = ModelService(
        settings,
        clients.models or MlflowRegistry(settings),
        clients.publisher or KafkaEventPublisher(settings),
        _breaker("mlflow", settings, MLFLOW_TIMEOUT_S),
        clock=clock,
    )
    return Runtime(
        settings=settings,
        clients=clients,
        redis_breaker=redis_breaker,
        store_breaker=store_breaker,
        store=GuardedStore(clients.store, store_breaker),
        limiter=limiter,
        audit=audit,
        auth=auth,
        metrics=metrics,
        registry=clients.registry or metrics.registry,
        history=history,
        models=models,
        address_limits=address_limits,
    )
