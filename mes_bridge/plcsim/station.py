"""What the PLC simulator is told (``SimStation``) and what it reports (latched results,
timings, counts), plus the per-station state its PLC program keeps."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from asyncua import ua
from pydantic import BaseModel, ConfigDict, Field

from mes_bridge.jobs import RESULT_NOK, RESULT_OK
from mes_bridge.tags import Tag, TagMap
from mes_bridge.wakeup import Signal

PLCSIM_NAMESPACE = "urn:intern-cells:plcsim"
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:48400/intern-cells/plc"


def default_tag_map(prefix: str) -> TagMap:
    """The simulator's own layout: ``s=<prefix>.<Tag>`` in the simulator's namespace."""
    return TagMap(namespace_uri=PLCSIM_NAMESPACE, prefix=prefix)


class SimStation(BaseModel):
    """How the simulator plays one station.

    A station with no ``upstream`` is where castings enter the line: each of its parts is
    new, named ``<part_prefix>-<run>-<serial>``. A station with an ``upstream`` takes the
    parts that left that station, in the order they left it, each once it has left: a
    casting goes from station to station under one id. Every part leaves a station when
    its job ends, OK or NOK (this PLC has no reject lane), or when a cold restart made
    the PLC forget the job. At most ``buffer`` parts wait for the next station; while that
    many wait, a station takes no new part, as a full conveyor blocks a real line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: TagMap
    takt_s: float = Field(default=0.0, ge=0, description="0: next part once the last is acked")
    jitter_s: float = Field(default=0.0, ge=0, description="random extra delay before a part")
    program_nos: tuple[int, ...] = Field(default=(1,), min_length=1)
    parts: int | None = Field(default=None, ge=0, description="stop after this many; None: run")
    part_prefix: str = Field(default="DC1", pattern=r"^[A-Z0-9]{1,8}$")
    upstream: str | None = Field(
        default=None, description="the station whose parts come here next; None: new parts"
    )
    buffer: int = Field(
        default=10,
        ge=1,
        description="parts that may wait between this station and the next; with that many "
        "waiting, this station takes no new part (the line is blocked)",
    )
    omit: frozenset[Tag] = frozenset()  # tags given no node (to test connect-time checks)
    type_overrides: dict[Tag, str] = Field(default_factory=dict)  # tag -> other VariantType
    heartbeat: bool = True  # False: HeartbeatPLC stands still (a stopped PLC program)
    raw_hold_s: float = Field(
        default=0.5,
        ge=0,
        description="how long an injected raw JobSeq/ResultAckSeq stays before the real value",
    )


@dataclass(frozen=True)
class LatchedResult:
    """A result the PLC latched. ``part_id``/``program_no`` are what the PLC program
    meant to send (a raw injected value is not reflected); ``plc_epoch`` counts the cold
    restarts before the job (not part of equality)."""

    job_seq: int
    part_id: str
    program_no: int
    result: int
    error_code: int
    cycle_time_ms: int
    plc_epoch: int = field(default=0, compare=False)


@dataclass
class JobTiming:
    """``time.perf_counter()`` stamps taken at the PLC side for one job."""

    job_seq: int
    t_job: float  # JobSeq written
    t_ack: float | None = None  # JobAckSeq == JobSeq seen
    t_result: float | None = None  # ResultSeq == JobSeq seen


@dataclass(frozen=True)
class SimCounts:
    requested: int
    ok: int
    nok: int


@dataclass(frozen=True)
class Injection:
    """Values for one coming part. ``part_id`` renames the part from this station on (a
    code as the plant's scanner read it: the next stations get the part under it too).
    ``raw`` holds values of any type, as a faulty PLC program writes them, at this
    station only: for PartId/ProgramNo they replace the part's value; for JobSeq and
    ResultAckSeq they are written and held ``SimStation.raw_hold_s`` before the real
    value."""

    part_id: str | None = None
    program_no: int | None = None
    raw: Mapping[Tag, ua.Variant] = field(default_factory=dict)


@dataclass
class StationState:
    """One station as the simulated PLC program holds it: memory, nodes, history."""

    sid: str
    cfg: SimStation
    mem: dict[Tag, object]
    vtypes: dict[Tag, ua.VariantType]
    keep: int | None
    nodes: dict[Tag, ua.NodeId] = field(default_factory=dict)
    completed: deque[LatchedResult] = field(init=False)
    timings: dict[int, JobTiming] = field(default_factory=dict)
    injected: list[Injection] = field(default_factory=list)
    written_at: dict[Tag, float] = field(default_factory=dict)  # last client write, perf_counter
    requested: int = 0
    ok: int = 0
    nok: int = 0
    epoch: int = 0  # bumped by a cold restart: the open job is abandoned
    abandons: int = 0  # bumped when the PLC program gives its open job up for the next part
    abandoned: list[int] = field(default_factory=list)  # JobSeqs given up that way
    changed: Signal = field(default_factory=Signal)
    leaving: deque[str] = field(default_factory=deque)  # parts out, not yet at the next station
    left: Signal = field(default_factory=Signal)  # fired when ``leaving`` changes

    def __post_init__(self) -> None:
        self.completed = deque(maxlen=self.keep)

    def latch(self, result: LatchedResult) -> None:
        """Record a result the PLC latched, keeping at most ``keep`` of history."""
        self.completed.append(result)
        self.ok += result.result == RESULT_OK
        self.nok += result.result == RESULT_NOK
        if self.keep is not None:
            while len(self.timings) > self.keep:  # dicts keep insertion order: oldest first
                del self.timings[next(iter(self.timings))]
