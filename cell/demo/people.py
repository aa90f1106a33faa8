"""A simulated shift: the people around the line, acting on the cell's clock.

A technician answers alerts after a response time, repairs the part and records the
rework (most are reworked OK, some scrapped), then clears the alert. A supervisor sends a
robot to maintenance mid-shift, covers its station with another robot, brings it back to
the station left without one, and sends both home before the shift ends. Both act
through the same functions as the CLI and the HTTP API, with times on the run's clock
(``cell.line.clock``: in the past, never ahead of the wall clock).
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
    act: str  # "maintenance", "assign" (to station_id) or "swap" (with with_robot)
    robot_id: str
    station_id: str | None = None
    reason: str = ""
    with_robot: str | None = None


def standard_moves(hours: float) -> tuple[Move, ...]:
    """On the sample line: R1 to maintenance a third into the shift, R2 covers ST10, R1
    comes back after 30 min to ST20, which R2 left without a robot; 5 min before the end
    R1 and R2 swap back, so the shift leaves the roster as it found it."""
    t = hours * 3600 / 3
    return (
        Move(t, "maintenance", "R1", reason="gripper inspection"),
        Move(t + 120, "assign", "R2", "ST10", "cover nut installation during R1 maintenance"),
        Move(t + 1800, "assign", "R1", "ST20", "back from maintenance, takes the screwing"),
        Move(hours * 3600 - 300, "swap", "R1", None, "end of shift: home", with_robot="R2"),
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
                for alert_id in await asyncio.to_thread(self.alerts_to_answer):
                    self.handled.add(alert_id)
                    jobs.append(asyncio.create_task(self._handle(alert_id, rng)))
                await asyncio.sleep(0.2)
        finally:
            for j in jobs:
                j.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    def alerts_to_answer(self) -> list[int]:
        """Open alerts raised on this run's time. One another run left open stays for a
        person: this run's clock may read earlier than it was raised."""
        q = select(m.Alert.id).where(m.Alert.cleared_at.is_(None), m.Alert.raised_at >= self.start)
        if self.clock.limit is not None:
            q = q.where(m.Alert.raised_at <= self.clock.limit)
        with self.sessions() as s:
            return [i for i in s.scalars(q) if i not in self.handled]

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
                elif move.act == "swap":
                    assert move.with_robot is not None
                    acts.swap(
                        move.robot_id, move.with_robot, reason=move.reason, at=self.clock.now()
                    )
                else:
                    assert move.station_id is not None
                    acts.reassign(
                        move.robot_id, move.station_id, reason=move.reason, at=self.clock.now()
                    )
                self.done_moves.append(
                    f"{move.act} {move.robot_id} {move.station_id or move.with_robot or ''}"
                )
            except Refused as exc:
                log.warning("supervisor: %s", exc)
