"""The docstring examples of every module of the package run and pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import indicators

MODULES = sorted(m.name for m in pkgutil.iter_modules(indicators.__path__, "indicators."))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
