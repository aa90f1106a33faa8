"""A station's reads and writes of the record besides results, tolerant of outages.

State events are buffered in memory while PostgreSQL is unreachable and written, in
order, with the next one that goes through; the robot assignment and open alerts fall
back on the last answer the database gave (at a start with the database down, the robot
whose home station it is in the line config).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cell.packml import PackML
from cell.record import models as m
from cell.record.roster import robot_for_station

log = logging.getLogger(__name__)

# Alert kinds that hold their station until a technician clears them.
HOLDING_ALERTS = frozenset({"nok_hold", "interrupted"})


class StationDb:
    """Thread-safe; one per station loop, called through ``asyncio.to_thread``."""

    def __init__(
        self, sessions: sessionmaker[Session], station_id: str, home_robot: str | None = None
    ) -> None:
        self.sessions = sessions
        self.station_id = station_id
        self._lock = threading.Lock()
        self._pending: list[m.CellStateEvent] = []
        self._robot: str | None = home_robot  # until the database first answers
        self._robot_said = False  # the fallback robot was logged in this outage
        self._held = False

    def state_events(self, states: list[PackML], reason: str, at: datetime) -> None:
        """Store transitions through ``states`` (in order, all at ``at``) with ``reason``."""
        with self._lock:
            self._pending.extend(
                m.CellStateEvent(
                    station_id=self.station_id,
                    state=state.name.lower(),
                    state_code=int(state),
                    reason=reason[:500],
                    at=at,
                )
                for state in states
            )
            try:
                with self.sessions() as s:
                    s.add_all(self._pending)
                    s.commit()
                if len(self._pending) > len(states):
                    log.info(
                        "station %s: %d buffered state events written",
                        self.station_id,
                        len(self._pending),
                    )
                self._pending = []
            except DBAPIError as exc:
                # Kept in order for the next write; states are not results, so the
                # station need not stop for them. Said once per outage, not per event.
                if len(self._pending) == len(states):
                    log.warning(
                        "station %s: state events buffered until the database answers: %s",
                        self.station_id,
                        type(exc).__name__,
                    )
                self._pending = [_detached(e) for e in self._pending]

    def robot(self) -> str | None:
        """The robot assigned now; the last known one while the database is unreachable."""
        try:
            with self.sessions() as s:
                self._robot = robot_for_station(s, self.station_id)
            self._robot_said = False
        except DBAPIError:
            if not self._robot_said:  # once per outage
                log.warning(
                    "station %s: database unreachable; using robot %s", self.station_id, self._robot
                )
                self._robot_said = True
        return self._robot

    def open_alerts(self, kinds: frozenset[str]) -> bool:
        """Whether an alert of ``kinds`` is still open at the station (last answer if the
        database is unreachable)."""
        try:
            with self.sessions() as s:
                self._held = bool(
                    s.scalar(
                        select(
                            exists().where(
                                m.Alert.station_id == self.station_id,
                                m.Alert.cleared_at.is_(None),
                                m.Alert.kind.in_(kinds),
                            )
                        )
                    )
                )
        except DBAPIError:
            pass
        return self._held

    def raise_alert(self, kind: str, message: str, at: datetime) -> int | None:
        """An alert of the station not tied to a job; None if the database is down."""
        try:
            with self.sessions() as s:
                alert = m.Alert(
                    station_id=self.station_id, kind=kind, message=message, raised_at=at
                )
                s.add(alert)
                s.commit()
                return alert.id
        except DBAPIError:
            log.warning(
                "station %s: alert %s not stored: database unreachable", self.station_id, kind
            )
            return None

    def clear_alert(self, alert_id: int, at: datetime) -> None:
        """Clear an alert the cell raised itself once its cause is gone."""
        try:
            with self.sessions() as s:
                alert = s.get(m.Alert, alert_id)
                if alert is not None and alert.cleared_at is None:
                    alert.cleared_at = at
                    alert.cleared_by = "system"
                    s.commit()
        except DBAPIError:
            log.warning(
                "station %s: alert %d not cleared: database unreachable", self.station_id, alert_id
            )


def _detached(e: m.CellStateEvent) -> m.CellStateEvent:
    """A fresh copy of an event a failed session may have left in a bad state."""
    return m.CellStateEvent(
        station_id=e.station_id, state=e.state, state_code=e.state_code, reason=e.reason, at=e.at
    )
