"""The connection half of ``PlcSession``: open a link, notice its loss, reconnect.

Every (re)connect makes a new ``Link`` with the next generation number; changes and
losses are tagged with it so that anything from an older link is ignored. A full read
of the handshake tags follows each connect and is queued (``Resync``) for the session's
processor, which alone decides what the PLC's state means.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from mes_bridge.errors import BridgeError, PlcConnectionError, PlcSecurityError, TagMapError
from mes_bridge.link import LINK_ERRORS, ConnectOptions, DataChange, Link
from mes_bridge.nodeids import NodeRef
from mes_bridge.security import ClientSecurity
from mes_bridge.stations import SessionStations
from mes_bridge.tags import Tag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resync:
    """A full read taken right after connection ``generation`` was made."""

    generation: int
    values: dict[str, dict[Tag, object]]


class Reconnecting:
    """Base of ``PlcSession`` holding the link and its generations (see module doc)."""

    endpoint: str
    _refs: Mapping[str, Mapping[Tag, NodeRef]]
    _options: ConnectOptions
    _security: ClientSecurity
    _stations: SessionStations
    _reconnect: asyncio.Event
    _link: Link | None
    _generation: int  # of the newest link
    _live_gen: int | None  # link that is connected and resynced
    _lost_gen: int  # newest generation known lost
    _failure: BaseException | None
    _closing: bool
    _max_delay_s: float
    _reconnect_deadline_s: float | None

    def _wake_all(self) -> None:
        raise NotImplementedError

    def _enqueue(self, item: DataChange | Resync) -> None:
        """Hand a data change or a full read to the session's one consumer, in order."""
        raise NotImplementedError

    async def _connect(self, deadline_s: float | None) -> None:
        """Open a new link and queue its resync, retrying with backoff until the deadline."""
        start = time.monotonic()
        delay, attempts = 0.2, 0
        while True:
            attempts += 1
            try:
                await self._open_link()
                return
            except (TagMapError, PlcSecurityError):
                raise  # a person must fix the tag map or the security set-up
            except LINK_ERRORS as exc:
                last = exc
            left = None if deadline_s is None else deadline_s - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise PlcConnectionError(
                    f"PLC at {self.endpoint} unreachable: {attempts} attempts in "
                    f"{deadline_s:.0f} s, last error: {last!r}"
                ) from last
            log.info("PLC at %s unreachable (%r); retrying in %.1f s", self.endpoint, last, delay)
            # Backoff between attempts: there is no event to await for a server coming back.
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, self._max_delay_s)

    async def _open_link(self) -> None:
        gen = self._generation + 1
        link = await Link.open(
            self.endpoint,
            self._refs,
            self._options,
            self._security,
            generation=gen,
            sink=self._enqueue,
            on_lost=self._lost,
        )
        self._generation, self._link = gen, link
        try:
            values = await link.read_all()
        except BaseException:
            self._link = None
            await link.close(self._options.timeout_s)
            raise
        self._enqueue(Resync(gen, values))

    def _lost(self, generation: int, exc: BaseException) -> None:
        if self._closing or generation != self._generation or generation <= self._lost_gen:
            return
        log.warning("connection to PLC at %s lost: %r", self.endpoint, exc)
        self._lost_gen = generation
        self._live_gen = None
        self._stations.connection_lost()
        self._reconnect.set()
        self._wake_all()

    async def _supervise(self) -> None:
        while True:
            await self._reconnect.wait()
            self._reconnect.clear()
            old, self._link = self._link, None
            if old is not None:
                await old.close(self._options.timeout_s)
            try:
                await self._connect(self._reconnect_deadline_s)
            except BridgeError as exc:
                log.error("giving up on PLC at %s: %s", self.endpoint, exc)
                self._failure = exc
                self._wake_all()
                return
            log.info("reconnected to PLC at %s (connection %d)", self.endpoint, self._generation)
