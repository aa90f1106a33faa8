"""``intern`` commands for engineers and supervisors: ``register(app)`` adds yield, pareto,
spc, oee, compare, part, roster, assign, alerts, history and api to the CLI.

Inputs are validated with the same pydantic models as the HTTP API; every error is a
sentence for a person on stderr and exit code 2 (a refused act: exit code 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.orm import Session

from cell import alerts as al
from cell import analytics as an
from cell.analytics.output import Format, emit
from cell.analytics.params import WindowParams, YieldParams
from cell.assign import AssignmentRefused, reassign, roster, swap, to_maintenance
from cell.services import ServiceError, Services
from cell.settings import Settings, SettingsError, load_settings

StartOpt = Annotated[
    datetime | None,
    typer.Option(help="Window start (UTC unless an offset is given), e.g. 2026-03-01T06:00."),
]
EndOpt = Annotated[datetime | None, typer.Option(help="Window end (default: now).")]
DaysOpt = Annotated[float, typer.Option(help="Window length when --start is not given.")]
StationOpt = Annotated[str | None, typer.Option(help="Only this station.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")]
AuthorOpt = Annotated[str, typer.Option(help="Who does this (recorded with the act).")]

# Analytics commands need no broker: a placeholder URL keeps Services from starting one.
_NO_BROKER = "redis://127.0.0.1:6379/15"


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None


def _invalid(exc: ValidationError) -> typer.Exit:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"--{where.replace('_', '-')}: {e['msg']}" if where else e["msg"])
    return _fail("; ".join(parts))


@contextmanager
def _database(broker: bool = False) -> Iterator[tuple[Session, Services]]:
    """A session on the record (embedded PostgreSQL when none is configured, migrated);
    the usual refusals become messages for a person."""
    from cell.db.engine import make_engine
    from cell.db.migrate import upgrade

    settings = _settings()
    try:
        with Services(
            settings.data_dir.resolve(),
            settings.database_url,
            settings.redis_url if broker else settings.redis_url or _NO_BROKER,
        ) as svc:
            assert svc.database_url
            if "postgres" in svc.embedded:
                upgrade(svc.database_url)
            engine = make_engine(svc.database_url, pool_size=1)
            try:
                with Session(engine, expire_on_commit=False) as session:
                    yield session, svc
            finally:
                engine.dispose()
    except ValidationError as exc:
        raise _invalid(exc) from None
    except (AssignmentRefused, al.AlertRefused) as exc:
        raise _fail(f"refused: {exc}", 1) from None
    except (an.QueryError, ServiceError) as exc:
        raise _fail(str(exc)) from None


def _window(
    start: datetime | None, end: datetime | None, days: float, station: str | None
) -> WindowParams:
    try:
        return WindowParams(start=start, end=end, days=days, station=station)
    except ValidationError as exc:
        raise _invalid(exc) from None


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
    tz: Annotated[str, typer.Option(help="Time zone of days (IANA name).")] = "UTC",
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """First-pass and final yield over a window, grouped as asked."""
    try:
        p = YieldParams(
            by=by or ["station"],
            start=start,
            end=end,
            days=days,
            station=station,
            robot=robot,
            task=task,
            policy=policy,
            tz=tz,
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    with _database() as (s, _):
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
    keys = {
        "station": "station_id",
        "robot": "robot_id",
        "task": "task",
        "policy": "policy_version",
        "day": "day",
        "shift": "shift",
        "hour": "hour",
    }
    out = [
        {keys[k]: getattr(r, keys[k]) for k in p.by}
        | {
            "parts": r.parts,
            "retried": r.retried,
            "first_pass_yield": r.first_pass_yield,
            "final_yield": r.final_yield,
            "scrapped": r.scrapped,
        }
        for r in rows
    ]
    emit(out, fmt, Console(), title="Yield")


def pareto(
    by: Annotated[str, typer.Option(help="code (jobs) or position (fasteners).")] = "code",
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 7.0,
    station: StationOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """NOK Pareto by error code or by fastener position."""
    if by not in ("code", "position"):
        raise _fail(f"--by: choose code or position, not {by!r}")
    w = _window(start, end, days, station)
    with _database() as (s, _):
        fn = an.nok_pareto if by == "code" else an.fastener_pareto
        rows = [asdict(r) for r in fn(s, w.window(), station=w.station)]
    emit(rows, fmt, Console(), title=f"NOK Pareto by {by}")


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
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Cp/Cpk per fastener position, or a control chart of one position."""
    if measure not in ("torque", "angle") or chart not in ("imr", "xbar_r"):
        raise _fail("--measure is torque or angle; --chart is imr or xbar_r")
    w = _window(start, end, days, station)
    with _database() as (s, _):
        if side is None and position is None:
            rows = []
            for r in an.spc_summary(s, w.window(), station=w.station, measure=measure):  # type: ignore[arg-type]
                rows.append(
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
                )
            emit(rows, fmt, Console(), title=f"{measure} capability (OK fasteners; _all: all)")
            return
        if not (side and position and w.station):
            raise _fail("a control chart needs --station, --side and --position")
        c = an.control_chart(
            s,
            w.window(),
            w.station,
            side,
            position,
            measure=measure,  # type: ignore[arg-type]
            chart=chart,
            points=points,
        )  # type: ignore[arg-type]
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
    )


