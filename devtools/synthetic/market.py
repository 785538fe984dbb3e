"""Synthetic ticks and bars for load and validation tests: cheap, vectorised, seeded.

A :class:`SyntheticMarket` holds N symbols, each a geometric Brownian motion with its own
volatility plus compound-Poisson jumps. Time runs in *business time*: one regular session
(09:30–16:00 New York, 23,400 s) is one unit of variance, and ticks arrive with a U-shaped
intraday intensity ``1 + k (2u - 1)^2`` (busy open and close, quiet lunch), so both the tick
count and the traded volume per minute are U-shaped (bars: variance and volume alike).
Sessions follow each other on consecutive calendar days (no weekends or holidays), starting
at ``start_ms`` (the first open, UTC).

Batches are dicts of numpy arrays (``to_frame`` makes a DataFrame). Ticks are generated in
fixed internal chunks, so a seed gives the same stream whatever ``batch_size`` is asked for.
``bad_rate`` injects bad records whose kind is recorded in the ``defect`` column
(:class:`Defect`), so a validator can be checked against the truth.

>>> market = SyntheticMarket(SyntheticConfig(n_symbols=3, seed=7))
>>> batch = next(market.ticks(5))
>>> sorted(batch)
['defect', 'price', 'seq', 'symbol', 'symbol_id', 'ts_ms', 'volume']
>>> bool((batch["ts_ms"][1:] >= batch["ts_ms"][:-1]).all())
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

__all__ = ["Defect", "SyntheticConfig", "SyntheticMarket", "to_frame"]

Batch = dict[str, np.ndarray]
_CHUNK = 1 << 16
_DAY_MS = 86_400_000


class Defect(IntEnum):
    """What was done to a record (``defect`` column); ``CLEAN`` records are untouched."""

    CLEAN = 0
    NAN_PRICE = 1  # price (ticks) or close (bars) is NaN
    NEGATIVE_VOLUME = 2  # volume < 0
    DUPLICATE = 3  # an exact copy of the record before it
    OUT_OF_ORDER = 4  # ts_ms earlier than the record before it
    HIGH_LOW = 5  # bars: high < low; ticks with quotes: bid > ask (crossed)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic market (all rates in business time: 1 = one session)."""

    n_symbols: int = 500
    seed: int = 0
    start_ms: int = 1_704_205_800_000  # 2024-01-02 14:30 UTC = 09:30 New York
    session_s: float = 23_400.0
    ticks_per_session: float = 2_000_000.0  # across all symbols
    vol_range: tuple[float, float] = (0.15, 0.60)  # annualised, drawn per symbol
    jumps_per_session: float = 0.2  # Poisson intensity per symbol
    jump_sigma: float = 0.02  # std of one log-jump
    u_shape: float = 2.0  # k: open/close intensity is (1 + k) × midday
    price_range: tuple[float, float] = (10.0, 500.0)
    mean_trade_size: float = 200.0
    tick_size: float = 0.01
    quotes: bool = False  # add bid/ask/bid_size/ask_size; trades print at bid or ask
    spread_bps: float = 2.0
    bad_rate: float = 0.0
    defects: tuple[Defect, ...] = (
        Defect.NAN_PRICE,
        Defect.NEGATIVE_VOLUME,
        Defect.DUPLICATE,
        Defect.OUT_OF_ORDER,
        Defect.HIGH_LOW,
    )

    def __post_init__(self) -> None:
        if self.n_symbols < 1 or self.ticks_per_session <= 0 or self.session_s <= 0:
            raise ValueError("n_symbols, ticks_per_session and session_s must be positive")
        if not 0.0 <= self.bad_rate < 0.5:
            raise ValueError("bad_rate must be in [0, 0.5)")


def to_frame(batch: Batch) -> pd.DataFrame:
    """A batch as a DataFrame (canonical columns first)."""
    return pd.DataFrame(batch)


