"""A PLC job on its way to the record: what is known before the robot answers, and the
one way each kind of ending becomes a ``JobRecord``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from cell.record.jobs import AttemptEpisode, JobRecord
from robot.jobs import ErrorCode, JobOutcome, Outcome


@dataclass(frozen=True)
class JobDraft:
    """A job's key (station, counter epoch, JobSeq), its part and program, and when the
    cell started on it."""

    station_id: str
    epoch: int
    job_seq: int
    part_id: str | None
    program_no: int
    started_at: datetime

    @property
    def key(self) -> str:
        """The job key the robot side runs once: ``station:epoch:JobSeq``."""
        return f"{self.station_id}:{self.epoch}:{self.job_seq}"

    def restarted(self, at: datetime) -> JobDraft:
        """The same job, started again at ``at`` (after waiting for a robot)."""
        return replace(self, started_at=at)

    def _fields(self) -> dict[str, object]:
        return {
            "station_id": self.station_id,
            "epoch": self.epoch,
            "job_seq": self.job_seq,
            "part_id": self.part_id,
            "program_no": self.program_no,
            "started_at": self.started_at,
        }

    def nok(self, code: ErrorCode, detail: str, ended_at: datetime) -> JobRecord:
        """A NOK the robot did not work on (bad input, interrupted): cycle time 0."""
        return JobRecord.model_validate(
            self._fields()
            | {
                "ended_at": ended_at,
                "cycle_time_ms": 0,
                "ok": False,
                "error_code": int(code),
                "detail": detail,
            }
        )

    def result(
        self,
        outcome: JobOutcome,
        *,
        task: str,
        recipe_id: int | None,
        attempt: int,
        ended_at: datetime,
        earlier: tuple[JobOutcome, ...] = (),
    ) -> JobRecord:
        """What the robot reported, with the recipe and attempt it ran under; the
        ``earlier`` attempts' episodes are kept beside the last one's."""
        return JobRecord.model_validate(
            self._fields()
            | {
                "ended_at": ended_at,
                "cycle_time_ms": outcome.cycle_time_ms,
                "ok": outcome.outcome is Outcome.OK and outcome.error_code == 0,
                "error_code": outcome.error_code,
                "robot_id": outcome.robot_id,
                "task": task,
                "recipe_id": recipe_id,
                "policy_version": outcome.policy_version,
                "detail": outcome.detail,
                "fasteners": outcome.fasteners,
                "attempt": attempt,
                "episode": outcome.episode,
                "earlier_episodes": [
                    AttemptEpisode(
                        attempt=n,
                        ok=o.outcome is Outcome.OK and o.error_code == 0,
                        policy_version=o.policy_version,
                        episode=o.episode,
                    )
                    for n, o in enumerate(earlier, start=1)
                    if o.episode is not None
                ],
            }
        )
