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


def _table(title: str, caption: str, cols: tuple[str, ...]) -> Table:
    table = Table(title=title, caption=caption, padding=(0, 1))
    for c in ("station", *cols):
        table.add_column(c, justify="left" if c == "station" else "right", no_wrap=True)
    return table


def print_shift_report(console: Console, report: ShiftReport) -> None:
    """Per station: parts, yields and cycle time against takt; then availability,
    performance and OEE (quality is the first-pass yield) and interventions. Two tables,
    so that each fits an 80-column terminal."""
    when = f"{report.start:%Y-%m-%d %H:%M} - {report.end:%H:%M} UTC"
    output = _table(
        f"Shift {when}: output",
        "FPY, final: first-pass, final yield; times in s",
        ("parts", "FPY", "final", "p50", "p95", "takt"),
    )
    oee = _table(
        f"Shift {when}: OEE and interventions",
        "OEE = avail x perf x FPY; MTTA, MTTR in min",
        ("avail", "perf", "OEE", "alerts", "MTTA", "MTTR"),
    )
    for st in report.stations:
        output.add_row(
            st.station_id,
            str(st.parts),
            _pct(st.first_pass_yield),
            _pct(st.final_yield),
            _s(st.cycle_p50_s),
            _s(st.cycle_p95_s),
            _s(st.takt_s),
        )
        oee.add_row(
            st.station_id,
            _pct(st.availability),
            _pct(st.performance),
            _pct(st.oee),
            str(st.alerts),
            _min(st.mtta_s),
            _min(st.mttr_s),
        )
    console.print(output)
    console.print(oee)
    pareto = Table(title="NOK Pareto", padding=(0, 1))
    for c in ("station", "error", "code", "jobs"):
        pareto.add_column(c, justify="right" if c in ("code", "jobs") else "left")
    for st in report.stations:
        for code, name, n in st.nok_pareto:
            pareto.add_row(st.station_id, name, str(code), str(n))
    if pareto.row_count:
        console.print(pareto)
