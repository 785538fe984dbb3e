"""Champion/challenger: paired evidence, a policy, decisions, and the recorded alias moves.

:class:`ChampionChallengerTest` pairs every challenger outcome with the champion's outcome
of the *same event* — key ``(symbol, ts)`` at the policy's horizon — so the test compares
the two models on exactly the same bars. :meth:`ChampionChallengerTest.decide` runs the
policy's test (:mod:`online_learning.stats`: Diebold–Mariano on log losses, Welch on
strategy returns, or both) once a challenger has ``min_samples`` pairs.

Repeated looks: every full evaluation consumes its pairs (the next one starts from fresh
pairs, so successive tests use disjoint samples), and with several challengers each is
tested at ``alpha / m`` (Bonferroni). Each look therefore promotes a no-better challenger
with probability ≤ alpha; ``min_effect`` and the event-time ``cooldown_s`` after every
champion change lower it further and prevent flapping.

Challengers are identified by name for online learners (version ``online-*``: a learning
model changes version continuously, and its latest version is the one promoted), and by
``name:version`` for registered models. :class:`PromotionController` applies decisions:
it calls the injected ``promoter(name, version, reason)`` (the lead wires
``training.registry.promote``, see :func:`registry_promoter`) and publishes a ModelEvent
record (``schemas/avro/model_event.avsc``) with the numbers and inputs through the injected
``publish(event)``; manual :meth:`~PromotionController.promote_by_hand` and
:meth:`~PromotionController.rollback` are recorded the same way.

The registry only knows integer versions, so an online winner is first made one: the
injected ``register(challenger, champion, reason)`` (:class:`Registrar`, see
:class:`online_learning.frozen.RegistryRegistrar`) freezes the learner and registers it as a
new version of the champion's registered model; the promoter then moves the alias to that
version, the champion becomes that registered version, and the ModelEvent names it (the
online name and version go in its ``inputs``). Without a registrar an online version reaches
the promoter as it is (the registry promoter refuses it: ``not_registered``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from online_learning.stats import TestResult, diebold_mariano, welch_test
from tickcast.config import Settings
from tickcast.errors import DependencyError, TickcastError

Promoter = Callable[[str, str, str], None]
Publisher = Callable[[dict[str, Any]], None]
EventKey = tuple[str, int]
Pair = tuple[float, float, float, float, str]  # loss champ, loss chall, ret champ, ret chall, v

AUTO_ACTOR = "online_learning.promoter"


class PromotionError(TickcastError):
    """A manual promotion or rollback that cannot be done (``reason`` says why)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model version: registered name and version string."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def is_online(version: str) -> bool:
    """Whether ``version`` is an online learner's (``online-<n_learned>``), not a registered one."""
    return version.startswith("online-")


def challenger_key(name: str, version: str) -> str:
    """Name for online learners (``online-*`` versions), else ``name:version``."""
    return name if is_online(version) else f"{name}:{version}"


@dataclass(frozen=True, slots=True)
class Registered:
    """What a :data:`Registrar` made of an online challenger.

    ``model`` is the registered version that will be promoted; ``inputs`` (online name and
    version, run id, where the reference came from, ...) go into the ModelEvent.
    """

    model: ModelRef
    inputs: dict[str, str] = field(default_factory=dict)


