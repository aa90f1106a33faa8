"""Production analytics over the record: yield, Pareto, SPC, cycle time, OEE, policy
comparison, part genealogy and the shift report. Each query returns typed rows and reads
rollups for whole buckets and raw rows only for a window's ragged edges."""

from cell.insight.cycle import CycleDistribution, cycle_distribution
from cell.insight.genealogy import PartHistory, part_history
from cell.insight.oee import OeeRow, availability, oee_by_shift, state_seconds
from cell.insight.pareto import (
    ParetoRow,
    PositionParetoRow,
    error_name,
    fastener_pareto,
    nok_pareto,
)
from cell.insight.report import ShiftReport, StationShift, shift_report
from cell.insight.spc import (
    ControlChart,
    PositionSpc,
    control_chart,
    nelson_violations,
    spc_summary,
)
from cell.insight.window import QueryError, Window
from cell.insight.yields import (
    GROUP_KEYS,
    PolicyComparison,
    YieldRow,
    compare_policies,
    two_proportions,
    yield_by,
)

__all__ = [
    "GROUP_KEYS",
    "ControlChart",
    "CycleDistribution",
    "OeeRow",
    "ParetoRow",
    "PartHistory",
    "PolicyComparison",
    "PositionParetoRow",
    "PositionSpc",
    "QueryError",
    "ShiftReport",
    "StationShift",
    "Window",
    "YieldRow",
    "availability",
    "compare_policies",
    "control_chart",
    "cycle_distribution",
    "error_name",
    "fastener_pareto",
    "nelson_violations",
    "nok_pareto",
    "oee_by_shift",
    "part_history",
    "shift_report",
    "spc_summary",
    "state_seconds",
    "two_proportions",
    "yield_by",
]
