"""Which policy version a station's job runs: a running rollout's arm, else the
station's promoted version; and, once the job is on record, the rollout's bookkeeping.

``route`` reads the station's running rollout and promoted version per job (two small
queries). With a rollout running, the job's arm is ``arm_for(job key of attempt 1,
share)``: a retry or a job re-attached after a restart keeps its arm. The candidate arm
names the candidate version; the incumbent arm names the incumbent version, or None
(the worker's default) while the station has no promoted version, since then the
incumbent is whatever its worker runs by default. With the database unreachable there
is no rollout: the job runs the last promoted version this process read.

``settle`` runs in a thread of its own after the job is recorded, so the PLC's answer
never waits for it: it records the job's arm (``rollouts.record_arm``) and asks the rule
(``rollouts.decide``); a promotion makes the candidate the station's version from the
next job on. Its failures are logged and never fail the job; a job recorded to the
local outbox is left out of the rollout (its row does not exist yet).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cell.record import rollouts
from cell.record.jobs import JobRecord
from cell.record.rollout_rule import Arm, Decision, arm_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """A job's policy version (None: the worker's default) and, in a rollout, its arm."""

    version: str | None
    rollout_id: int | None = None
    arm: Arm | None = None


class StationRouting:
    """Routes one station's jobs; ``online`` says whether the record is reachable."""

    def __init__(
        self, sessions: sessionmaker[Session], station_id: str, online: Callable[[], bool]
    ) -> None:
        self.sessions, self.station_id, self.online = sessions, station_id, online
        self.promoted: str | None = None  # last read, used while the database is down

    def route(self, job_key: str) -> Route:
        """The route of the job whose first attempt has ``job_key`` (blocking: call it
        in a thread)."""
        if not self.online():
            return Route(self.promoted)
        try:
            with self.sessions() as s:
                rollout = rollouts.running(s, self.station_id)
                self.promoted = rollouts.station_version(s, self.station_id)
                if rollout is None:
                    return Route(self.promoted)
                arm = arm_for(job_key, rollout.share)
                rollout_id = rollout.id
                candidate, incumbent = rollout.candidate_version, rollout.incumbent_version
        except SQLAlchemyError as exc:
            log.warning("station %s: no rollout read (%s); job %s", self.station_id, exc, job_key)
            return Route(self.promoted)
        if arm is Arm.CANDIDATE:
            return Route(candidate, rollout_id, arm)
        return Route(None if self.promoted is None else incumbent, rollout_id, arm)

    def settle_later(self, route: Route, rec: JobRecord, where: str) -> None:
        """Record the arm of a job of a rollout and ask the rule, in a daemon thread."""
        if route.rollout_id is None or route.arm is None:
            return
        if where != "db":
            log.info("station %s: job %s is in the outbox, not in the rollout", *_key(rec))
            return
        threading.Thread(
            target=self.settle, args=(route, rec), name=f"rollout-{rec.station_id}", daemon=True
        ).start()

    def settle(self, route: Route, rec: JobRecord) -> None:
        """``record_arm`` then ``decide`` for a recorded job; failures are logged."""
        assert route.rollout_id is not None and route.arm is not None
        try:
            with self.sessions() as s:
                job_id = rollouts.job_id(s, rec.station_id, rec.epoch, rec.job_seq)
                if job_id is None:
                    log.warning("station %s: job %s not found for its rollout", *_key(rec))
                    return
                rollouts.record_arm(s, route.rollout_id, job_id, route.arm)
                verdict = rollouts.decide(s, route.rollout_id)
        except Exception:  # bookkeeping after the fact: the job itself is on record
            log.exception("station %s: rollout %s not updated", rec.station_id, route.rollout_id)
            return
        if verdict is not None and verdict.decision is not Decision.CONTINUE:
            log.info(
                "station %s: rollout %s decided %s: %s",
                rec.station_id,
                route.rollout_id,
                verdict.decision.value,
                verdict.reason,
            )


def _key(rec: JobRecord) -> tuple[str, str]:
    return rec.station_id, f"{rec.station_id}:{rec.epoch}:{rec.job_seq}"
