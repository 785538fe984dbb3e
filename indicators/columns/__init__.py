"""Classic indicators as columns across symbols, updated per micro-batch (see ``engine``)."""

from indicators.columns.engine import MIN_ROUND, ClassicColumns, covers

__all__ = ["MIN_ROUND", "ClassicColumns", "covers"]
