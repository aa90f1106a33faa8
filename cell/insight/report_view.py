"""The shift report on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from cell.insight.report import ShiftReport


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _min(x: float | None) -> str:
    return "-" if x is None else f"{x / 60:.1f}"


def print_shift_report(console: Console, report: ShiftReport) -> None:
    """Per station: parts, yields, cycle time against takt, availability, interventions."""
    table = Table(
        title=f"Shift {report.start:%Y-%m-%d %H:%M} - {report.end:%H:%M} UTC",
        caption="cycle and takt in s; MTTA, MTTR (time to acknowledge, to repair) in min",
        padding=(0, 1),
    )
    cols = (
        "station",
        "parts",
        "FPY",
        "final",
        "p50",
        "p95",
        "takt",
        "avail",
        "alerts",
        "MTTA",
        "MTTR",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "station" else "right", no_wrap=True)
    for st in report.stations:
        table.add_row(
            st.station_id,
            str(st.parts),
            _pct(st.first_pass_yield),
            _pct(st.final_yield),
            _s(st.cycle_p50_s),
            _s(st.cycle_p95_s),
            _s(st.takt_s),
            _pct(st.availability),
            str(st.alerts),
            _min(st.mtta_s),
            _min(st.mttr_s),
        )
    console.print(table)
    pareto = Table(title="NOK Pareto", padding=(0, 1))
    for c in ("station", "error", "code", "jobs"):
        pareto.add_column(c, justify="right" if c in ("code", "jobs") else "left")
    for st in report.stations:
        for code, name, n in st.nok_pareto:
            pareto.add_row(st.station_id, name, str(code), str(n))
    if pareto.row_count:
        console.print(pareto)
