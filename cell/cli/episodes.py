"""``intern episodes``: every job's episode, from the record and the episode store.

* ``list``: the episodes on record (job, part, station, outcome, policy version, frames,
  size, the technician's rework label), oldest first; ``--nok`` only NOK ones.
* ``export --out DIR``: the record's episodes (filtered by station, task, policy version
  and time) read from the episode store and written as one LeRobotDataset v3.0; OK ones
  only unless ``--nok``. ``--from DIR`` exports a folder of episodes instead.
* ``prune``: the retention rule of ``cell.record.episodes`` applied to the store; the
  rows stay, marked pruned.

The store is ``INTERN_EPISODE_DIR`` (else ``<data_dir>/episodes``), the folder the robot
workers write. numpy and the exporter are imported when a command runs: ``intern --help``
stays fast and never loads torch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from cell.cli.common import (
    ConfigOpt,
    DaysOpt,
    EndOpt,
    FormatOpt,
    StationOpt,
    check_names,
    database,
    fail,
    moment,
    settings,
    the_line,
    window,
)
from cell.cli.output import Format, emit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cell.record.episodes import EpisodeRow
    from robot.job_episodes import EpisodeStore
    from robot.lerobot_v3 import ExportSummary

episodes_app = typer.Typer(
    no_args_is_help=True,
    help="Every job's episode: list, export as a LeRobot dataset, prune.",
)

SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        "--start",
        help="Jobs ended from, ISO 8601: 2026-03-01T06:00 (the line's time zone) "
        "or 2026-03-01T06:00+01:00.",
        show_default=False,
    ),
]
TaskOpt = Annotated[str | None, typer.Option(help="Only this task.", show_default=False)]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="Only this policy version.", show_default=False)
]


def _outcome(r: EpisodeRow) -> str:
    from robot.jobs import ErrorCode

    if r.ok:
        return "OK"
    try:
        return f"NOK {ErrorCode(r.error_code).name.lower()}"
    except ValueError:
        return f"NOK {r.error_code}"


def episode_row(r: EpisodeRow) -> dict[str, object]:
    """An episode as ``list`` prints it (machine names; CSV and JSON keep them)."""
    return {
        "job_key": r.job_key,
        "part_id": r.part_id,
        "station_id": r.station_id,
        "outcome": _outcome(r),
        "policy_version": r.policy_version,
        "frames": r.frames,
        "size_mb": round(r.bytes / 1e6, 3),
        "rework": r.rework,
        "ended_at": r.ended_at,
        "path": r.path,
    }


@episodes_app.command("list")
def list_cmd(
    station: StationOpt = None,
    nok: Annotated[bool, typer.Option("--nok", help="Only NOK episodes.")] = False,
    since: SinceOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    task: TaskOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """The episodes on record of the jobs ended in the window, oldest first."""
    from cell.record.episodes import EpisodeFilter, find_episodes

    line = the_line(config)
    span = window(line, since, end, days, station).window()
    f = EpisodeFilter(station=station, nok_only=nok, task=task, since=span.start, until=span.end)
    with database() as (s, _):
        check_names(s, line, station=station, task=task)
        rows = [episode_row(r) for r in find_episodes(s, f)]
    zone = ZoneInfo(line.timezone)
    where = f" at {station}" if station else ""
    emit(
        rows,
        fmt,
        Console(),
        title=f"{'NOK e' if nok else 'E'}pisodes{where}",
        empty=f"no {'NOK ' if nok else ''}episodes{where} of jobs ended from "
        f"{span.start.astimezone(zone):%Y-%m-%d %H:%M} to "
        f"{span.end.astimezone(zone):%Y-%m-%d %H:%M} ({line.timezone})",
        zone=zone,
    )


def _record_paths(
    config: Path | None,
    station: str | None,
    task: str | None,
    policy: str | None,
    since: str | None,
) -> list[Path]:
    """The manifests in the episode store of the record's unpruned episodes that the
    options select, oldest job first; exits 2 when there are none."""
    from cell.record.episodes import EpisodeFilter, find_episodes
    from robot.job_episodes import EpisodeStore

    line = the_line(config)
    f = EpisodeFilter(
        station=station, task=task, policy_version=policy, since=moment("--since", since, line)
    )
    with database() as (s, _):
        check_names(s, line, station=station, task=task)
        rows = find_episodes(s, f)
    if not rows:
        raise fail("no episodes on record match these options; see intern episodes list")
    store = EpisodeStore(settings().episode_store())
    try:
        return [store.manifest_path(r.path) for r in rows]
    except ValueError as exc:
        raise fail(str(exc)) from None


@episodes_app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="New or empty folder for the dataset.")],
    nok: Annotated[
        bool, typer.Option("--nok", help="Export NOK episodes too (next.success false).")
    ] = False,
    station: StationOpt = None,
    task: TaskOpt = None,
    policy: PolicyOpt = None,
    since: SinceOpt = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A folder of episodes instead of the record's.", show_default=False
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Write the record's episodes (OK; NOK too with --nok) as one LeRobotDataset v3.0."""
    from robot.episode_files import EpisodeFormatError
    from robot.lerobot_v3 import ExportError, export_episodes, export_manifests

    if source is not None and (station or task or policy or since):
        raise fail("--from exports a whole folder: leave out --station, --task, --policy, --since")
    try:
        if source is not None:
            summary = export_episodes(source, out, include_failed=nok)
        else:
            paths = _record_paths(config, station, task, policy, since)
            summary = export_manifests(paths, out, include_failed=nok)
    except (ExportError, EpisodeFormatError) as exc:
        raise fail(str(exc)) from None
    Console().print(_summary_line(summary), highlight=False)


