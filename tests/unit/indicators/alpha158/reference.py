"""An independent float64 transcription of Qlib's Alpha158 expressions, in pandas.

Each expression of :data:`indicators.alpha158.EXPRESSIONS` (Qlib's own text, checked
against pyqlib in ``test_qlib.py``) is evaluated with whole-series pandas/numpy/scipy
versions of Qlib's operators, following ``qlib/data/ops.py`` of pyqlib 0.9.7: rolling
windows with ``min_periods=1``, ``Ref`` as ``shift``, ``Std`` with ``ddof=1``, ``Rank`` as
the average-tie percentile, ``IdxMax`` as ``argmax + 1``, the Rsquare/Corr flat-std guard.
Nothing here shares code with the incremental operators under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from indicators.alpha158 import EXPRESSIONS


def _roll(x: pd.Series, n: int) -> pd.api.typing.Rolling:
    return x.astype(np.float64).rolling(n, min_periods=1)


def Ref(x: pd.Series, n: int) -> pd.Series:
    return x.shift(n)


def Mean(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).mean()


def Std(x: pd.Series, n: int) -> pd.Series:
    # Two-pass numpy per window: the exact sample deviation (pandas' online update leaves
    # rounding noise such as 1e-8 on a flat window; the Qlib test covers that engine).
    def f(a: np.ndarray) -> float:
        a = a[~np.isnan(a)]
        return float(np.std(a, ddof=1)) if a.size > 1 else np.nan

    return _roll(x, n).apply(f, raw=True)


def Sum(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).sum()


def Max(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).max()


def Min(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).min()


def IdxMax(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).apply(lambda a: np.argmax(a) + 1, raw=True)


def IdxMin(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).apply(lambda a: np.argmin(a) + 1, raw=True)


def Quantile(x: pd.Series, n: int, q: float) -> pd.Series:
    def f(a: np.ndarray) -> float:
        a = a[~np.isnan(a)]
        return float(np.quantile(a, q)) if a.size else np.nan

    return _roll(x, n).apply(f, raw=True)


def Rank(x: pd.Series, n: int) -> pd.Series:
    def f(a: np.ndarray) -> float:
        if np.isnan(a[-1]):
            return np.nan
        a = a[~np.isnan(a)]
        return float(rankdata(a, method="average")[-1] / a.size)

    return _roll(x, n).apply(f, raw=True)


def _fit(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    pos = np.arange(1.0, a.size + 1.0)
    ok = ~np.isnan(a)
    if ok.sum() < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slope, intercept = np.polyfit(pos[ok], a[ok], 1)
    return pos[ok], a[ok], float(slope), float(intercept)


def Slope(x: pd.Series, n: int) -> pd.Series:
    return _roll(x, n).apply(lambda a: np.nan if (f := _fit(a)) is None else f[2], raw=True)


def Resi(x: pd.Series, n: int) -> pd.Series:
    def f(a: np.ndarray) -> float:
        fit = _fit(a)
        if fit is None or np.isnan(a[-1]):
            return np.nan
        return float(a[-1] - (fit[3] + fit[2] * a.size))

    return _roll(x, n).apply(f, raw=True)


def Rsquare(x: pd.Series, n: int) -> pd.Series:
    def f(a: np.ndarray) -> float:
        fit = _fit(a)
        if fit is None or np.ptp(fit[1]) == 0:
            return np.nan
        return float(np.corrcoef(fit[0], fit[1])[0, 1] ** 2)

    out = _roll(x, n).apply(f, raw=True)
    out[np.isclose(Std(x, n), 0, atol=2e-05)] = np.nan
    return out


def Corr(x: pd.Series, y: pd.Series, n: int) -> pd.Series:
    # Per window over the rows where both are valid, as pandas' rolling corr (which also
    # turns ±inf into NaN first), with numpy's two-pass coefficient.
    a = x.to_numpy(np.float64).copy()
    b = y.to_numpy(np.float64).copy()
    a[np.isinf(a)] = np.nan
    b[np.isinf(b)] = np.nan
    values = []
    for end in range(1, a.size + 1):
        wa, wb = a[max(0, end - n) : end], b[max(0, end - n) : end]
        ok = ~np.isnan(wa) & ~np.isnan(wb)
        wa, wb = wa[ok], wb[ok]
        if wa.size < 2 or np.ptp(wa) == 0 or np.ptp(wb) == 0:
            values.append(np.nan)
        else:
            values.append(float(np.corrcoef(wa, wb)[0, 1]))
    out = pd.Series(values, index=x.index)
    x, y = x.where(~np.isinf(x)), y.where(~np.isinf(y))
    out[np.isclose(Std(x, n), 0, atol=2e-05) | np.isclose(Std(y, n), 0, atol=2e-05)] = np.nan
    return out


def Greater(x: pd.Series, y: float) -> pd.Series:
    return np.maximum(x, y)


def Less(x: pd.Series, y: pd.Series) -> pd.Series:
    return np.minimum(x, y)


def Abs(x: pd.Series) -> pd.Series:
    return np.abs(x)


def Log(x: pd.Series) -> pd.Series:
    with np.errstate(all="ignore"):
        return np.log(x)


_OPS = {f.__name__: f for f in (Ref, Mean, Std, Sum, Max, Min, IdxMax, IdxMin, Quantile, Rank)}
_OPS |= {f.__name__: f for f in (Slope, Resi, Rsquare, Corr, Greater, Less, Abs, Log)}


def alpha158_reference(bars: pd.DataFrame) -> pd.DataFrame:
    """Alpha158 of one symbol's time-ordered bars (``open..volume`` and ``vwap``), float64."""
    env = {f"F_{c}": bars[c].astype(np.float64).reset_index(drop=True) for c in _FIELDS}
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, expr in EXPRESSIONS.items():
            value = eval(expr.replace("$", "F_"), {"__builtins__": {}}, _OPS | env)
            out[name] = pd.Series(value, dtype=np.float64)
    return pd.DataFrame(out)


_FIELDS = ("open", "high", "low", "close", "volume", "vwap")
