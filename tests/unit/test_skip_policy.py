"""The skip policy of tests/conftest.py, held by a check: no test skips itself."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SKIPPING = re.compile(r"pytest\.(skip|importorskip)\(|mark\.skip(if)?\b")


def test_no_test_skips_or_importorskips() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SKIPPING.search(line)
    ]
    assert not offenders, f"skips contradict the skip policy: {offenders}"
