"""The handshake's vocabulary: write steps, phases, notices and what one input yields,
the tag values the machine has seen and the marks that let a step be taken back.

Shared by the state machine (``mes_bridge.handshake``) and everything that drives it or
reports on it (session, channel, link), which need these names but not the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mes_bridge.jobs import PlcJob, PlcResult
from mes_bridge.tags import Tag

# One write request: (tag, value) pairs in order. Handshake steps come as a tuple of these,
# to be sent one request after the other, each only once the previous one succeeded.
WriteStep = tuple[tuple[Tag, object], ...]


class NoticeKind(StrEnum):
    GAP = "gap"  # JobSeq jumped over values: jobs requested that the cell never saw
    REPEAT = "repeat"  # a JobSeq already seen was presented again: no second job
    COUNTER_RESET = "counter_reset"  # JobSeq went backwards (PLC cold restart)
    SUPERSEDED = "superseded"  # a new JobSeq arrived while a job was still unanswered
    RESUMED = "resumed"  # a resync showed a job acknowledged but unanswered
    REWRITTEN = "rewritten"  # committed writes the PLC did not show were written again
    INCONSISTENT = "inconsistent"  # the tags contradict the handshake
    UNREADABLE = "unreadable"  # JobSeq had no usable value
    WRITE_REFUSED = "write_refused"  # the PLC refused a handshake or status write
    PLC_HEARTBEAT_STALE = "plc_heartbeat_stale"  # HeartbeatPLC stopped changing
    PLC_HEARTBEAT_RESUMED = "plc_heartbeat_resumed"  # ... and changes again


class Classification(StrEnum):
    """What a full read after a (re)connect showed, cases (a) to (d)."""

    IDLE = "idle"
    NEW_JOB = "new_job"
    RESUMED = "resumed"
    AWAITING_ACK = "awaiting_ack"
    UNREADABLE = "unreadable"


class Phase(StrEnum):
    UNSYNCED = "unsynced"  # no full read since the last (re)connect: nothing is decided
    IDLE = "idle"
    OFFERED = "offered"  # job handed to the cell, not accepted yet
    ACCEPTED = "accepted"
    PUBLISHED = "published"  # ResultSeq written, waiting for ResultAckSeq


@dataclass(frozen=True)
class Notice:
    station_id: str
    kind: NoticeKind
    job_seq: int | None
    detail: str


@dataclass(frozen=True)
class Outcome:
    """What the machine asks of its owner after one input."""

    jobs: tuple[PlcJob, ...] = ()
    writes: tuple[WriteStep, ...] = ()
    notices: tuple[Notice, ...] = ()
    classification: Classification | None = None  # set by ``resync`` only


@dataclass(frozen=True)
class Mark:
    """A snapshot taken by ``StationHandshake.mark``; compared and restored, nothing else."""

    current: PlcJob | None
    result: PlcResult | None
    phase: Phase
    held: Phase | None
    acked_job: PlcJob | None
    job_ack_seq: int | None
    result_seq: int | None


@dataclass
class SeenTags:
    """Handshake tag values as last seen on (or written to) the PLC; None: unknown."""

    job_seq: int | None = None
    part_id: object = None
    program_no: object = None
    result_ack_seq: int | None = None
    job_ack_seq: int | None = None
    result_seq: int | None = None