def _summary_line(summary: ExportSummary) -> str:
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


def _drop(session: Session, store: EpisodeStore, rows: list[EpisodeRow]) -> None:
    """Delete the files of ``rows``, then mark them pruned; a folder that cannot be
    deleted stops it there, the ones deleted before it marked."""
    from cell.record.episodes import mark_pruned

    done: list[int] = []
    try:
        for r in rows:
            store.delete(r.path)
            done.append(r.id)
    except (OSError, ValueError) as exc:
        raise fail(f"episode {r.path}: not deleted: {exc}") from None
    finally:
        mark_pruned(session, done, datetime.now(UTC))
        session.commit()


@episodes_app.command("prune")
def prune_cmd(
    keep_ok: Annotated[
        float,
        typer.Option("--keep-ok", help="Share of OK episodes kept, by job key hash (0 to 1)."),
    ] = 0.1,
    budget_gb: Annotated[
        float | None,
        typer.Option(
            "--budget-gb",
            help="Keep the store within this many GB (oldest OK go first).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")
    ] = False,
) -> None:
    """Keep every NOK episode, a share of OK ones, and the store within a budget."""
    from cell.record.episodes import EpisodeFilter, find_episodes, prune_plan
    from robot.job_episodes import EpisodeStore

    if not 0.0 <= keep_ok <= 1.0:
        raise fail(f"--keep-ok must be between 0 and 1, got {keep_ok}")
    if budget_gb is not None and budget_gb < 0:
        raise fail(f"--budget-gb must be 0 or more, got {budget_gb}")
    budget = None if budget_gb is None else int(budget_gb * 1e9)
    store = EpisodeStore(settings().episode_store())
    with database() as (s, _):
        rows = find_episodes(s, EpisodeFilter())
        plan = prune_plan(rows, keep_ok, budget)
        if not dry_run:
            _drop(s, store, [r for r in rows if r.id in set(plan.drop)])
    verb = "would drop" if dry_run else "dropped"
    over = (
        f"; NOK episodes alone exceed the budget by {plan.over_budget / 1e9:.3f} GB"
        if plan.over_budget
        else ""
    )
    Console().print(
        f"{verb} {len(plan.drop)} episodes ({plan.dropped_bytes / 1e9:.3f} GB); kept "
        f"{plan.kept} ({plan.kept_bytes / 1e9:.3f} GB){over}",
        highlight=False,
    )
