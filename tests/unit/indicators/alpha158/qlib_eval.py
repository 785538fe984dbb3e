"""Evaluate Alpha158 with Qlib's own expression engine (runs in pyqlib's own virtualenv).

    python qlib_eval.py BARS.csv OUT.csv WORKDIR

``BARS.csv`` has ``symbol, step, open, high, low, close, volume, vwap``, ``step`` counting
each symbol's bars from 0 (tickcast sees a symbol's bars, not the exchange calendar, so the
k-th bar of every symbol is put on the k-th day of a synthetic calendar and no symbol has a
gap). The bars are written in Qlib's binary layout (``calendars/day.txt``,
``instruments/all.txt``, ``features/<symbol>/<field>.day.bin``: little-endian float32, the
first value being the calendar index of the symbol's first bar), then ``D.features``
evaluates the expressions of ``Alpha158DL.get_feature_config()``. ``OUT.csv`` gets
``symbol, step`` and the 158 columns under Qlib's names; the expressions are printed as
JSON on the last line, so the caller can check its own copy against Qlib's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS = ("open", "high", "low", "close", "volume", "vwap")


def dump_bin(bars: pd.DataFrame, root: Path) -> list[str]:
    """Write ``bars`` in Qlib's binary layout; return the calendar (``YYYY-MM-DD``)."""
    days = pd.date_range("2000-01-03", periods=int(bars["step"].max()) + 1, freq="D")
    calendar = [d.strftime("%Y-%m-%d") for d in days]
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("\n".join(calendar) + "\n")
    (root / "instruments").mkdir()
    lines = []
    for symbol, g in bars.groupby("symbol", sort=True):
        g = g.sort_values("step")
        assert g["step"].tolist() == list(range(len(g)))
        lines.append(f"{symbol}\t{calendar[0]}\t{calendar[len(g) - 1]}")
        folder = root / "features" / str(symbol).lower()
        folder.mkdir(parents=True)
        for field in FIELDS:
            data = np.r_[np.float32(0), g[field].to_numpy(np.float32)]
            data.astype("<f4").tofile(folder / f"{field}.day.bin")
    (root / "instruments" / "all.txt").write_text("\n".join(lines) + "\n")
    return calendar


def main(bars_csv: str, out_csv: str, workdir: str) -> None:
    import qlib
    from qlib.contrib.data.loader import Alpha158DL
    from qlib.data import D

    bars = pd.read_csv(bars_csv, dtype={"symbol": str})
    root = Path(workdir) / "qlib_data"
    calendar = dump_bin(bars, root)
    qlib.init(provider_uri=str(root), region="us", expression_cache=None, dataset_cache=None)
    fields, names = Alpha158DL.get_feature_config(
        {
            "kbar": {},
            "price": {"windows": [0], "feature": ["OPEN", "HIGH", "LOW", "VWAP"]},
            "rolling": {},
        }
    )
    symbols = sorted(bars["symbol"].unique())
    frame = D.features(symbols, fields, start_time=calendar[0], end_time=calendar[-1])
    frame.columns = names
    frame = frame.reset_index().rename(columns={"instrument": "symbol"})
    frame.insert(1, "step", (frame.pop("datetime") - pd.Timestamp(calendar[0])).dt.days)
    frame.to_csv(out_csv, index=False, float_format="%.9g")
    print(json.dumps(dict(zip(names, fields, strict=True))))


if __name__ == "__main__":
    main(*sys.argv[1:4])
