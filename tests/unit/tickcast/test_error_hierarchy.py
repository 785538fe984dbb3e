"""Every public exception of every first-party package derives from ``TickcastError``.

One root lets a caller (the CLI, a worker loop) catch "an error tickcast raised on purpose"
without also catching a bug. Private signals (an underscore name) never leave their module
and are exempt; so are the few named in ``INTERNAL_SIGNALS``, each with its reason.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from tickcast.errors import TickcastError

PACKAGES = (
    "tickcast", "indicators", "schemas", "finance", "streams", "sinks", "training",
    "online_learning", "agents", "monitoring", "serving", "backtesting", "devtools",
    "recovery",
)  # fmt: skip

#: Public names that are control flow, not errors; each is caught inside its package.
INTERNAL_SIGNALS = {
    # The Avro fast path's "cannot decide, use fastavro": raised and caught within
    # streams.hot_codec and streams.feature_encoder; it never reaches a caller.
    "streams.hot_codec.Fallback",
}


#: Modules run as scripts by another interpreter (no exception of theirs reaches tickcast).
OTHER_INTERPRETER = frozenset({"training.torch_job"})


def _exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined (not just imported) in a first-party module."""
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
        for name in names:
            if name in OTHER_INTERPRETER:  # run by Debian's torch python, never imported here
                continue
            module = importlib.import_module(name)
            for attr, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == name
                    and attr == obj.__name__
                ):
                    found[f"{name}.{attr}"] = obj
    return found


def test_the_walk_finds_the_known_errors() -> None:
    found = _exceptions()
    assert "tickcast.errors.ConfigError" in found
    assert "sinks.history.InvalidCursor" in found
    assert "serving.security.tokens.InvalidToken" in found
    assert len(found) > 30


def test_every_public_exception_derives_from_tickcast_error() -> None:
    outside = sorted(
        qualname
        for qualname, cls in _exceptions().items()
        if not cls.__name__.startswith("_")
        and qualname not in INTERNAL_SIGNALS
        and not issubclass(cls, TickcastError)
    )
    assert outside == [], f"public exceptions outside the TickcastError root: {outside}"


def test_the_exempt_signals_still_exist() -> None:
    assert INTERNAL_SIGNALS.issubset(_exceptions())
