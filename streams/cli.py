"""``tickcast topics``: the Kafka topics declared in ``infra/kafka/topics.yaml``."""

from __future__ import annotations

import typer
from rich.console import Console

from tickcast.command import settings

topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics from infra/kafka/topics.yaml.")
console = Console()


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics and align their configs (idempotent)."""
    from streams.topics import apply_topics

    changed = apply_topics(settings())
    for line in changed:
        console.print(f"  {line}")
    console.print(f"{len(changed)} topic(s) created or changed")
