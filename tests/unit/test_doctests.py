"""The docstring examples of every module of every package run and pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = (
    "tickcast", "indicators", "schemas", "finance", "streams", "sinks", "training",
    "online_learning", "agents", "monitoring", "serving", "backtesting", "devtools",
    "sidestreams", "recovery",
)  # fmt: skip


#: Modules run as scripts by another interpreter, never imported by tickcast: Debian's
#: python3-torch runs training.torch_job (tests/unit/training/test_neural.py runs it there).
OTHER_INTERPRETER = frozenset({"training.torch_job"})


def _modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
    assert set(names) >= OTHER_INTERPRETER, "an exempt module is gone: drop its exemption"
    return sorted(set(names) - OTHER_INTERPRETER)


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
