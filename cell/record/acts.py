"""The supervisors' and technicians' acts, one service for every edge, with one audit.

The CLI, the HTTP API and the simulated people of a demo all act through ``Acts``: a
roster change (reassign, swap, maintenance), an alert step (acknowledge, rework, clear)
or a policy rollout (start, stop). Each act is recorded with its author, and written to
the audit log once, as ``done`` or, when its rule refuses it, ``refused`` with the
reason (the refusal is then raised again for the edge to answer). ``audit`` is the only
writer of the audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from cell.errors import Refused
from cell.record import alerts as al
from cell.record import assignments as asg
from cell.record import models as m
from cell.record import rollouts as ro

T = TypeVar("T")


@dataclass(frozen=True)
class Actor:
    """Who acts: a person's or script's name, and the role it acts in (an API role,
    ``cli`` for the terminal, ``simulated`` for a demo's people)."""

    name: str
    role: str


def audit(
    session: Session,
    actor: Actor,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, object] | None = None,
) -> None:
    """Append one line to the audit log (commits). ``outcome``: done, refused, forbidden,
    or locked (a sign-in refused after too many failures)."""
    session.add(
        m.AuditEntry(
            actor=actor.name,
            role=actor.role,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail or {},
        )
    )
    session.commit()


class Acts:
    """The acts of one ``actor`` on one session; each commits and is audited."""

    def __init__(self, session: Session, actor: Actor) -> None:
        self.session = session
        self.actor = actor

    def _audited(
        self, action: str, target: str, detail: dict[str, object], act: Callable[[], T]
    ) -> T:
        try:
            done = act()
        except Refused as exc:
            self.session.rollback()
            audit(
                self.session,
                self.actor,
                action,
                target,
                "refused",
                detail | {"reason_refused": str(exc)},
            )
            raise
        audit(self.session, self.actor, action, target, "done", detail)
        return done

    def reassign(
        self, robot_id: str, station_id: str, *, reason: str, at: datetime | None = None
    ) -> None:
        """Move a robot to a station (from its next cycle)."""
        detail: dict[str, object] = {"station": station_id, "reason": reason}
        self._audited(
            "assign.reassign",
            robot_id,
            detail,
            lambda: asg.reassign(
                self.session, robot_id, station_id, author=self.actor.name, reason=reason, at=at
            ),
        )

    def swap(self, robot_a: str, robot_b: str, *, reason: str, at: datetime | None = None) -> None:
        """Exchange the stations of two robots."""
        self._audited(
            "assign.swap",
            robot_a,
            {"other_robot": robot_b, "reason": reason},
            lambda: asg.swap(
                self.session, robot_a, robot_b, author=self.actor.name, reason=reason, at=at
            ),
        )

    def maintenance(self, robot_id: str, *, reason: str, at: datetime | None = None) -> None:
        """Take a robot out of service; its station has no robot until one is assigned."""
        self._audited(
            "assign.maintenance",
            robot_id,
            {"reason": reason},
            lambda: asg.to_maintenance(
                self.session, robot_id, author=self.actor.name, reason=reason, at=at
            ),
        )

    def acknowledge(self, alert_id: int, *, at: datetime | None = None) -> m.Alert:
        """Mark an alert seen."""
        return self._audited(
            "alert.ack",
            str(alert_id),
            {},
            lambda: al.acknowledge(self.session, alert_id, author=self.actor.name, at=at),
        )

    def rework(self, alert_id: int, outcome: al.Rework, *, at: datetime | None = None) -> m.Alert:
        """Record what was done to the alert's part."""
        return self._audited(
            "alert.rework",
            str(alert_id),
            {"outcome": outcome.value},
            lambda: al.record_rework(
                self.session, alert_id, outcome, author=self.actor.name, at=at
            ),
        )

    def clear(self, alert_id: int, *, at: datetime | None = None) -> m.Alert:
        """Clear an acknowledged (and, with a part, reworked) alert."""
        return self._audited(
            "alert.clear",
            str(alert_id),
            {},
            lambda: al.clear(self.session, alert_id, author=self.actor.name, at=at),
        )

    def start_rollout(
        self, station_id: str, candidate: str, *, share: float = 0.2, incumbent: str | None = None
    ) -> m.Rollout:
        """Run ``candidate`` beside the station's incumbent policy version (a canary)."""
        return self._audited(
            "rollout.start",
            station_id,
            {"candidate": candidate, "share": share, "incumbent": incumbent},
            lambda: ro.start(
                self.session,
                station_id,
                candidate,
                author=self.actor.name,
                share=share,
                incumbent=incumbent,
            ),
        )

    def stop_rollout(self, station_id: str, *, reason: str) -> m.Rollout:
        """Stop the rollout running on the station; the incumbent stays."""
        return self._audited(
            "rollout.stop",
            station_id,
            {"reason": reason},
            lambda: ro.stop(self.session, station_id, author=self.actor.name, reason=reason),
        )
