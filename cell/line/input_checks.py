"""Why a station refuses a PLC job before any robot works on it.

The bridge reports what it saw of the PLC's values (``mes_bridge.jobs.InputProblem``: a
PartId that is not text or empty, an unusable ProgramNo); the station adds the line's part
id policy and its recipes. Each refusal is an error code and a sentence for the record.
"""

from __future__ import annotations

from cell.config import PartIdPolicy, Recipe, Station
from mes_bridge.jobs import InputProblem, PlcJob
from robot.jobs import ErrorCode

Refusal = tuple[ErrorCode, str]


def part_id_problem(job: PlcJob, policy: PartIdPolicy) -> Refusal | None:
    """Why the station refuses the job's PartId: what the bridge saw (not text, empty),
    else the line's part id policy; None when the part id is taken."""
    if InputProblem.PART_ID_EMPTY in job.problems:
        return ErrorCode.EMPTY_PART_ID, "PLC sent an empty PartId"
    if InputProblem.PART_ID_NOT_TEXT in job.problems:
        return (
            ErrorCode.INVALID_PART_ID,
            f"PLC sent a PartId that is not text: {job.raw_part_id}",
        )
    why = policy.refusal(job.part_id)
    if why is not None:
        return (
            ErrorCode.INVALID_PART_ID,
            f"PLC sent an unusable PartId ({why}): {job.raw_part_id!r}",
        )
    return None


def program_problem(job: PlcJob, recipe: Recipe | None, station: Station) -> Refusal | None:
    """Why the station refuses the job's ProgramNo: unusable, or no recipe for it here."""
    if any(p.value.startswith("program_no") for p in job.problems):
        return (
            ErrorCode.UNKNOWN_PROGRAM,
            f"PLC sent an unusable ProgramNo: {job.raw_program_no!r}",
        )
    if recipe is None:
        known = ", ".join(str(r.program_no) for r in station.recipes)
        return (
            ErrorCode.UNKNOWN_PROGRAM,
            f"ProgramNo {job.program_no} has no recipe at {station.id} (known: {known})",
        )
    return None
