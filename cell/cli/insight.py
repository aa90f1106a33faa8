"""``intern`` commands for engineers: yield, pareto, spc, oee, compare and the shift
report, each a query of ``cell.insight`` on the record (parts: ``cell.cli.parts``).

Inputs are validated with the same pydantic models as the HTTP API; times are read in
the line's time zone unless they carry an offset, and a station, robot or task that
neither the line nor the record knows is refused with the known ones. Every error is a
sentence for a person on stderr and exit code 2 (``cell.cli.common``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console

from cell.cli.common import (
    ConfigOpt,
    DaysOpt,
    EndOpt,
    FormatOpt,
    StartOpt,
    StationOpt,
    check_names,
    database,
    fail,
    invalid,
    moment,
    the_line,
    window,
)
from cell.cli.output import Format, emit

if TYPE_CHECKING:
    from cell.config import LineConfig
    from cell.insight import YieldRow
    from cell.insight.params import WindowParams

# The queries import SQLAlchemy and the analytics; each command imports them when it
# runs, so that ``intern --help`` stays fast.


def _nothing(what: str, w: WindowParams, line: LineConfig) -> str:
    """What an empty answer says: nothing of ``what`` between the window's ends, written
    in the line's time zone."""
    zone = ZoneInfo(line.timezone)
    win = w.window()
    where = f" at {w.station}" if w.station else ""
    return (
        f"no {what}{where} from {win.start.astimezone(zone):%Y-%m-%d %H:%M} "
        f"to {win.end.astimezone(zone):%Y-%m-%d %H:%M} ({line.timezone})"
    )


