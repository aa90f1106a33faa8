"""What the bridge hands to the cell (``PlcJob``) and takes back (``PlcResult``).

Values read from the PLC are checked here without ever raising: a job with an unusable
PartId or ProgramNo still becomes a ``PlcJob``, with the problems named and the raw value
kept (as text, truncated), so the cell can end it NOK with a named error code.

The bridge reports what it saw and passes a PartId on verbatim: which codes a station
takes (their length, separators such as GS1's GS) is the line's policy, applied by the
cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

RAW_KEEP = 80  # characters of a raw PLC value kept for error messages
PROGRAM_NO_MIN, PROGRAM_NO_MAX = 1, 32767
UINT32_MAX = 0xFFFFFFFF
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RESULT_OK, RESULT_NOK = 1, 2


class InputProblem(StrEnum):
    """Why a value the PLC gave for a job cannot be used as is."""

    PART_ID_NOT_TEXT = "part_id_not_text"
    PART_ID_EMPTY = "part_id_empty"
    PROGRAM_NO_NOT_INT = "program_no_not_int"
    PROGRAM_NO_OUT_OF_RANGE = "program_no_out_of_range"


@dataclass(frozen=True)
class PlcJob:
    """A job the PLC requested, as the cell receives it.

    ``part_id``/``program_no`` are usable values only when ``problems`` is empty; otherwise
    the unusable one is ``""``/``0`` and ``raw_part_id``/``raw_program_no`` hold what the PLC
    really had so the cell can end the job NOK with a named error. A usable ``part_id`` is
    the PLC's text as it was, less its padding: any length, any characters.
    """

    station_id: str
    job_seq: int
    part_id: str
    program_no: int
    resumed: bool = False  # at a resync the PLC showed this JobSeq acknowledged, unanswered
    counter_reset: bool = False  # JobSeq went backwards before this job: new counter epoch
    raw_part_id: str = ""
    raw_program_no: str = ""
    problems: tuple[InputProblem, ...] = ()
    skipped: int = 0  # JobSeq values jumped over just before this one (a gap)

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PlcResult:
    """The cell's answer to a job. Raises ``ValueError`` for values the tags cannot hold."""

    result: int  # 1 OK, 2 NOK
    error_code: int = 0
    cycle_time_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("result", "error_code", "cycle_time_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.result not in (RESULT_OK, RESULT_NOK):
            raise ValueError(f"result must be 1 (OK) or 2 (NOK), got {self.result!r}")
        if not INT32_MIN <= self.error_code <= INT32_MAX:
            raise ValueError(f"error_code {self.error_code} does not fit the Int32 tag")
        if not 0 <= self.cycle_time_ms <= UINT32_MAX:
            raise ValueError(f"cycle_time_ms {self.cycle_time_ms} does not fit the UInt32 tag")


def clip(value: object) -> str:
    """``value`` as text (``repr`` unless a str), cut to ``RAW_KEEP`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"...({len(text)} chars)"


def check_job_input(
    part_id: object, program_no: object
) -> tuple[str, int, tuple[InputProblem, ...]]:
    """Check PartId and ProgramNo as read from the PLC; never raises.

    Surrounding spaces, tabs, line ends and NULs are stripped from PartId (fixed-length
    PLC strings pad with them); what is left is kept as it is, GS separators and non-ASCII
    characters included. Returns the usable values (``""``/``0`` where unusable) and the
    problems.
    """
    problems: list[InputProblem] = []
    part = ""
    if not isinstance(part_id, str):
        problems.append(InputProblem.PART_ID_NOT_TEXT)
    else:
        part = part_id.strip(" \t\r\n\x00")
        if not part:
            problems.append(InputProblem.PART_ID_EMPTY)
    program = 0
    if not isinstance(program_no, int) or isinstance(program_no, bool):
        problems.append(InputProblem.PROGRAM_NO_NOT_INT)
    elif not PROGRAM_NO_MIN <= program_no <= PROGRAM_NO_MAX:
        problems.append(InputProblem.PROGRAM_NO_OUT_OF_RANGE)
    else:
        program = program_no
    return part, program, tuple(problems)


def is_seq(value: object) -> TypeGuard[int]:
    """True for a value a UInt32 sequence tag can hold (bools are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT32_MAX
