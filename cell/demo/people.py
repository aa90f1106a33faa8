"""A simulated shift: the people around the line, acting on the cell's clock.

A technician answers alerts after a response time, repairs the part and records the
rework (most are reworked OK, some scrapped), then clears the alert. A supervisor sends a
robot to maintenance mid-shift, covers its station with another robot and brings it back
to the station left without one. Both act through the same functions as the CLI and the
HTTP API, with times on the shift's clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cell.errors import Refused
from cell.line.clock import Clock
from cell.record import models as m
from cell.record.acts import Actor, Acts
from cell.record.alerts import Rework
from cell.record.models import Shift

log = logging.getLogger(__name__)

SIMULATED = "simulated"  # the role the demo's people act in, in the audit log


@dataclass(frozen=True)
class Technician:
    """Response and repair times in simulated seconds (lognormal around the medians)."""

    name: str = "tech-sim"
    response_median_s: float = 90.0
    repair_median_s: float = 240.0
    scrap_share: float = 0.2
    seed: int = 7


@dataclass(frozen=True)
class Move:
    """A supervisor's act at ``at_s`` simulated seconds into the shift."""

    at_s: float
    act: str  # "maintenance" or "assign"
    robot_id: str
    station_id: str | None = None
    reason: str = ""


def standard_moves(hours: float) -> tuple[Move, ...]:
    """On the sample line: R1 to maintenance a third into the shift, R2 covers ST10, R1
    comes back after 30 min to ST20, which R2 left without a robot."""
    t = hours * 3600 / 3
    return (
        Move(t, "maintenance", "R1", reason="gripper inspection"),
        Move(t + 120, "assign", "R2", "ST10", "cover nut installation during R1 maintenance"),
        Move(t + 1800, "assign", "R1", "ST20", "back from maintenance, takes the screwing"),
    )


@dataclass
class People:
    """Runs the technician and the supervisor until cancelled."""

    sessions: sessionmaker[Session]
    clock: Clock
    start: datetime
    technician: Technician = field(default_factory=Technician)
    moves: tuple[Move, ...] = ()
    supervisor: str = "sup-sim"
    handled: set[int] = field(default_factory=set)
    done_moves: list[str] = field(default_factory=list)

    async def run(self) -> None:
        rng = np.random.default_rng(self.technician.seed)
        jobs: list[asyncio.Task[None]] = [asyncio.create_task(self._supervise())]
        try:
            while True:
                for alert_id in await asyncio.to_thread(self._new_alerts):
                    self.handled.add(alert_id)
                    jobs.append(asyncio.create_task(self._handle(alert_id, rng)))
                await asyncio.sleep(0.2)
        finally:
            for j in jobs:
                j.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    def _new_alerts(self) -> list[int]:
        with self.sessions() as s:
            ids = s.scalars(select(m.Alert.id).where(m.Alert.cleared_at.is_(None)))
            return [i for i in ids if i not in self.handled]

    async def _handle(self, alert_id: int, rng: np.random.Generator) -> None:
        t = self.technician
        await self.clock.sleep(t.response_median_s * float(rng.lognormal(0.0, 0.4)))
        await asyncio.to_thread(self._act, "ack", alert_id)
        await self.clock.sleep(t.repair_median_s * float(rng.lognormal(0.0, 0.4)))
        outcome = Rework.SCRAPPED if rng.random() < t.scrap_share else Rework.REWORKED_OK
        await asyncio.to_thread(self._act, "rework", alert_id, outcome)
        await asyncio.to_thread(self._act, "clear", alert_id)

    def _act(self, step: str, alert_id: int, outcome: Rework | None = None) -> None:
        with self.sessions() as s:
            acts = Acts(s, Actor(self.technician.name, SIMULATED))
            at = self.clock.now()
            try:
                if step == "ack":
                    acts.acknowledge(alert_id, at=at)
                elif step == "rework":
                    assert outcome is not None
                    acts.rework(alert_id, outcome, at=at)
                else:
                    acts.clear(alert_id, at=at)
            except Refused as exc:
                log.info("technician: %s", exc)

    async def _supervise(self) -> None:
        for move in sorted(self.moves, key=lambda mv: mv.at_s):
            await self.clock.sleep_until(self.start + timedelta(seconds=move.at_s))
            await asyncio.to_thread(self._move, move)

    def _move(self, move: Move) -> None:
        with self.sessions() as s:
            acts = Acts(s, Actor(self.supervisor, SIMULATED))
            try:
                if move.act == "maintenance":
                    acts.maintenance(move.robot_id, reason=move.reason, at=self.clock.now())
                else:
                    assert move.station_id is not None
                    acts.reassign(
                        move.robot_id, move.station_id, reason=move.reason, at=self.clock.now()
                    )
                self.done_moves.append(f"{move.act} {move.robot_id} {move.station_id or ''}")
            except Refused as exc:
                log.warning("supervisor: %s", exc)


def next_shift_start(session: Session, now: datetime) -> datetime:
    """The start of a simulated shift: this hour, or the end of the last recorded shift."""
    start = now.replace(minute=0, second=0, microsecond=0)
    last = session.scalar(select(Shift.ends_at).order_by(Shift.ends_at.desc()).limit(1))
    return max(start, last) if last is not None else start


def record_shift(session: Session, name: str, start: datetime, hours: float) -> None:
    session.add(Shift(name=name, starts_at=start, ends_at=start + timedelta(hours=hours)))
    session.commit()
