"""``tickcast featuresets``: the named feature sets with their size, version and warm-up."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def featuresets() -> None:
    """List the feature sets a model can be trained on and a worker can compute."""
    from indicators.feature_sets import describe

    table = Table("name", "features", "version", "warm-up (bars)")
    for row in describe():
        table.add_row(str(row["name"]), str(row["count"]), str(row["version"]), str(row["warmup"]))
    Console().print(table)