def oee(
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 1.0,
    station: StationOpt = None,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """OEE = availability x performance x quality per station and shift."""
    w = _window(start, end, days, station)
    with _database() as (s, _):
        rows = [
            {k: v for k, v in asdict(r).items() if k not in ("starts_at", "ends_at")}
            for r in an.oee_by_shift(s, w.window(), station=w.station)
        ]
    emit(rows, fmt, Console(), title="OEE per station and shift")


def compare(
    station: Annotated[str, typer.Option(help="The station.")],
    a: Annotated[str, typer.Option("--a", help="Policy version A (the baseline).")],
    b: Annotated[str, typer.Option("--b", help="Policy version B (the candidate).")],
    start: StartOpt = None,
    end: EndOpt = None,
    days: DaysOpt = 30.0,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Is policy version B's first-pass yield better than A's, or just lucky?"""
    w = _window(start, end, days, station)
    with _database() as (s, _):
        res = an.compare_policies(s, w.window(), station, a, b)
    emit([asdict(res)], fmt, Console(), title="Policy comparison", document=res)


def part(
    part_id: Annotated[str, typer.Argument(help="The part's DMC / serial.")],
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Everything recorded about one part."""
    with _database() as (s, _):
        hist = an.part_history(s, part_id)
    if hist is None:
        raise _fail(f"no part {part_id!r} on record")
    rows = [
        {k: v for k, v in asdict(j).items() if k not in ("fasteners", "alerts")}
        | {"fasteners_nok": sum(not f.ok for f in j.fasteners), "alerts": len(j.alerts)}
        for j in hist.jobs
    ]
    emit(rows, fmt, Console(), title=f"Part {hist.part_id}", document=hist)


def roster_cmd(fmt: FormatOpt = Format.TABLE) -> None:
    """Which robot serves which station, since when, by whom and why."""
    with _database() as (s, _):
        rows = [asdict(e) | {"skills": ", ".join(e.skills)} for e in roster(s)]
    emit(rows, fmt, Console(), title="Roster")


def assign(
    robot: Annotated[str, typer.Option(help="The robot to move.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    author: AuthorOpt,
    station: Annotated[str | None, typer.Option(help="Move the robot to this station.")] = None,
    swap_with: Annotated[str | None, typer.Option(help="Swap stations with this robot.")] = None,
    maintenance: Annotated[bool, typer.Option(help="Take the robot out of service.")] = False,
    fmt: FormatOpt = Format.TABLE,
) -> None:
    """Reassign a robot, swap two, or send one to maintenance (next cycle boundary)."""
    if [bool(station), bool(swap_with), maintenance].count(True) != 1:
        raise _fail("give exactly one of --station, --swap-with or --maintenance")
    with _database() as (s, _):
        if station:
            reassign(s, robot, station, author=author, reason=reason)
        elif swap_with:
            swap(s, robot, swap_with, author=author, reason=reason)
        else:
            to_maintenance(s, robot, author=author, reason=reason)
        _audit_cli(
            s,
            author,
            "assign",
            robot,
            {
                "station": station,
                "swap_with": swap_with,
                "maintenance": maintenance,
                "reason": reason,
            },
        )
        rows = [asdict(e) | {"skills": ", ".join(e.skills)} for e in roster(s)]
    emit(rows, fmt, Console(), title="Roster")


def _audit_cli(s: Session, author: str, action: str, target: str, detail: dict[str, Any]) -> None:
    from cell.db.models_analytics import AuditEntry

    s.add(
        AuditEntry(
            actor=author, role="cli", action=action, target=target, outcome="done", detail=detail
        )
    )
    s.commit()


alerts_app = typer.Typer(no_args_is_help=True, help="The technicians' alert queue.")


@alerts_app.command("list")
def alerts_list(station: StationOpt = None, fmt: FormatOpt = Format.TABLE) -> None:
    """Open alerts, oldest first."""
    with _database() as (s, _):
        rows = [
            {
                "id": a.id,
                "station_id": a.station_id,
                "raised_at": a.raised_at,
                "part_id": a.part_id,
                "message": a.message,
                "acknowledged_by": a.acknowledged_by,
                "rework": a.rework,
            }
            for a in al.open_alerts(s, station)
        ]
    emit(rows, fmt, Console(), title="Open alerts")


def _step(alert_id: int, step: str, author: str, outcome: al.Rework | None = None) -> None:
    with _database() as (s, _):
        if step == "ack":
            a = al.acknowledge(s, alert_id, author=author)
        elif step == "rework":
            assert outcome is not None
            a = al.record_rework(s, alert_id, outcome, author=author)
        else:
            a = al.clear(s, alert_id, author=author)
        _audit_cli(
            s, author, f"alert.{step}", str(alert_id), {"outcome": outcome.value} if outcome else {}
        )
        Console().print(f"alert {a.id}: {step} recorded by {author}")


@alerts_app.command("ack")
def alerts_ack(alert_id: int, author: AuthorOpt) -> None:
    """Acknowledge an alert."""
    _step(alert_id, "ack", author)


@alerts_app.command("rework")
def alerts_rework(alert_id: int, outcome: al.Rework, author: AuthorOpt) -> None:
    """Record what was done to the alert's part (reworked_ok or scrapped)."""
    _step(alert_id, "rework", author, outcome)


@alerts_app.command("clear")
def alerts_clear(alert_id: int, author: AuthorOpt) -> None:
    """Clear an acknowledged (and, with a part, reworked) alert."""
    _step(alert_id, "clear", author)


def register(app: typer.Typer) -> None:
    """Add the analytics, roster, alert, history and API commands to ``app``."""
    from cell.api.cli import api_app
    from cell.history.cli import history_app

    app.command("yield")(yield_cmd)
    app.command()(pareto)
    app.command()(spc)
    app.command()(oee)
    app.command()(compare)
    app.command()(part)
    app.command("roster")(roster_cmd)
    app.command()(assign)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(history_app, name="history")
    app.add_typer(api_app, name="api")