Registrar = Callable[[ModelRef, ModelRef | None, str], Registered]
"""``register(online challenger, champion or None, reason)``: a registered version of it."""


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """When a challenger may replace the champion."""

    min_samples: int = 500
    alpha: float = 0.05
    min_effect: float = 0.02
    cooldown_s: float = 3600.0
    test: Literal["dm", "welch", "both"] = "dm"
    horizon: int = 1
    dm_lag: int | None = None
    hln: bool = True
    bonferroni: bool = True
    max_pairs: int = 20_000
    max_unmatched: int = 50_000

    def as_inputs(self) -> dict[str, str]:
        """The policy as a ModelEvent ``inputs`` map."""
        return {f"policy.{k}": str(getattr(self, k)) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of one look: promote or not, which challenger, and the evidence."""

    promote: bool
    challenger: ModelRef | None
    champion: ModelRef | None
    p_value: float
    statistic: float
    effect: float
    n: int
    reason: str
    inputs: dict[str, str] = field(default_factory=dict)
    statistics: dict[str, float] = field(default_factory=dict)
    evaluated: bool = False


class ChampionChallengerTest:
    """Paired per-event losses and returns of the champion vs each challenger."""

    def __init__(self, policy: PromotionPolicy, champion: ModelRef | None = None) -> None:
        self.policy = policy
        self.champion = champion
        self.cooldown_until = -1
        self.last_ts = 0
        self._champion_ts = -1
        self._champ: OrderedDict[EventKey, tuple[float, float]] = OrderedDict()
        self._waiting: dict[str, OrderedDict[EventKey, tuple[float, float, str]]] = {}
        self.pairs: dict[str, OrderedDict[EventKey, Pair]] = {}
        self.latest: dict[str, ModelRef] = {}

    def set_champion(self, champion: ModelRef, ts: int | None = None) -> None:
        """A new champion: forget the evidence gathered against the old one."""
        self.champion = champion
        self._champion_ts = self.last_ts if ts is None else ts
        self._champ.clear()
        self._waiting.clear()
        self.pairs.clear()
        self.latest.clear()

    def n_pairs(self, key: str) -> int:
        """Pairs gathered so far for challenger ``key``."""
        return len(self.pairs.get(key, ()))

    def add(self, outcomes: Iterable[Mapping[str, Any]]) -> int:
        """Route outcomes of the policy's horizon into pairs; returns new pairs formed."""
        formed = 0
        bound = self.policy.max_unmatched
        for o in outcomes:
            if int(o.get("horizon", -1)) != self.policy.horizon:
                continue
            loss, ret = float(o["loss"]), float(o["strategy_return"])
            if not (math.isfinite(loss) and math.isfinite(ret)):
                continue
            ts = int(o["ts"])
            self.last_ts = max(self.last_ts, int(o.get("realized_ts", ts)))
            ref = ModelRef(str(o["model_name"]), str(o["model_version"]))
            key: EventKey = (str(o["symbol"]), ts)
            if o["role"] == "CHAMPION":
                if self.champion is None:
                    self.champion = ref  # adopt it; nothing gathered so far is against another
                elif ref != self.champion:
                    if ts <= self._champion_ts:
                        continue  # a late outcome of a former champion
                    self.set_champion(ref, ts)
                self._champion_ts = max(self._champion_ts, ts)
                self._champ[key] = (loss, ret)
                _trim(self._champ, bound)
                for ckey, waiting in self._waiting.items():
                    hit = waiting.pop(key, None)
                    if hit is not None:
                        formed += self._pair(ckey, key, (loss, ret), hit)
                continue
            if ref == self.champion:
                continue
            ckey = challenger_key(ref.name, ref.version)
            self.latest[ckey] = ref
            champ = self._champ.get(key)
            if champ is not None:
                formed += self._pair(ckey, key, champ, (loss, ret, ref.version))
            else:
                waiting = self._waiting.setdefault(ckey, OrderedDict())
                waiting[key] = (loss, ret, ref.version)
                _trim(waiting, bound)
        return formed

    def _pair(
        self, ckey: str, key: EventKey, champ: tuple[float, float], chall: tuple[float, float, str]
    ) -> int:
        pairs = self.pairs.setdefault(ckey, OrderedDict())
        new = key not in pairs
        pairs[key] = (champ[0], chall[0], champ[1], chall[1], chall[2])
        _trim(pairs, self.policy.max_pairs)
        return int(new)

    def _evaluate(self, ckey: str, alpha: float) -> Decision:
        p = self.policy
        pairs = list(self.pairs[ckey].values())
        lc, lch = [x[0] for x in pairs], [x[1] for x in pairs]
        rc, rch = [x[2] for x in pairs], [x[3] for x in pairs]
        results: list[TestResult] = []
        if p.test in ("dm", "both"):
            results.append(diebold_mariano(lc, lch, horizon=p.horizon, lag=p.dm_lag, hln=p.hln,
                                           alternative="greater"))  # fmt: skip
        if p.test in ("welch", "both"):
            results.append(welch_test(rc, rch, alternative="greater"))
        p_value = max(r.p_value for r in results)
        effect = min((r.effect for r in results), key=lambda e: e if math.isfinite(e) else -1e300)
        significant = all(r.p_value < alpha for r in results)
        large = math.isfinite(effect) and effect >= p.min_effect
        statistics: dict[str, float] = {"n": float(len(pairs)), "alpha_effective": alpha}
        for r in results:
            statistics.update({f"{r.test}.{k}": v for k, v in r.as_dict().items()})
        statistics["mean_loss_champion"] = sum(lc) / len(lc)
        statistics["mean_loss_challenger"] = sum(lch) / len(lch)
        keys = list(self.pairs[ckey])
        versions = sorted({x[4] for x in pairs})
        inputs = {
            **p.as_inputs(),
            "challenger_key": ckey,
            "challenger_versions": ",".join(versions[:3] + (["..."] if len(versions) > 3 else [])),
            "first_event": f"{keys[0][0]}@{keys[0][1]}",
            "last_event": f"{keys[-1][0]}@{keys[-1][1]}",
        }
        if not significant:
            reason = f"not significant (p={p_value:.4g} >= {alpha:.4g})"
        elif not large:
            reason = f"effect {effect:.4g} below min_effect {p.min_effect}"
        else:
            reason = f"challenger better (p={p_value:.4g}, effect={effect:.4g}, n={len(pairs)})"
        stat = results[0].statistic
        return Decision(significant and large, self.latest[ckey], self.champion, p_value, stat,
                        effect, len(pairs), reason, inputs, statistics, True)  # fmt: skip

    def decide(self, now_ts: int) -> Decision:
        """One look at the evidence at event time ``now_ts`` (see the module doc)."""
        if self.champion is None:
            return Decision(False, None, None, 1.0, math.nan, math.nan, 0, "no champion yet")
        if now_ts < self.cooldown_until:
            return Decision(False, None, self.champion, 1.0, math.nan, math.nan, 0,
                            f"cooldown until {self.cooldown_until}")  # fmt: skip
        ready = [k for k, v in self.pairs.items() if len(v) >= self.policy.min_samples]
        if not ready:
            most = max((len(v) for v in self.pairs.values()), default=0)
            return Decision(False, None, self.champion, 1.0, math.nan, math.nan, most,
                            f"insufficient pairs ({most} < {self.policy.min_samples})")  # fmt: skip
        alpha = self.policy.alpha / (len(self.latest) if self.policy.bonferroni else 1)
        decisions = [self._evaluate(k, alpha) for k in ready]
        for k in ready:
            self.pairs[k].clear()  # disjoint samples for the next look
        winners = [d for d in decisions if d.promote]
        pool = winners or decisions
        return min(pool, key=lambda d: (d.p_value, -d.effect if math.isfinite(d.effect) else 0))


def _trim(mapping: OrderedDict[Any, Any], bound: int) -> None:
    while len(mapping) > bound:
        mapping.popitem(last=False)


def model_event(
    event_type: str,
    model: ModelRef,
    *,
    from_version: str | None,
    role: str,
    reason: str,
    actor: str,
    ts: int,
    statistics: Mapping[str, float] | None = None,
    inputs: Mapping[str, str] | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """A ModelEvent record (``schemas/avro/model_event.avsc``)."""
    return {
        "event_type": event_type,
        "model_name": model.name,
        "version": model.version,
        "from_version": from_version,
        "role": role,
        "reason": reason,
        "statistics": {k: float(v) for k, v in (statistics or {}).items()},
        "inputs": {k: str(v) for k, v in (inputs or {}).items()},
        "actor": actor,
        "ts": int(ts),
        "correlation_id": correlation_id,
    }


class PromotionController:
    """Applies decisions: registry alias move, ModelEvent, cooldown, champion history."""

    def __init__(
        self,
        test: ChampionChallengerTest,
        promoter: Promoter | None = None,
        publish: Publisher | None = None,
        *,
        actor: str = AUTO_ACTOR,
        history: int = 16,
        register: Registrar | None = None,
    ) -> None:
        self.test = test
        self.promoter = promoter
        self.publish = publish
        self.register = register
        self.actor = actor
        self.history: deque[ModelRef] = deque(maxlen=history)
        self.events: deque[dict[str, Any]] = deque(maxlen=256)  # recent, for the API

    def __getstate__(self) -> dict[str, Any]:  # callables are wired again after a restore
        return {**self.__dict__, "promoter": None, "publish": None, "register": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"register": None, **state})  # checkpoints from before registrars

    def _emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.publish is not None:
            self.publish(event)

    def _change(self, new: ModelRef, reason: str, ts: int, inputs: dict[str, str]) -> ModelRef:
        """Make ``new`` the champion; returns the model that is now the champion.

        An online ``new`` is registered first when a registrar is wired (its lineage is added
        to ``inputs`` before the alias moves, so a failed move still says what was registered).
        """
        old = self.test.champion
        if self.register is not None and is_online(new.version):
            made = self.register(new, old, reason)
            inputs.update({"online_name": new.name, "online_version": new.version,
                           "registered_version": made.model.version, **made.inputs})  # fmt: skip
            new = made.model
        if self.promoter is not None:
            self.promoter(new.name, new.version, reason)
        if old is not None and old != new:
            self.history.append(old)
        self.test.set_champion(new, self.test.last_ts)
        self.test.cooldown_until = ts + int(self.test.policy.cooldown_s * 1000)
        return new

    def step(self, now_ts: int, correlation_id: str | None = None) -> Decision:
        """Take one decision at event time ``now_ts`` and apply it."""
        d = self.test.decide(now_ts)
        challenger = d.challenger
        if not d.evaluated or challenger is None:
            return d
        old = d.champion
        event_type, role = ("PROMOTED", "CHAMPION") if d.promote else ("REJECTED", "CHALLENGER")
        reason = d.reason
        inputs = {**d.inputs, "champion": str(old)}
        subject = challenger
        if d.promote:
            try:
                subject = self._change(challenger, d.reason, now_ts, inputs)
            except Exception as exc:  # registry down, or not registrable: keep the champion
                reason = f"promotion failed: {type(exc).__name__}: {exc}"
                event_type, role = "REJECTED", "CHALLENGER"
                d = Decision(False, challenger, old, d.p_value, d.statistic, d.effect, d.n,
                             reason, d.inputs, d.statistics, True)  # fmt: skip
        self._emit(model_event(event_type, subject, from_version=old.version if old else None,
                               role=role, reason=reason, actor=self.actor, ts=now_ts,
                               statistics=d.statistics, inputs=inputs,
                               correlation_id=correlation_id))  # fmt: skip
        return d

    def _manual_ts(self, now_ts: int | None) -> int:
        return now_ts if now_ts is not None else int(time.time() * 1000)

    def promote_by_hand(
        self, actor: str, version: str, reason: str, name: str | None = None,
        now_ts: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Make ``name:version`` the champion now (name defaults to the champion's)."""
        old = self.test.champion
        model_name = name or (old.name if old else None)
        if not model_name:
            raise PromotionError("unknown_model", "no champion yet: give the model name")
        new, ts = ModelRef(model_name, version), self._manual_ts(now_ts)
        if new == old:
            raise PromotionError("already_champion", f"{new} is already the champion")
        inputs = {"manual": "true", "champion": str(old)}
        new = self._change(new, reason, ts, inputs)
        event = model_event("PROMOTED", new, from_version=old.version if old else None,
                            role="CHAMPION", reason=reason, actor=actor, ts=ts,
                            inputs=inputs)  # fmt: skip
        self._emit(event)
        return event

    def rollback(self, actor: str, reason: str, now_ts: int | None = None) -> dict[str, Any]:
        """Restore the previous champion."""
        old = self.test.champion
        if not self.history or old is None:
            raise PromotionError("no_history", "no earlier champion to roll back to")
        previous, ts = self.history[-1], self._manual_ts(now_ts)
        if previous == old:  # the outcomes moved the champion back (the scorer had not swapped)
            raise PromotionError("already_champion", f"{old} is already the champion")
        self._change(previous, reason, ts, {})  # pushes the withdrawn champion on success
        self.history.pop()  # a rollback forgets the withdrawn champion ...
        self.history.pop()  # ... and the restored one is the champion again
        event = model_event("ROLLED_BACK", previous, from_version=old.version, role="CHAMPION",
                            reason=reason, actor=actor, ts=ts,
                            inputs={"manual": "true", "withdrawn": str(old)})  # fmt: skip
        self._emit(event)
        return event


def registry_promoter(settings: Settings) -> Promoter:
    """``promoter(name, version, reason)`` calling ``training.registry.promote``.

    Registered versions are integers; an online challenger (``online-*``) must first be
    registered as a model version (the controller's ``register``, see
    :class:`online_learning.frozen.RegistryRegistrar`), else the promoter raises and the
    controller records a REJECTED event saying so (the champion stays).
    """
    try:
        from training import registry  # written by another engineer; may not exist yet
    except ImportError as exc:
        raise DependencyError("mlflow", "training.registry is not available", str(exc)) from exc

    def promote(name: str, version: str, reason: str) -> None:
        if not version.isdigit():
            raise PromotionError(
                "not_registered",
                f"{name}:{version} is not a registered model version; register it first",
            )
        registry.promote(settings, name, int(version), reason)

    return promote
