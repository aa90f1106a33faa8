"""The shift report: per station what a supervisor reads at the end of a shift.

Its window is planned busy time: availability and OEE count all of a station's known time
in it, exactly as ``oee_by_shift`` does for a shift on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from cell.insight.cycle import cycle_distribution
from cell.insight.oee import window_oee
from cell.insight.pareto import error_name
from cell.insight.window import Window
from cell.insight.yields import yield_by


@dataclass(frozen=True)
class StationShift:
    station_id: str
    parts: int
    jobs: int  # the same as parts: a PLC job is one part at the station
    first_pass_yield: float | None
    final_yield: float | None  # reworked_ok counts as good
    nok_pareto: tuple[tuple[int, str, int], ...]  # (error code, name, NOK jobs)
    cycle_p50_s: float | None
    cycle_p95_s: float | None
    takt_s: float | None
    availability: float | None  # running time / known time
    performance: float | None  # parts x takt / running time
    quality: float | None  # parts OK at the first attempt / parts
    oee: float | None
    alerts: int  # interventions: alerts raised in the window
    acknowledged: int
    cleared: int
    mtta_s: float | None  # mean time from raised to acknowledged
    mttr_s: float | None  # mean time from raised to cleared


@dataclass(frozen=True)
class ShiftReport:
    start: datetime
    end: datetime
    stations: tuple[StationShift, ...]


def shift_report(session: Session, start: datetime, end: datetime) -> ShiftReport:
    """Per station over ``[start, end)``: parts, first-pass and final yield, NOK Pareto,
    cycle time p50/p95 against takt, availability and OEE, interventions, MTTA and MTTR."""
    w = Window(start, end)
    # Grouped by station, every row has one (jobs.station_id is NOT NULL).
    yields = {
        r.station_id: r for r in yield_by(session, w, ("station",)) if r.station_id is not None
    }
    cycles = {c.station_id: c for c in cycle_distribution(session, w)}
    oee = {r.station_id: r for r in window_oee(session, w)}
    pareto: dict[str, list[tuple[int, str, int]]] = {}
    for st, code, n in session.execute(
        text(
            "SELECT station_id, error_code, count(*) FROM jobs WHERE NOT ok AND "
            "ended_at >= :a AND ended_at < :b GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"
        ),
        {"a": w.start, "b": w.end},
    ):
        pareto.setdefault(st, []).append((int(code), error_name(int(code)), int(n)))
    alerts = {
        r[0]: r[1:]
        for r in session.execute(
            text("""
        SELECT station_id, count(*), count(acknowledged_at), count(cleared_at),
               avg(extract(epoch FROM acknowledged_at - raised_at)),
               avg(extract(epoch FROM cleared_at - raised_at))
        FROM alerts WHERE raised_at >= :a AND raised_at < :b GROUP BY 1"""),
            {"a": w.start, "b": w.end},
        )
    }
    stations = sorted(set(yields) | set(oee) | set(alerts))
    out = []
    for st in stations:
        y, c, o = yields.get(st), cycles.get(st), oee.get(st)
        n_al, n_ack, n_clr, mtta, mttr = alerts.get(st, (0, 0, 0, None, None))
        out.append(
            StationShift(
                station_id=st,
                parts=y.parts if y else 0,
                jobs=y.parts if y else 0,
                first_pass_yield=y.first_pass_yield if y else None,
                final_yield=y.final_yield if y else None,
                nok_pareto=tuple(pareto.get(st, ())),
                cycle_p50_s=c.p50_s if c else None,
                cycle_p95_s=c.p95_s if c else None,
                takt_s=c.takt_s if c else None,
                availability=o.availability if o else None,
                performance=o.performance if o else None,
                quality=o.quality if o else None,
                oee=o.oee if o else None,
                alerts=int(n_al),
                acknowledged=int(n_ack),
                cleared=int(n_clr),
                mtta_s=float(mtta) if mtta is not None else None,
                mttr_s=float(mttr) if mttr is not None else None,
            )
        )
    return ShiftReport(w.start, w.end, tuple(out))
