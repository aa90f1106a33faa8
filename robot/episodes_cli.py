"""``intern episodes``: recorded episodes turned into formats other tools read.

* ``export --from DIR --out DIR [--nok]``: the episodes of a folder as one LeRobotDataset
  (codebase v3.0) folder (``robot.lerobot_v3``); successful episodes only unless ``--nok``.

The exporter and numpy are imported when the command runs, so ``intern --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from robot.lerobot_v3 import ExportSummary

episodes_app = typer.Typer(
    help="Recorded episodes: export for other tools.",
    no_args_is_help=True,
)


@episodes_app.callback()
def _group() -> None:
    """Recorded episodes: export for other tools."""  # a group even with one command


@episodes_app.command("export")
def export(
    source: Annotated[Path, typer.Option("--from", help="folder of recorded episodes")],
    out: Annotated[Path, typer.Option("--out", help="new or empty folder for the dataset")],
    nok: Annotated[
        bool, typer.Option("--nok", help="export NOK episodes too (next.success false)")
    ] = False,
) -> None:
    """Write the episodes of a folder as one LeRobotDataset v3.0 (lerobot 0.4 reads it)."""
    from robot.episode_files import EpisodeFormatError
    from robot.lerobot_v3 import ExportError, export_episodes

    try:
        summary = export_episodes(source, out, include_failed=nok)
    except (ExportError, EpisodeFormatError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary_line(summary))


def summary_line(summary: ExportSummary) -> str:
    """What an export wrote, in one line for people."""
    left = (
        f"; {summary.skipped_failed} NOK left out (--nok keeps them)"
        if summary.skipped_failed
        else ""
    )
    return (
        f"wrote {summary.episodes} episodes, {summary.frames} frames, {summary.tasks} tasks "
        f"to {summary.root}{left}"
    )
