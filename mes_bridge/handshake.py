"""The PLC handshake of one station as a pure state machine (no I/O, no asyncio).

The machine is fed what the PLC shows (``observe`` for one changed tag, ``resync`` for a
full read after a (re)connect) and what the cell decides (``accept``, ``publish``). It
answers with jobs to hand to the cell, ordered tag writes for the PLC, and notices that
make every irregularity visible (a gap, a repeat, a counter reset, a superseded job).

Contracts:

* A JobSeq produces at most one job per counter epoch, and a JobSeq at or below the last
  one seen never produces a job unless the counter went backwards, which is reported as a
  counter reset (the cell starts a new epoch; the next job has ``counter_reset=True``).
* JobSeq 0 never denotes a job: PLC sequence counters start at 0 and the first job is 1.
* A full read after a (re)connect is classified as idle, a new job pending, an
  acknowledged but unanswered job (handed to the cell with ``resumed=True`` unless this
  machine already has it in hand), or a result awaiting the PLC's acknowledgement.
* What the cell committed (``accept``/``publish``) stays committed across a connection
  loss: if the full read does not show it, ``resync`` returns the writes again.
* ``ResultSeq`` is always written after Result, ErrorCode and CycleTimeMs.
* A step whose writes the PLC refused (not lost: refused) is taken back with ``revert``,
  so the cell can try it again; a lost connection never takes a step back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mes_bridge.errors import HandshakeError, JobNotCurrent
from mes_bridge.handshake_steps import accept_step, result_steps
from mes_bridge.handshake_types import (
    Classification,
    Mark,
    Notice,
    NoticeKind,
    Outcome,
    Phase,
    SeenTags,
    WriteStep,
)
from mes_bridge.jobs import PlcJob, PlcResult, check_job_input, clip, is_seq
from mes_bridge.tags import Tag


@dataclass
class StationHandshake:
    """The handshake state of one station. One owner feeds it; call ``resync`` first.

    ``last_job_seq`` may be given from the production record so that a counter reset or a
    gap that happened while nothing was connected is still seen.
    """

    station_id: str
    last_job_seq: int | None = None  # last JobSeq seen in this epoch
    current: PlcJob | None = None  # the job in the handshake (or the last one finished)
    result: PlcResult | None = None  # the result published for ``current``
    epoch: int = 0  # counter resets seen by this machine
    seen: SeenTags = field(default_factory=SeenTags)
    _phase: Phase = Phase.UNSYNCED
    _held: Phase | None = None  # the phase we were in when the connection was lost
    _produced: int | None = None  # last JobSeq produced as a job in this epoch
    _acked_job: PlcJob | None = None  # last job whose result the PLC acknowledged
    _reset_pending: bool = False

    @property
    def phase(self) -> Phase:
        return self._phase

    # ----------------------------------------------------------------- PLC side

    def observe(self, tag: Tag, value: object) -> Outcome:
        """One PLC->cell tag changed to ``value``; JobSeq decides only once synced."""
        if tag is Tag.PART_ID:
            self.seen.part_id = value
        elif tag is Tag.PROGRAM_NO:
            self.seen.program_no = value
        elif tag is Tag.RESULT_ACK_SEQ:
            self.seen.result_ack_seq = value if is_seq(value) else None
            if self._phase is Phase.PUBLISHED and self._acked():
                self._phase = Phase.IDLE
                self._acked_job = self.current
        elif tag is Tag.JOB_SEQ:
            if self._phase is Phase.UNSYNCED:
                self.seen.job_seq = value if is_seq(value) else None
            elif not is_seq(value):
                return Outcome(notices=(self._notice(NoticeKind.UNREADABLE, None, clip(value)),))
            else:
                return self._job_seq_changed(value)
        return Outcome()

    def resync(self, values: Mapping[Tag, object]) -> Outcome:
        """Classify a full read of the handshake tags taken after a (re)connect."""

        def seq(tag: Tag) -> int | None:
            v = values.get(tag)
            return v if is_seq(v) else None

        held = self._held if self._phase is Phase.UNSYNCED else self._phase
        self._held = None
        s = self.seen
        s.part_id, s.program_no = values.get(Tag.PART_ID), values.get(Tag.PROGRAM_NO)
        s.result_ack_seq, s.job_ack_seq = seq(Tag.RESULT_ACK_SEQ), seq(Tag.JOB_ACK_SEQ)
        s.result_seq, s.job_seq = seq(Tag.RESULT_SEQ), seq(Tag.JOB_SEQ)
        j = s.job_seq
        if j is None:
            self._phase, self._held = Phase.UNSYNCED, held
            return Outcome(
                notices=(self._notice(NoticeKind.UNREADABLE, None, clip(values.get(Tag.JOB_SEQ))),),
                classification=Classification.UNREADABLE,
            )
        notices: list[Notice] = []
        if self.last_job_seq is not None and j < self.last_job_seq:
            notices.append(self._counter_reset(j))
        if self._acked():
            self._acked_job = self.current  # acknowledged while we were away
        known = self.current is not None and self.current.job_seq == j
        if j == 0:
            self._phase, self.last_job_seq = Phase.IDLE, 0
            return Outcome(notices=tuple(notices), classification=Classification.IDLE)
        if s.job_ack_seq != j:
            out = self._resync_pending(j, known, held, notices)
            cls = Classification.NEW_JOB
        elif s.result_seq != j:
            out = self._resync_unanswered(j, known, held, notices)
            cls = Classification.RESUMED
        else:
            if not known:
                self.current, self.result = None, None
            self._phase = Phase.IDLE if s.result_ack_seq == j else Phase.PUBLISHED
            if self._phase is Phase.IDLE and known:
                self._acked_job = self.current
            self.last_job_seq = j
            out = Outcome(notices=tuple(notices))
            cls = Classification.IDLE if self._phase is Phase.IDLE else Classification.AWAITING_ACK
        return Outcome(jobs=out.jobs, writes=out.writes, notices=out.notices, classification=cls)

    def connection_lost(self) -> None:
        """Forget that the PLC's view is known; decisions wait for the next ``resync``."""
        if self._phase is not Phase.UNSYNCED:
            self._held = self._phase
            self._phase = Phase.UNSYNCED

    # ----------------------------------------------------------------- cell side

    def accept(self, job: PlcJob) -> tuple[WriteStep, ...]:
        """The cell takes the job: JobAckSeq = JobSeq, Busy = True. Idempotent."""
        self._check_current(job, "accept")
        phase = self._effective()
        if phase not in (Phase.OFFERED, Phase.ACCEPTED):
            raise HandshakeError(
                f"station {self.station_id}: cannot accept job {job.job_seq} "
                f"once it is {phase.value}"
            )
        self._set_phase(Phase.ACCEPTED)
        self.seen.job_ack_seq = job.job_seq
        return (accept_step(job.job_seq),)

    def publish(self, job: PlcJob, result: PlcResult) -> tuple[WriteStep, ...]:
        """The result: Result, ErrorCode, CycleTimeMs; then ResultSeq = JobSeq, Busy = False.

        A job not yet accepted is accepted first. Publishing the same result again is a
        harmless retry; a different result for an already published job is refused.
        """
        self._check_current(job, "publish a result for")
        phase = self._effective()
        if self.result is not None and self.result != result:
            raise HandshakeError(
                f"station {self.station_id}: job {job.job_seq} already has result "
                f"{self.result}; refusing to replace it with {result}"
            )
        if phase is Phase.IDLE and self.result is None:
            raise HandshakeError(
                f"station {self.station_id}: job {job.job_seq} was already "
                "answered and acknowledged at the PLC"
            )
        steps: list[WriteStep] = []
        if phase is Phase.OFFERED:
            steps.append(accept_step(job.job_seq))
        elif phase not in (Phase.ACCEPTED, Phase.PUBLISHED, Phase.IDLE):
            raise HandshakeError(
                f"station {self.station_id}: cannot publish job "
                f"{job.job_seq} once it is {phase.value}"
            )
        self.result = result
        self.seen.job_ack_seq = self.seen.result_seq = job.job_seq
        if self._acked():
            self._acked_job = job
            self._set_phase(Phase.IDLE)
        else:
            self._set_phase(Phase.PUBLISHED)
        steps.extend(result_steps(job.job_seq, result))
        return tuple(steps)

    def result_acked(self, job: PlcJob) -> bool:
        """True once the PLC echoed ResultAckSeq for this job's published result.

        Stays true after the PLC has moved on to its next job.
        """
        return self._acked_job is not None and self._acked_job == job

    def is_current(self, job: PlcJob) -> bool:
        return self.current == job

    def mark(self) -> Mark:
        """The parts of the state a cell step changes, to take the step back later."""
        s = self.seen
        return Mark(
            self.current,
            self.result,
            self._phase,
            self._held,
            self._acked_job,
            s.job_ack_seq,
            s.result_seq,
        )

    def revert(self, before: Mark, after: Mark) -> bool:
        """Take back the step that moved the machine from ``before`` to ``after``.

        Only if nothing else changed it since (``mark() == after``): a step overtaken by
        a new job, a counter reset or a lost connection is not undone. Returns whether it
        was taken back.
        """
        if self.mark() != after:
            return False
        self.current, self.result = before.current, before.result
        self._phase, self._held, self._acked_job = before.phase, before.held, before.acked_job
        self.seen.job_ack_seq, self.seen.result_seq = before.job_ack_seq, before.result_seq
        return True

    # ----------------------------------------------------------------- internals

    def _job_seq_changed(self, j: int) -> Outcome:
        self.seen.job_seq = j
        if self.last_job_seq is not None and j == self.last_job_seq:
            return Outcome(
                notices=(
                    self._notice(NoticeKind.REPEAT, j, "JobSeq presented again; no second job"),
                )
            )
        notices: list[Notice] = []
        if self.last_job_seq is not None and j < self.last_job_seq:
            notices.append(self._counter_reset(j))
        if j == 0:
            self.last_job_seq, self._phase = 0, Phase.IDLE
            return Outcome(notices=tuple(notices))
        return self._produce(j, notices, resumed=False, prior=self._phase)

    def _resync_pending(
        self, j: int, known: bool, held: Phase | None, notices: list[Notice]
    ) -> Outcome:
        """(b) JobSeq != JobAckSeq: a job is waiting for our acknowledgement."""
        if self.seen.result_seq == j:
            notices.append(
                self._notice(
                    NoticeKind.INCONSISTENT,
                    j,
                    "ResultSeq equals JobSeq but JobAckSeq does not; handled as a pending job",
                )
            )
        if known and held in (Phase.ACCEPTED, Phase.PUBLISHED):
            self._phase = held
            steps = [accept_step(j)]
            self.seen.job_ack_seq = j
            if held is Phase.PUBLISHED and self.result is not None:
                steps.extend(result_steps(j, self.result))
                self.seen.result_seq = j
            notices.append(
                self._notice(
                    NoticeKind.REWRITTEN, j, "the PLC did not show our JobAckSeq; writing it again"
                )
            )
            return Outcome(writes=tuple(steps), notices=tuple(notices))
        if known:
            self._phase = Phase.OFFERED  # the cell already has it: never produce it twice
            return Outcome(notices=tuple(notices))
        return self._produce(j, notices, resumed=False, prior=held)

    def _resync_unanswered(
        self, j: int, known: bool, held: Phase | None, notices: list[Notice]
    ) -> Outcome:
        """(c) JobAckSeq == JobSeq != ResultSeq: acknowledged, no result on the PLC."""
        if known and self.result is not None:
            self._phase = Phase.PUBLISHED
            self.seen.result_seq = j
            notices.append(
                self._notice(
                    NoticeKind.REWRITTEN,
                    j,
                    "the PLC did not show our ResultSeq; writing the result again",
                )
            )
            return Outcome(writes=result_steps(j, self.result), notices=tuple(notices))
        if known:
            self._phase = Phase.ACCEPTED  # the cell holds this job and will answer it
            return Outcome(notices=tuple(notices))
        notices.append(
            self._notice(
                NoticeKind.RESUMED,
                j,
                "the PLC shows this job acknowledged but unanswered; handed to the cell as resumed",
            )
        )
        return self._produce(j, notices, resumed=True, prior=held)

    def _produce(
        self, j: int, notices: list[Notice], *, resumed: bool, prior: Phase | None
    ) -> Outcome:
        last = self.last_job_seq
        skipped = j - last - 1 if last is not None and j > last + 1 else 0
        if skipped:
            notices.append(
                self._notice(
                    NoticeKind.GAP,
                    j,
                    f"JobSeq jumped from {last} to {j}: {skipped} job(s) never seen",
                )
            )
        if self.current is not None and prior in (Phase.OFFERED, Phase.ACCEPTED):
            notices.append(
                self._notice(
                    NoticeKind.SUPERSEDED,
                    self.current.job_seq,
                    f"JobSeq moved to {j} while job {self.current.job_seq} was "
                    f"{prior.value}; that job is no longer current",
                )
            )
        part, program, problems = check_job_input(self.seen.part_id, self.seen.program_no)
        job = PlcJob(
            station_id=self.station_id,
            job_seq=j,
            part_id=part,
            program_no=program,
            resumed=resumed,
            counter_reset=self._reset_pending,
            raw_part_id=clip(self.seen.part_id),
            raw_program_no=clip(self.seen.program_no),
            problems=problems,
            skipped=skipped,
        )
        self._reset_pending = False
        self.current, self.result = job, None
        self.last_job_seq = self._produced = j
        self._phase = Phase.ACCEPTED if resumed else Phase.OFFERED
        return Outcome(jobs=(job,), notices=tuple(notices))

    def _counter_reset(self, j: int) -> Notice:
        notice = self._notice(
            NoticeKind.COUNTER_RESET,
            j,
            f"JobSeq went back from {self.last_job_seq} to {j}; a new counter epoch starts",
        )
        # The PLC forgot its jobs: the cell's copy of an open job is no longer current.
        self.current = self.result = None
        self.epoch += 1
        self.last_job_seq = self._produced = None
        self._reset_pending = True
        return notice

    def _effective(self) -> Phase:
        return (self._held or Phase.IDLE) if self._phase is Phase.UNSYNCED else self._phase

    def _set_phase(self, phase: Phase) -> None:
        if self._phase is Phase.UNSYNCED:
            self._held = phase  # applied (and written if needed) at the next resync
        else:
            self._phase = phase

    def _acked(self) -> bool:
        """The PLC echoed ResultAckSeq for the result we published for ``current``."""
        return (
            self.current is not None
            and self.result is not None
            and self.seen.result_ack_seq == self.current.job_seq
        )

    def _check_current(self, job: PlcJob, action: str) -> None:
        if job.station_id != self.station_id:
            raise HandshakeError(
                f"job for station {job.station_id} given to station {self.station_id}"
            )
        if self.current != job:
            now = "none" if self.current is None else f"job {self.current.job_seq}"
            raise JobNotCurrent(
                f"station {self.station_id}: cannot {action} job {job.job_seq}: the PLC's "
                f"current job is {now} (JobSeq {self.seen.job_seq}, epoch {self.epoch})"
            )

    def _notice(self, kind: NoticeKind, job_seq: int | None, detail: str) -> Notice:
        return Notice(self.station_id, kind, job_seq, detail)
