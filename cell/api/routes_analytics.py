"""Read-only analytics endpoints: the same queries as the CLI, as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cell import insight as an
from cell.api.deps import Reader, SessionDep
from cell.api.errors import READ, responses
from cell.config import PART_ID_MAX_LEN
from cell.insight.params import RecordTime, StationId, WindowParams, YieldParams
from cell.insight.parts import PartsParams, parts_seen

router = APIRouter(prefix="/api", tags=["analytics"], responses=responses(*READ))


@router.get("/yield")
def get_yield(p: Annotated[YieldParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """First-pass and final yield grouped by ``by`` (repeat it: ``by=station&by=day``)."""
    rows = an.yield_by(
        s, p.window(), p.by, station=p.station, robot=p.robot, task=p.task, policy=p.policy, tz=p.tz
    )
    return [
        asdict(r) | {"first_pass_yield": r.first_pass_yield, "final_yield": r.final_yield}
        for r in rows
    ]


class ParetoParams(WindowParams):
    by: Literal["code", "position"] = "code"


@router.get("/pareto")
def get_pareto(p: Annotated[ParetoParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """NOK Pareto by error code (jobs) or by fastener position."""
    if p.by == "code":
        return [asdict(r) for r in an.nok_pareto(s, p.window(), station=p.station)]
    return [asdict(r) for r in an.fastener_pareto(s, p.window(), station=p.station)]


class SpcParams(WindowParams):
    measure: Literal["torque", "angle"] = "torque"


@router.get("/spc")
def get_spc(p: Annotated[SpcParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """Mean, standard deviation, Cp and Cpk per fastener position (OK only and all)."""
    return [asdict(r) for r in an.spc_summary(s, p.window(), station=p.station, measure=p.measure)]


class ChartParams(SpcParams):
    station: StationId
    side: Literal["left", "right"]
    position: int = Field(ge=1, le=64)
    chart: Literal["imr", "xbar_r"] = "imr"
    subgroup: int = Field(default=5, ge=2, le=10)
    points: int = Field(default=100, ge=2, le=5000)


@router.get("/spc/chart")
def get_chart(p: Annotated[ChartParams, Query()], s: SessionDep, _: Reader) -> dict:
    """Control chart (I-MR or X-bar R) of one position with Nelson rule violations."""
    return asdict(
        an.control_chart(
            s,
            p.window(),
            p.station,
            p.side,
            p.position,
            measure=p.measure,
            chart=p.chart,
            subgroup=p.subgroup,
            points=p.points,
        )
    )


@router.get("/cycle-time")
def get_cycle(p: Annotated[WindowParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """Cycle-time distribution per station: 0.5 s bins, p50, p95, share over takt."""
    return [asdict(r) for r in an.cycle_distribution(s, p.window(), station=p.station)]


@router.get("/oee")
def get_oee(p: Annotated[WindowParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """OEE = availability x performance x quality per station and shift."""
    return [asdict(r) for r in an.oee_by_shift(s, p.window(), station=p.station)]


class CompareParams(WindowParams):
    station: StationId
    a: str = Field(min_length=1, max_length=80)
    b: str = Field(min_length=1, max_length=80)


@router.get("/compare")
def get_compare(p: Annotated[CompareParams, Query()], s: SessionDep, _: Reader) -> dict:
    """First-pass yield of policy versions ``a`` and ``b`` at a station, with a test."""
    return asdict(an.compare_policies(s, p.window(), p.station, p.a, p.b))


@router.get("/parts")
def get_parts(p: Annotated[PartsParams, Query()], s: SessionDep, _: Reader) -> list[dict]:
    """Parts seen since ``since`` (a time, or a span back from now: ``8h``, ``2d``): first
    and last seen, stations visited in order, jobs, NOK jobs, final state."""
    rows = parts_seen(s, p.start(), station=p.station, nok=p.nok, limit=p.limit)
    return [asdict(r) for r in rows]


# ``path``: a part code may hold a slash (GS1 serials do).
@router.get("/parts/{part_id:path}", responses=responses(404))
def get_part(
    part_id: Annotated[str, Path(min_length=1, max_length=PART_ID_MAX_LEN)],
    s: SessionDep,
    _: Reader,
) -> dict:
    """Everything recorded about one part: its route, final state, jobs, fasteners,
    alerts."""
    hist = an.part_history(s, part_id)
    if hist is None:
        raise HTTPException(404, f"no part {part_id!r} on record")
    return asdict(hist)


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: RecordTime
    end: RecordTime


@router.get("/shift-report")
def get_report(p: Annotated[ReportParams, Query()], s: SessionDep, _: Reader) -> dict:
    """Per station: parts, FPY, final yield, NOK Pareto, cycle p50/p95 vs takt,
    availability, interventions, MTTA and MTTR over ``[start, end)``."""
    return asdict(an.shift_report(s, p.start, p.end))
