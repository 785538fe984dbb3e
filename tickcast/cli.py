"""The ``tickcast`` command line: assembly only.

Each command lives in the home of the process or concern it drives (``agents/cli.py``,
``sinks/cli.py``, ``monitoring/cli.py``, …; development commands in ``devtools/cli.py``);
this module mounts them and turns typed errors into one line and an exit code.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from tickcast.command import settings
from tickcast.errors import TickcastError
from tickcast.processes import watch_lifeline

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The local stack, topics, and the product's jobs.",
)
console = Console(stderr=False)
err = Console(stderr=True)


@app.command("config")
def show_config() -> None:
    """Every setting: its environment variable, current value and meaning (secrets hidden)."""
    from pydantic import SecretStr

    from tickcast.redaction import MASK, redact

    cfg = settings()
    table = Table(title="tickcast settings (TICKCAST_* environment variables, .env)")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        secret = isinstance(value, SecretStr) or name.endswith(("_secret", "_token", "_password"))
        # a secret is shown as set or empty, never in part; passwords inside DSNs are masked
        shown = (MASK if value else "(empty)") if secret else redact(str(value))
        table.add_row(f"TICKCAST_{name.upper()}", shown, field.description or "")
    console.print(table)


def _mount_subcommands() -> None:
    """Every command, from its home."""
    from agents.cli import worker
    from backtesting.cli import app as backtest_app
    from devtools import cli as dev
    from monitoring.cli import drift, lag_app, metrics_summary
    from online_learning.cli import app as learner_app
    from recovery.cli import backup, restore
    from serving.cli import app as serve_app
    from serving.cli import token_command, users_app
    from sidestreams.cli import app as side_app
    from sidestreams.cli import featuresets
    from sinks.cli import app as sink_app
    from sinks.cli import features
    from streams.cli import feed_app, topics_app
    from training.cli import app as train_app

    for command in (dev.up, dev.down, dev.status, dev.doctor):
        app.command()(command)
    app.add_typer(topics_app, name="topics")
    app.add_typer(side_app, name="side")
    app.add_typer(feed_app, name="feed")
    app.command()(worker)
    app.command()(dev.demo)
    app.command()(features)
    app.command()(featuresets)
    app.command()(dev.replay)
    app.add_typer(dev.data_app, name="data")
    app.command()(drift)
    sink_app.command("drift", hidden=True)(drift)  # the name before drift had its own home
    app.add_typer(train_app, name="train")
    app.add_typer(learner_app, name="learner", help="River challengers and promotion.")
    app.add_typer(sink_app, name="sink")
    app.add_typer(lag_app, name="lag")
    app.add_typer(backtest_app, name="backtest")
    app.add_typer(serve_app, name="serve")
    app.add_typer(users_app, name="users")
    app.command("token")(token_command)
    app.command("metrics-summary")(metrics_summary)
    app.command()(backup)
    app.command()(restore)


_mount_subcommands()


def main() -> None:
    """Entry point: typed errors become one line on stderr and exit code 2."""
    watch_lifeline()
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except TickcastError as exc:
        err.print(f"tickcast: {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
