"""One orchestrator process's station leases: take free ones, renew held ones, and know
locally, without asking anyone, when a station must no longer be served.

The safety rule: for each held station the keeper keeps a monotonic deadline, the moment
its last successful renew (or acquire) request was *sent* plus the lease time less a
margin. PostgreSQL counted the lease from a moment after that send, so the deadline
passes before the lease can expire there, by at least the margin. When the deadline
passes without a successful renewal (the database is down, slow, or the network is cut)
the station counts as lost: the orchestrator stops writing to its PLC at once, before
another process can take it over. Only the clocks' rates matter, never their settings.

The database calls run in a thread and the deadlines are watched while a call is in
flight, so a hung call cannot keep a lost station served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from cell.line.durability import unreachable
from cell.record import leases as records

log = logging.getLogger(__name__)

A = TypeVar("A")
R = TypeVar("R")


def owner_id() -> str:
    """This process's lease owner, readable by a person: host:pid:random. The random
    part tells a restarted process with a reused pid from its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def default_margin(lease_s: float) -> float:
    """How long before the lease could expire in PostgreSQL a holder stops serving."""
    return max(1.0, lease_s / 5)


@dataclass
class _Held:
    fencing: int
    deadline: float  # monotonic: serve the station only before this


class LeaseKeeper:
    """Takes and keeps the leases of ``station_ids`` for ``owner`` until cancelled.

    Every ``lease_s / 5`` seconds it renews the leases it holds and tries to take the
    free or expired ones. ``held()`` is what the process may serve right now; ``changed``
    waits until that differs from what the caller last saw. Each gain is logged at INFO
    and each loss at WARNING, with the fencing number. ``sessions`` makes sessions for
    the lease calls (see ``cell.record.leases.lease_engine``).
    """

    def __init__(
        self,
        sessions: Callable[[], Session],
        owner: str,
        station_ids: Iterable[str],
        lease_s: float = 5.0,
        *,
        margin_s: float | None = None,
    ) -> None:
        margin = default_margin(lease_s) if margin_s is None else margin_s
        if not 0 <= margin < lease_s:
            raise ValueError(f"a lease of {lease_s} s leaves no time to serve (margin {margin} s)")
        self.sessions = sessions
        self.owner = owner
        self.station_ids = sorted(set(station_ids))
        self.lease_s = lease_s
        self.margin_s = margin
        self.renew_every_s = lease_s / 5
        self._held: dict[str, _Held] = {}
        self._change = asyncio.Event()
        self._db_down = False
        self._taking = True
        self._inflight: asyncio.Future[Any] | None = None

    # ------------------------------------------------------------------ what is held

    def held(self) -> frozenset[str]:
        """The stations this process may serve now."""
        self._expire()
        return frozenset(self._held)

    def fencing(self) -> dict[str, int]:
        """Station -> fencing number of each lease held now."""
        self._expire()
        return {sid: h.fencing for sid, h in self._held.items()}

    async def changed(self, seen: frozenset[str]) -> frozenset[str]:
        """Wait until the held stations differ from ``seen``; the new set."""
        while (now := self.held()) == seen:
            # On a timeout a deadline has passed: ``held`` drops the station.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change.wait(), self._until_deadline())
        return now

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    def _until_deadline(self) -> float | None:
        if not self._held:
            return None
        return max(0.0, min(h.deadline for h in self._held.values()) - time.monotonic())

    def _expire(self) -> None:
        """Drop every station whose deadline has passed without a renewal."""
        now = time.monotonic()
        lost = sorted(sid for sid, h in self._held.items() if h.deadline <= now)
        for sid in lost:
            h = self._held.pop(sid)
            log.warning(
                "station %s: lease (fencing %d) not renewed in time; no longer served here",
                sid,
                h.fencing,
            )
        if lost:
            self._notify()

    # ------------------------------------------------------------------ the rounds

    async def run(self) -> None:
        """Renew and take leases every ``renew_every_s`` until cancelled."""
        while True:
            await self.round()
            end = time.monotonic() + self.renew_every_s
            while (left := end - time.monotonic()) > 0:
                wait = self._until_deadline()
                await asyncio.sleep(left if wait is None else min(left, wait))
                self._expire()

    async def round(self) -> None:
        """One renewal of the held leases, then one try for the others."""
        self._expire()
        if self._held:
            asked = {sid: h.fencing for sid, h in self._held.items()}
            sent = time.monotonic()
            still = await self._ask(self._renew, asked)
            if still is not None:
                self._renewed(asked, still, sent)
        free = [sid for sid in self.station_ids if sid not in self._held]
        if free and self._taking:
            sent = time.monotonic()
            got = await self._ask(self._acquire, free)
            if got is not None:
                self._gained(got, sent)

    def stop_taking(self) -> None:
        """Take no more leases (the process is stopping); keep renewing those held."""
        self._taking = False

    async def release(self) -> None:
        """Stop holding every lease and end this owner's leases in PostgreSQL, so that a
        standby takes the stations over at once. Call only after this process has stopped
        writing to their PLCs and ``run`` has been cancelled. Best effort: a lease not
        released simply runs out."""
        self._taking = False
        if self._held:
            self._held.clear()
            self._notify()
        if self._inflight is not None:
            # A take still running would otherwise hold stations nobody serves.
            await asyncio.wait({self._inflight})
        released = await self._ask(self._release, self.station_ids)
        if released:
            log.info("station leases released: %s", ", ".join(released))

    def _renewed(self, asked: Mapping[str, int], still: Mapping[str, int], sent: float) -> None:
        deadline = sent + self.lease_s - self.margin_s
        lost = False
        for sid, fencing in asked.items():
            h = self._held.get(sid)
            if h is None or h.fencing != fencing:
                continue  # dropped while the call ran: the next round asks for it again
            if still.get(sid) == fencing:
                h.deadline = max(h.deadline, deadline)
                continue
            del self._held[sid]
            lost = True
            log.warning(
                "station %s: lease (fencing %d) taken over by another process; "
                "no longer served here",
                sid,
                fencing,
            )
        if lost:
            self._notify()

    def _gained(self, got: Mapping[str, int], sent: float) -> None:
        deadline = sent + self.lease_s - self.margin_s
        if deadline <= time.monotonic():
            return  # the answer came too late to serve by; the next round asks again
        for sid, fencing in sorted(got.items()):
            self._held[sid] = _Held(fencing, deadline)
            log.info("station %s: lease taken (fencing %d) by %s", sid, fencing, self.owner)
        if got:
            self._notify()

    async def _ask(self, call: Callable[[A], R], arg: A) -> R | None:
        """``call(arg)`` in a thread, dropping stations whose deadline passes meanwhile;
        its answer, or None when the database could not be reached."""
        task = asyncio.ensure_future(asyncio.to_thread(call, arg))
        self._inflight = task
        # A call still running when the keeper is cancelled ends on its own; its answer,
        # or its error, is of no use any more.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        while not task.done():
            await asyncio.wait({task}, timeout=self._until_deadline())
            self._expire()
        try:
            answer = task.result()
        except (DBAPIError, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not unreachable(exc):
                raise
            self._database_failed(exc)
            return None
        if self._db_down:
            self._db_down = False
            log.info("station leases: the database answers again")
        return answer

    def _database_failed(self, exc: Exception) -> None:
        if self._db_down:
            return  # once per outage, not every round
        self._db_down = True
        orig = getattr(exc, "orig", None)
        reason = (str(orig or exc).strip().splitlines() or [type(exc).__name__])[0]
        if self._held:
            log.warning(
                "station leases: database unreachable (%s); %d stations served until their "
                "leases run out",
                reason,
                len(self._held),
            )
        else:
            log.warning(
                "station leases: database unreachable (%s); waiting for it to take leases",
                reason,
            )

    # ------------------------------------------------------------------ in a thread

    def _renew(self, held: dict[str, int]) -> dict[str, int]:
        with self.sessions() as s:
            still = records.renew(s, self.owner, held, self.lease_s)
            s.commit()
            return still

    def _acquire(self, free: list[str]) -> dict[str, int]:
        with self.sessions() as s:
            got = records.acquire(s, self.owner, free, self.lease_s)
            s.commit()
            return got

    def _release(self, station_ids: list[str]) -> list[str]:
        with self.sessions() as s:
            released = records.release(s, self.owner, station_ids)
            s.commit()
            return released