class SyntheticMarket:
    """A stateful, seeded stream of ticks or bars; the same calls give the same data."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = cfg = config or SyntheticConfig()
        self._rng = np.random.default_rng(cfg.seed)
        n = cfg.n_symbols
        width = max(4, len(str(n - 1)))
        self.symbols = np.array([f"S{i:0{width}d}" for i in range(n)])
        self.sigma = self._rng.uniform(*cfg.vol_range, n) / np.sqrt(252.0)  # per session
        lo, hi = np.log(cfg.price_range[0]), np.log(cfg.price_range[1])
        self._logp = self._rng.uniform(lo, hi, n)
        weights = 1.0 / np.arange(1, n + 1) ** 0.8  # Zipf-like activity, shuffled
        self.weights = self._rng.permutation(weights / weights.sum())
        self._last_tau = np.zeros(n)
        self._tau = 0.0
        self._seq = 0
        self._bar_step = 0
        # U-shaped intensity and its CDF over the session, for inverse-CDF time warping.
        self._u_grid = np.linspace(0.0, 1.0, 4097)
        dens = self.intensity(self._u_grid)
        cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2)])
        self._cdf = cdf / cdf[-1]

    def intensity(self, u: np.ndarray) -> np.ndarray:
        """Relative intraday activity at session fraction ``u`` (mean 1 over the session)."""
        k = self.config.u_shape
        return (1.0 + k * (2.0 * u - 1.0) ** 2) / (1.0 + k / 3.0)

    # ------------------------------------------------------------------ ticks
    def ticks(self, n_ticks: int, batch_size: int = 100_000) -> Iterator[Batch]:
        """Yield ``n_ticks`` ticks in event-time order, ``batch_size`` rows per batch."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        pending: list[Batch] = []
        held = 0
        remaining = n_ticks
        while remaining > 0 or held:
            while held < batch_size and remaining > 0:
                chunk = self._tick_chunk(min(_CHUNK, remaining))
                remaining -= len(chunk["ts_ms"])
                pending.append(chunk)
                held += len(chunk["ts_ms"])
            merged = _concat(pending)
            take = min(batch_size, held)
            yield {k: v[:take] for k, v in merged.items()}
            rest = {k: v[take:] for k, v in merged.items()}
            held -= take
            pending = [rest] if held else []

    def _tick_chunk(self, m: int) -> Batch:
        cfg, rng = self.config, self._rng
        tau = self._tau + np.cumsum(rng.exponential(1.0 / cfg.ticks_per_session, m))
        self._tau = float(tau[-1])
        sym = rng.choice(cfg.n_symbols, size=m, p=self.weights)
        logp = self._advance_prices(sym, tau)
        day = np.floor(tau)
        u = np.interp(tau - day, self._cdf, self._u_grid)
        ts = cfg.start_ms + day.astype(np.int64) * _DAY_MS
        ts = ts + np.floor(u * cfg.session_s * 1000.0).astype(np.int64)
        size_sigma = 1.0
        sizes = rng.lognormal(np.log(cfg.mean_trade_size) - size_sigma**2 / 2, size_sigma, m)
        volume = np.maximum(1.0, np.round(sizes))
        tick = cfg.tick_size
        mid = np.exp(logp)
        batch: Batch = {
            "symbol": self.symbols[sym],
            "symbol_id": sym.astype(np.int32),
            "ts_ms": ts,
            "price": np.round(mid / tick) * tick,
            "volume": volume,
        }
        if cfg.quotes:
            half = mid * cfg.spread_bps / 2e4 * rng.uniform(0.5, 1.5, m)
            bid = np.floor((mid - half) / tick) * tick
            ask = np.maximum(np.ceil((mid + half) / tick) * tick, bid + tick)
            batch["price"] = np.where(rng.random(m) < 0.5, bid, ask)
            batch["bid"], batch["ask"] = bid, ask
            batch["bid_size"] = rng.integers(1, 50, m).astype(np.float64) * 100
            batch["ask_size"] = rng.integers(1, 50, m).astype(np.float64) * 100
        batch["seq"] = np.arange(self._seq, self._seq + m, dtype=np.int64)
        self._seq += m
        batch["defect"] = np.zeros(m, dtype=np.int8)
        self._inject(batch, "price", 1_000 * 60, ("bid", "ask") if cfg.quotes else None)
        return batch

    def _advance_prices(self, sym: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Log prices of ticks (sym, tau), GBM + jumps over each symbol's own elapsed time."""
        cfg, rng = self.config, self._rng
        m = len(sym)
        order = np.argsort(sym, kind="stable")
        s_sorted, t_sorted = sym[order], tau[order]
        first = np.ones(m, dtype=bool)
        first[1:] = s_sorted[1:] != s_sorted[:-1]
        prev = np.empty(m)
        prev[1:] = t_sorted[:-1]
        prev[first] = self._last_tau[s_sorted[first]]
        dt = np.maximum(t_sorted - prev, 0.0)
        sig = self.sigma[s_sorted]
        inc = -0.5 * sig**2 * dt + sig * np.sqrt(dt) * rng.standard_normal(m)
        n_jumps = rng.poisson(cfg.jumps_per_session * dt)
        inc += cfg.jump_sigma * np.sqrt(n_jumps) * rng.standard_normal(m)
        csum = np.cumsum(inc)
        starts = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        within = csum - (csum[starts] - inc[starts])[group]
        logp_sorted = self._logp[s_sorted] + within
        ends = np.append(starts[1:] - 1, m - 1)
        self._logp[s_sorted[ends]] = logp_sorted[ends]
        self._last_tau[s_sorted[ends]] = t_sorted[ends]
        logp = np.empty(m)
        logp[order] = logp_sorted
        return logp

    # ------------------------------------------------------------------- bars
    def bars(
        self, n_steps: int, interval_ms: int = 60_000, steps_per_batch: int = 1
    ) -> Iterator[Batch]:
        """Yield ``n_steps`` bar intervals of all N symbols (``ts_ms`` = bar end).

        Bars are exact GBM closes with Brownian-bridge highs and lows (high ≥ max(open,
        close), low ≤ min(open, close)); variance and volume follow the U-shaped intensity.
        """
        cfg = self.config
        steps_per_session = max(1, int(cfg.session_s * 1000 // interval_ms))
        for first in range(0, n_steps, steps_per_batch):
            parts = []
            for _ in range(min(steps_per_batch, n_steps - first)):
                parts.append(self._bar_step_batch(steps_per_session, interval_ms))
            yield _concat(parts)

    def _bar_step_batch(self, steps_per_session: int, interval_ms: int) -> Batch:
        cfg, rng, n = self.config, self._rng, self.config.n_symbols
        day, j = divmod(self._bar_step, steps_per_session)
        self._bar_step += 1
        u0, u1 = j / steps_per_session, (j + 1) / steps_per_session
        dt = float(np.interp(u1, self._u_grid, self._cdf) - np.interp(u0, self._u_grid, self._cdf))
        x_o = self._logp.copy()
        inc = -0.5 * self.sigma**2 * dt + self.sigma * np.sqrt(dt) * rng.standard_normal(n)
        inc += (
            cfg.jump_sigma
            * np.sqrt(rng.poisson(cfg.jumps_per_session * dt, n))
            * (rng.standard_normal(n))
        )
        x_c = x_o + inc
        var = self.sigma**2 * dt
        span = (x_c - x_o) ** 2
        x_h = (x_o + x_c + np.sqrt(span - 2 * var * np.log(rng.random(n)))) / 2
        x_l = (x_o + x_c - np.sqrt(span - 2 * var * np.log(rng.random(n)))) / 2
        self._logp = x_c
        tick = cfg.tick_size
        per_bar = cfg.ticks_per_session * dt * self.weights * cfg.mean_trade_size
        volume = np.round(per_bar * rng.lognormal(-0.045, 0.3, n))
        ts = cfg.start_ms + day * _DAY_MS + (j + 1) * interval_ms
        batch: Batch = {
            "symbol": self.symbols.copy(),
            "ts_ms": np.full(n, ts, dtype=np.int64),
            "open": np.round(np.exp(x_o) / tick) * tick,
            "high": np.ceil(np.exp(x_h) / tick) * tick,
            "low": np.floor(np.exp(x_l) / tick) * tick,
            "close": np.round(np.exp(x_c) / tick) * tick,
            "volume": np.maximum(volume, 1.0),
            "defect": np.zeros(n, dtype=np.int8),
        }
        self._inject(batch, "close", interval_ms, ("low", "high"))
        return batch

    # ---------------------------------------------------------------- defects
    def _inject(
        self, batch: Batch, price_key: str, max_lag_ms: int, swap: tuple[str, str] | None
    ) -> None:
        """Turn a ``bad_rate`` share of rows into bad records, never two in a row."""
        cfg = self.config
        kinds = [d for d in cfg.defects if d is not Defect.CLEAN and (swap or d != Defect.HIGH_LOW)]
        if cfg.bad_rate <= 0 or not kinds:
            return
        m = len(batch["ts_ms"])
        mask = self._rng.random(m) < cfg.bad_rate
        mask[0] = False
        mask[1:] &= ~mask[:-1]
        rows = np.flatnonzero(mask)
        chosen = self._rng.choice(np.array(kinds, dtype=np.int8), size=len(rows))
        lags = self._rng.integers(1, max_lag_ms + 1, len(rows))
        for kind, row, lag in zip(chosen.tolist(), rows.tolist(), lags.tolist(), strict=True):
            if kind == Defect.DUPLICATE:
                for values in batch.values():
                    values[row] = values[row - 1]
            elif kind == Defect.NAN_PRICE:
                batch[price_key][row] = np.nan
            elif kind == Defect.NEGATIVE_VOLUME:
                batch["volume"][row] = -max(batch["volume"][row], 1.0)
            elif kind == Defect.OUT_OF_ORDER:
                batch["ts_ms"][row] = batch["ts_ms"][row - 1] - lag
            elif kind == Defect.HIGH_LOW and swap is not None:
                lo, hi = swap
                low, high = batch[lo][row], batch[hi][row]
                batch[lo][row], batch[hi][row] = high + cfg.tick_size, low
            batch["defect"][row] = kind


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
