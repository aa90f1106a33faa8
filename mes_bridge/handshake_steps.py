"""The cell's tag writes for each handshake step, in the order the protocol requires.

Accepting a job is one write request: JobAckSeq = JobSeq with Busy = True. Publishing a
result is two, sent one after the other: Result, ErrorCode and CycleTimeMs first, then
ResultSeq = JobSeq with Busy = False, so the PLC never sees ResultSeq move before the
values it latches. The state machine (``mes_bridge.handshake``) decides when a step is
due; this module owns only what each step writes.
"""

from __future__ import annotations

from mes_bridge.handshake_types import WriteStep
from mes_bridge.jobs import PlcResult
from mes_bridge.tags import Tag


def accept_step(j: int) -> WriteStep:
    """The cell takes job ``j``: JobAckSeq = ``j``, Busy = True, in one request."""
    return ((Tag.JOB_ACK_SEQ, j), (Tag.BUSY, True))


def result_steps(j: int, r: PlcResult) -> tuple[WriteStep, ...]:
    """Job ``j``'s result ``r`` as two requests: the values, then ResultSeq and Busy."""
    return (
        (
            (Tag.RESULT, r.result),
            (Tag.ERROR_CODE, r.error_code),
            (Tag.CYCLE_TIME_MS, r.cycle_time_ms),
        ),
        ((Tag.RESULT_SEQ, j), (Tag.BUSY, False)),
    )
