"""The ``intern`` command line: the composition root of the cell.

One module per audience: ``line`` (run the line, workers, the PLC simulator, the demo),
``insight`` (engineers' queries), ``parts`` (part genealogy, the parts seen), ``acts``
(supervisors' and technicians' acts), ``rollouts`` (canary rollouts of a policy version)
and ``retrain`` (continue a station's policy on its recorded episodes), both mounted under
``intern policy``, ``api`` (the HTTP server and its users), ``history`` and
``db``; ``common`` holds what they share, including the one mapping of the cell's
errors to messages and exit codes. It is the only place in ``cell`` that may import
``policy``, and only inside the commands that use it, so ``intern --help`` starts without
torch, the web app or the database models.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cell.cli import acts, insight, line, parts, retrain
from cell.cli.api import api_app
from cell.cli.common import stop_on_signals
from cell.cli.db import db_app
from cell.cli.episodes import episodes_app
from cell.cli.history import history_app
from cell.cli.rollouts import rollout_app


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"intern-cells {version('intern-cells')}")
        raise typer.Exit()


def _top(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Humanoid robot cells on a production line."""


def register(app: typer.Typer) -> None:
    """Add the commands of engineers, supervisors and technicians, the generated plant
    history and the API's commands to ``app``."""
    insight.register(app)
    parts.register(app)
    acts.register(app)
    app.add_typer(history_app, name="history")
    app.add_typer(api_app, name="api")


def build_app() -> typer.Typer:
    """The whole ``intern`` command."""
    from mes_bridge.cli import certs_app
    from policy.cli import policy_app
    from robot.cli import sim_app

    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help="Humanoid robot cells on a production line.",
    )
    app.callback()(_top)
    line.register(app)
    app.add_typer(db_app, name="db")
    register(app)
    app.add_typer(sim_app, name="sim")
    app.add_typer(episodes_app, name="episodes")
    if all(group.name != "rollout" for group in policy_app.registered_groups):
        # The rollouts live in the record, which policy may not import: mounted here.
        policy_app.add_typer(rollout_app, name="rollout")
    if all(cmd.name != "train-from-record" for cmd in policy_app.registered_commands):
        # It selects episodes from the record: mounted here for the same reason.
        policy_app.command("train-from-record")(retrain.train_from_record)
    app.add_typer(policy_app, name="policy")
    app.add_typer(certs_app(), name="certs")
    return app


app = build_app()


def main() -> None:
    """Entry point of the ``intern`` script. SIGTERM and SIGHUP unwind the command like
    Ctrl-C, so the embedded servers it started are stopped."""
    with stop_on_signals() as stopping:
        try:
            app()
        except KeyboardInterrupt:
            sys.exit(130)
        except SystemExit as exc:
            # Stopped by a signal: the shell sees 128 + its number, however the command
            # unwound (Ctrl-C's path exits 1 after "Aborted!").
            if stopping.signum is not None and exc.code != 0:
                raise SystemExit(128 + stopping.signum) from None
            raise
