"""Sliding-window rate limits in Redis: one atomic Lua script checks and counts every limit.

The window is the *sliding window counter* (two fixed-window counters per limit, the previous
one weighted by how much of it still overlaps the sliding window): O(1) memory per subject
whatever the limit, exact at window boundaries and conservative in between. A request is
counted against every limit or against none, so a refused request does not use up quota.

Keys are ``<prefix>rl:<name>:<window index>`` and expire after two windows. In a Redis Cluster
all keys of one call must share a slot: give the limiter a prefix with a hash tag (``{rl}``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from serving.circuit import CircuitBreaker, DependencyUnavailable

# The gate, for a batch of requests in one call: per request, its revocation markers (any
# existing: {-1, 0}, nothing counted), then its limits, in order: a request is counted against
# every limit or none, so a refused request does not use up quota.
# ARGV: number of requests, then per request: markers m, limits n, now_ms, n × (limit, window).
# KEYS: per request, its m markers then its n × (current, previous) counters.
# Returns a flat list: per request {-1, 0} | {0, retry_after_ms} | {1, remaining}.
_GATE = """
local out = {}
local k = 1
local a = 2
for _ = 1, tonumber(ARGV[1]) do
  local m = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local now = tonumber(ARGV[a + 2])
  a = a + 3
  local revoked = false
  for i = 0, m - 1 do
    if redis.call('EXISTS', KEYS[k + i]) == 1 then revoked = true end
  end
  k = k + m
  if revoked then
    out[#out + 1] = -1
    out[#out + 1] = 0
  else
    local retry = 0
    local remaining = -1
    for i = 0, n - 1 do
      local limit = tonumber(ARGV[a + 2 * i])
      local window = tonumber(ARGV[a + 2 * i + 1])
      local elapsed = now % window
      local curr = tonumber(redis.call('GET', KEYS[k + 2 * i]) or '0')
      local prev = tonumber(redis.call('GET', KEYS[k + 2 * i + 1]) or '0')
      local estimate = prev * (window - elapsed) / window + curr
      if estimate + 1 > limit then
        local wait
        if curr + 1 > limit then
          wait = (window - elapsed) + window * math.max(0, 1 - (limit - 1) / curr)
        else
          wait = (window - elapsed) - (limit - 1 - curr) * window / prev
        end
        retry = math.max(retry, wait)
      else
        local left = math.floor(limit - estimate - 1)
        if remaining < 0 or left < remaining then remaining = left end
      end
    end
    if retry > 0 then
      out[#out + 1] = 0
      out[#out + 1] = math.ceil(retry)
    else
      for i = 0, n - 1 do
        redis.call('INCR', KEYS[k + 2 * i])
        redis.call('PEXPIRE', KEYS[k + 2 * i], 2 * tonumber(ARGV[a + 2 * i + 1]))
      end
      out[#out + 1] = 1
      out[#out + 1] = remaining
    end
  end
  k = k + 2 * n
  a = a + 2 * n
end
return out
"""
#: Most requests one gate call carries.
MAX_GATE_BATCH = 256


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` requests per sliding ``window_s`` seconds for the counter ``name``."""

    name: str
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit: allowed or not, what is left, and when to retry if refused."""

    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiter:
    """Checks and counts requests against several :class:`Limit` at once, atomically."""

    def __init__(
        self, redis: Redis, *, prefix: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._gate_sha: str | None = None
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _keys_args(self, limits: Sequence[Limit], now_ms: int) -> tuple[list[str], list[int]]:
        keys: list[str] = []
        args: list[int] = [now_ms]
        for item in limits:
            window_ms = max(1, int(item.window_s * 1000))
            index = now_ms // window_ms
            keys += [
                f"{self._prefix}rl:{item.name}:{index}",
                f"{self._prefix}rl:{item.name}:{index - 1}",
            ]
            args += [item.limit, window_ms]
        return keys, args

    async def hit(self, limits: Sequence[Limit]) -> Decision:
        """Count one request against every limit, or refuse it if any limit is exhausted."""
        if not limits:
            return Decision(True, 0, 0.0)
        decision = await self.gate(limits, ())
        assert decision is not None  # without markers nothing is "revoked"
        return decision

    async def gate(self, limits: Sequence[Limit], markers: Sequence[str]) -> Decision | None:
        """None when one of ``markers`` exists (revoked; nothing counted), else the decision.

        Requests arriving in the same event-loop iteration share one ``EVALSHA`` (they are
        checked and counted in arrival order inside the script, exactly as one by one): under
        load one Redis round trip serves many requests; alone, a request pays one.
        """
        keys, args = self._keys_args(limits, math.floor(self._clock() * 1000))
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        self._pending.append(([*markers, *keys], [len(markers), len(limits), *args], future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await asyncio.shield(future)

    async def warm_up(self) -> None:
        """Load the gate script now (at startup) rather than on the first request."""
        self._gate_sha = str(await self._redis.script_load(_GATE))

    def _start_flush(self) -> None:
        batch, self._pending = self._pending[:MAX_GATE_BATCH], self._pending[MAX_GATE_BATCH:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._start_flush)
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[_Pending]) -> None:
        keys = [key for item in batch for key in item[0]]
        args: list[int] = [len(batch)]
        for item in batch:
            args += item[1]
        try:
            flat = await self._gate_call(keys, args)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
                    future.exception()
            if not isinstance(exc, Exception):
                raise
            return
        for i, (*_, future) in enumerate(batch):
            allowed, value = flat[2 * i], flat[2 * i + 1]
            if not future.done():
                future.set_result(None if int(allowed) == -1 else _decision(allowed, value))

    async def _gate_call(self, keys: list[str], args: list[int]) -> list[Any]:
        for attempt in (1, 2):
            if self._gate_sha is None:
                self._gate_sha = str(await self._redis.script_load(_GATE))
            try:
                result: list[Any] = await self._redis.evalsha(
                    self._gate_sha, len(keys), *keys, *args
                )
                return result
            except NoScriptError:
                self._gate_sha = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


_Pending = tuple[list[str], list[int], "asyncio.Future[Decision | None]"]


def _decision(allowed: Any, value: Any) -> Decision:
    if int(allowed) == 1:
        return Decision(True, max(0, int(value)), 0.0)
    return Decision(False, 0, int(value) / 1000)


class AddressLimits:
    """Per-client-address budgets of the requests no subject limit covers.

    * ``unauthenticated``: requests without a bearer token (counted before anything else);
    * ``failed``: requests refused 401 or 403 (counted when refused; once the budget is
      spent the refusal is a 429 and is not audited, so a flood of bad tokens costs its
      sender, not the audit trail).

    Neither counts against the global limit (an anonymous flood must not use up the quota of
    authenticated callers). Redis unavailable: not checked (``None``), the request goes on
    to the answer it would get anyway.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        breaker: CircuitBreaker,
        *,
        unauthenticated: int,
        failed: int,
        window_s: float,
    ) -> None:
        self._limiter = limiter
        self._breaker = breaker
        self.unauthenticated_limit = unauthenticated
        self.failed_limit = failed
        self.window_s = window_s

    async def _hit(self, limit: Limit) -> Decision | None:
        try:
            return await self._breaker.call(self._limiter.hit, [limit])
        except DependencyUnavailable:
            return None

    async def unauthenticated(self, address: str) -> Decision | None:
        """Count a request without a bearer token from ``address``."""
        return await self._hit(Limit(f"anon:{address}", self.unauthenticated_limit, self.window_s))

    async def failed(self, address: str) -> Decision | None:
        """Count a request from ``address`` refused 401/403."""
        return await self._hit(Limit(f"fail:{address}", self.failed_limit, self.window_s))