def yield_cmd(
    by: Annotated[
        list[str] | None,
        typer.Option(help="Group by station, robot, task, policy, day, shift or hour (repeat)."),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    station: StationOpt = None,
    robot: Annotated[str | None, typer.Option(help="Only this robot.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    policy: Annotated[str | None, typer.Option(help="Only this policy version.")] = None,
    tz: Annotated[
        str | None, typer.Option(help="Time zone of days (IANA name; default: the line's).")
    ] = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """First-pass and final yield over a window, grouped as asked."""
    from cell import insight as an
    from cell.insight.params import YieldParams

    line = the_line(config)
    w = window(line, start, end, days, station)
    try:
        p = YieldParams.model_validate(
            w.model_dump()
            | {"by": by or ["station"], "robot": robot, "task": task, "policy": policy}
            | {"tz": tz or line.timezone}
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    with database() as (s, _):
        check_names(s, line, station=p.station, robot=p.robot, task=p.task)
        rows = an.yield_by(
            s,
            p.window(),
            p.by,
            station=p.station,
            robot=p.robot,
            task=p.task,
            policy=p.policy,
            tz=p.tz,
        )
    emit(
        _yield_rows(rows, p.by),
        fmt,
        Console(),
        title="Yield",
        empty=_nothing("parts", p, line),
        zone=ZoneInfo(p.tz),
        keep=[GROUP_COLUMNS[k] for k in p.by],
    )


# The column of a yield row that each --by grouping fills.
GROUP_COLUMNS = {
    "station": "station_id",
    "robot": "robot_id",
    "task": "task",
    "policy": "policy_version",
    "day": "day",
    "shift": "shift",
    "hour": "hour",
}


def _yield_rows(rows: list[YieldRow], by: Sequence[str]) -> list[dict[str, object]]:
    return [
        {GROUP_COLUMNS[k]: getattr(r, GROUP_COLUMNS[k]) for k in by}
        | {
            "parts": r.parts,
            "retried": r.retried,
            "first_pass_yield": r.first_pass_yield,
            "final_yield": r.final_yield,
            "scrapped": r.scrapped,
        }
        for r in rows
    ]


def pareto(
    by: Annotated[str, typer.Option(help="code (jobs) or position (fasteners).")] = "code",
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    station: StationOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """NOK Pareto by error code or by fastener position."""
    from cell import insight as an

    if by not in ("code", "position"):
        raise fail(f"--by: choose code or position, not {by!r}")
    line = the_line(config)
    w = window(line, start, end, days, station)
    with database() as (s, _):
        check_names(s, line, station=w.station)
        fn = an.nok_pareto if by == "code" else an.fastener_pareto
        rows = [asdict(r) for r in fn(s, w.window(), station=w.station)]
    emit(rows, fmt, Console(), title=f"NOK Pareto by {by}", empty=_nothing("NOK", w, line))


Chart = Literal["imr", "xbar_r"]
Measure = Literal["torque", "angle"]
MEASURES: dict[str, Measure] = {"torque": "torque", "angle": "angle"}
CHARTS: dict[str, Chart] = {"imr": "imr", "xbar_r": "xbar_r"}


def spc(
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    station: StationOpt = None,
    measure: Annotated[str, typer.Option(help="torque or angle.")] = "torque",
    side: Annotated[str | None, typer.Option(help="With --position: a control chart.")] = None,
    position: Annotated[int | None, typer.Option(min=1, max=64)] = None,
    chart: Annotated[str, typer.Option(help="imr or xbar_r.")] = "imr",
    points: Annotated[int, typer.Option(min=2, max=5000)] = 50,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Cp/Cpk per fastener position, or a control chart of one position."""
    from cell import insight as an

    what, kind = MEASURES.get(measure), CHARTS.get(chart)
    if what is None or kind is None:
        raise fail("--measure is torque or angle; --chart is imr or xbar_r")
    line = the_line(config)
    w = window(line, start, end, days, station)
    if side is None and position is None:
        _capability(line, w, what, fmt)
        return
    if not (side and position and w.station):
        raise fail("a control chart needs --station, --side and --position")
    with database() as (s, _):
        check_names(s, line, station=w.station)
        c = an.control_chart(
            s, w.window(), w.station, side, position, measure=what, chart=kind, points=points
        )
    rows = [
        {"time": p.time, "value": p.value, "range": p.range, "rules": ",".join(map(str, p.rules))}
        for p in c.points
    ]
    if fmt is Format.TABLE:
        Console().print(
            f"centre {c.center:.4g}  UCL {c.ucl:.4g}  LCL {c.lcl:.4g}  (spec {c.lsl}..{c.usl})"
        )
    emit(
        rows,
        fmt,
        Console(),
        title=f"{c.chart} {measure} {c.station_id} {side} {position}",
        document=c,
        empty=_nothing(f"{measure} values for {side} {position}", w, line),
        zone=ZoneInfo(line.timezone),
    )


def _capability(line: LineConfig, w: WindowParams, measure: Measure, fmt: Format) -> None:
    """Cp/Cpk of every fastener position in the window (OK fasteners; "all": all)."""
    from cell import insight as an

    with database() as (s, _):
        check_names(s, line, station=w.station)
        rows = [
            {
                "station_id": r.station_id,
                "side": r.side,
                "position": r.position,
                "lsl": r.lsl,
                "usl": r.usl,
                "n": r.all.n,
                "mean": r.ok_only.mean,
                "sd": r.ok_only.sd,
                "cp": r.ok_only.cp,
                "cpk": r.ok_only.cpk,
                "cp_all": r.all.cp,
                "cpk_all": r.all.cpk,
            }
            for r in an.spc_summary(s, w.window(), station=w.station, measure=measure)
        ]
    emit(
        rows,
        fmt,
        Console(),
        title=f'{measure.capitalize()} capability (OK fasteners; "all": every fastener)',
        empty=_nothing(f"{measure} values", w, line),
    )


def oee(
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 1.0,
    station: StationOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """OEE = availability x performance x quality per station and shift."""
    from cell import insight as an

    line = the_line(config)
    w = window(line, start, end, days, station)
    with database() as (s, _):
        check_names(s, line, station=w.station)
        rows = [
            {k: v for k, v in asdict(r).items() if k not in ("starts_at", "ends_at")}
            for r in an.oee_by_shift(s, w.window(), station=w.station)
        ]
    emit(
        rows,
        fmt,
        Console(),
        title="OEE per station and shift",
        empty=_nothing("shifts begun", w, line),
    )


def compare(
    station: Annotated[str, typer.Option(help="The station.")],
    a: Annotated[str, typer.Option("--a", help="Policy version A (the baseline).")],
    b: Annotated[str, typer.Option("--b", help="Policy version B (the candidate).")],
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 30.0,
    config: ConfigOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Is policy version B's first-pass yield better than A's, or just lucky?"""
    from cell import insight as an

    line = the_line(config)
    w = window(line, start, end, days, station)
    with database() as (s, _):
        check_names(s, line, station=station)
        res = an.compare_policies(s, w.window(), station, a, b)
    emit([asdict(res)], fmt, Console(), title="Policy comparison", document=res)


def report_shift(
    start: Annotated[
        str | None,
        typer.Option(
            help="Shift start, ISO 8601: 2026-11-23T06:00 (the line's time zone) or "
            "2026-11-23T06:00+01:00 (default: the latest recorded shift).",
            show_default=False,
        ),
    ] = None,
    hours: Annotated[float, typer.Option(min=0.1, max=24.0, help="Length from --start.")] = 8.0,
    config: ConfigOpt = None,
) -> None:
    """Per station: parts, first-pass and final yield, NOK Pareto, cycle time against takt,
    availability, interventions, mean time to acknowledge and to repair."""
    from datetime import timedelta

    from sqlalchemy import select

    from cell.insight.report import shift_report
    from cell.insight.report_view import print_shift_report
    from cell.record.models import Shift

    begin = moment("--start", start, the_line(config))
    with database() as (s, _):
        if begin is None:
            row = s.scalars(select(Shift).order_by(Shift.starts_at.desc())).first()
            if row is None:
                raise fail("no shift on record; give --start")
            begin, end = row.starts_at, row.ends_at
        else:
            end = begin + timedelta(hours=hours)
        print_shift_report(Console(), shift_report(s, begin, end))


def register(app: typer.Typer) -> None:
    """Add the engineers' queries to ``app``."""
    app.command("yield")(yield_cmd)
    app.command()(pareto)
    app.command()(spc)
    app.command()(oee)
    app.command()(compare)
    report_app = typer.Typer(no_args_is_help=True, help="Reports from the production record.")
    report_app.command("shift")(report_shift)
    app.add_typer(report_app, name="report")
