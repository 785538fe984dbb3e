"""The 158 features of Qlib's Alpha158, as data: names and Qlib expressions.

This mirrors ``Alpha158DL.get_feature_config()`` of pyqlib 0.9.7
(``qlib/contrib/data/loader.py``) with its default configuration (k-bar, the four price
ratios of the current bar, 29 rolling operators x windows 5/10/20/30/60), in the same
order and with the same names. The expressions are Qlib's text, so a test can hand them to
Qlib's own expression engine; :mod:`indicators.alpha158.state` computes the same values
incrementally.

>>> len(NAMES), NAMES[:3], NAMES[-1]
(158, ('KMID', 'KLEN', 'KMID2'), 'VSUMD60')
>>> EXPRESSIONS["RSV5"]
'($close-Min($low, 5))/(Max($high, 5)-Min($low, 5)+1e-12)'
"""

from __future__ import annotations

#: Rolling windows of the default Alpha158 configuration.
WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)

KBAR: tuple[tuple[str, str], ...] = (
    ("KMID", "($close-$open)/$open"),
    ("KLEN", "($high-$low)/$open"),
    ("KMID2", "($close-$open)/($high-$low+1e-12)"),
    ("KUP", "($high-Greater($open, $close))/$open"),
    ("KUP2", "($high-Greater($open, $close))/($high-$low+1e-12)"),
    ("KLOW", "(Less($open, $close)-$low)/$open"),
    ("KLOW2", "(Less($open, $close)-$low)/($high-$low+1e-12)"),
    ("KSFT", "(2*$close-$high-$low)/$open"),
    ("KSFT2", "(2*$close-$high-$low)/($high-$low+1e-12)"),
)

PRICE: tuple[tuple[str, str], ...] = tuple(
    (f"{field.upper()}0", f"${field}/$close") for field in ("open", "high", "low", "vwap")
)

_SUMS = "Sum(Greater({x}-Ref({x}, 1), 0), %d)", "Sum(Greater(Ref({x}, 1)-{x}, 0), %d)"
_ABS = "(Sum(Abs({x}-Ref({x}, 1)), %d)+1e-12)"

#: (operator, template with ``%d`` for the window), in Qlib's order. ``LOW`` is named MIN.
ROLLING: tuple[tuple[str, str], ...] = (
    ("ROC", "Ref($close, %d)/$close"),
    ("MA", "Mean($close, %d)/$close"),
    ("STD", "Std($close, %d)/$close"),
    ("BETA", "Slope($close, %d)/$close"),
    ("RSQR", "Rsquare($close, %d)"),
    ("RESI", "Resi($close, %d)/$close"),
    ("MAX", "Max($high, %d)/$close"),
    ("MIN", "Min($low, %d)/$close"),
    ("QTLU", "Quantile($close, %d, 0.8)/$close"),
    ("QTLD", "Quantile($close, %d, 0.2)/$close"),
    ("RANK", "Rank($close, %d)"),
    ("RSV", "($close-Min($low, %d))/(Max($high, %d)-Min($low, %d)+1e-12)"),
    ("IMAX", "IdxMax($high, %d)/%d"),
    ("IMIN", "IdxMin($low, %d)/%d"),
    ("IMXD", "(IdxMax($high, %d)-IdxMin($low, %d))/%d"),
    ("CORR", "Corr($close, Log($volume+1), %d)"),
    ("CORD", "Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), %d)"),
    ("CNTP", "Mean($close>Ref($close, 1), %d)"),
    ("CNTN", "Mean($close<Ref($close, 1), %d)"),
    ("CNTD", "Mean($close>Ref($close, 1), %d)-Mean($close<Ref($close, 1), %d)"),
    ("SUMP", _SUMS[0].format(x="$close") + "/" + _ABS.format(x="$close")),
    ("SUMN", _SUMS[1].format(x="$close") + "/" + _ABS.format(x="$close")),
    (
        "SUMD",
        f"({_SUMS[0]}-{_SUMS[1]})".format(x="$close") + "/" + _ABS.format(x="$close"),
    ),
    ("VMA", "Mean($volume, %d)/($volume+1e-12)"),
    ("VSTD", "Std($volume, %d)/($volume+1e-12)"),
    (
        "WVMA",
        "Std(Abs($close/Ref($close, 1)-1)*$volume, %d)"
        "/(Mean(Abs($close/Ref($close, 1)-1)*$volume, %d)+1e-12)",
    ),
    ("VSUMP", _SUMS[0].format(x="$volume") + "/" + _ABS.format(x="$volume")),
    ("VSUMN", _SUMS[1].format(x="$volume") + "/" + _ABS.format(x="$volume")),
    (
        "VSUMD",
        f"({_SUMS[0]}-{_SUMS[1]})".format(x="$volume") + "/" + _ABS.format(x="$volume"),
    ),
)


def _rolling(template: str, d: int) -> str:
    return template % ((d,) * template.count("%d"))


#: Every feature's Qlib expression, by name, in Alpha158's column order.
EXPRESSIONS: dict[str, str] = {
    **dict(KBAR),
    **dict(PRICE),
    **{f"{op}{d}": _rolling(tpl, d) for op, tpl in ROLLING for d in WINDOWS},
}

#: The 158 names, in Alpha158's column order.
NAMES: tuple[str, ...] = tuple(EXPRESSIONS)
