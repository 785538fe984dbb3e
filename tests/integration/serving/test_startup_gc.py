"""A served API process freezes its start-up heap out of the cyclic collector (so a full
collection does not stall requests); an app built in a test process does not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from serving.main import create_app
    from tickcast.config import load_settings

    async def main(freeze):
        settings = load_settings(redis_url=sys.argv[1], log_level="WARNING")
        app = create_app(settings, freeze_gc=freeze)
        before = gc.get_freeze_count()
        async with app.router.lifespan_context(app):
            print(before, gc.get_freeze_count())

    asyncio.run(main(sys.argv[2] == "1"))
    """
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("freeze", "frozen"), [(True, True), (False, False)])
def test_startup_heap_is_frozen_only_in_a_served_process(
    redis_url: str, freeze: bool, frozen: bool
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, redis_url, "1" if freeze else "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = map(int, done.stdout.split()[-2:])
    assert before == 0
    assert (after > 10_000) is frozen  # the imports alone are ~100k objects
