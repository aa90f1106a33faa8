"""Station loops grouped by PLC endpoint: the grouping, every station started at once
(without leases), the drain on stop, and ``HeldStations``, which serves exactly the
stations whose leases a process holds.

With leases, the stations served change while the process runs. Each endpoint's held
stations get one ``EndpointGroup``: a task that opens the endpoint's PLC session and runs
a ``StationLoop`` per station. When the held set of an endpoint changes, its group is
cancelled (PLC writes stop at once: the loops and then the session's heartbeat) and a new
group is started for the new set once the old session is closed. Simple and safe: the
other stations of that endpoint re-attach to their jobs like after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from cell.config import LineConfig, Station
from cell.line.leases import LeaseKeeper
from cell.line.station import CellContext, StationLoop
from cell.line.telemetry import LiveState
from cell.packml import PackML
from mes_bridge.session import PlcSession, StationChannel

log = logging.getLogger(__name__)

Loops = dict[asyncio.Task[None], StationLoop]
LiveStations = list[tuple[str, LiveState, StationChannel]]


def group_by_endpoint(line: LineConfig) -> dict[str, list[Station]]:
    groups: dict[str, list[Station]] = defaultdict(list)
    for st in line.stations:
        groups[st.plc_endpoint].append(st)
    return dict(groups)


async def drain(
    ctx: CellContext,
    loops: Loops,
    grace_s: float,
    served: Callable[[str], bool] = lambda station_id: True,
) -> None:
    """Let running jobs finish (up to ``grace_s``) and stop every station cleanly. A
    station no longer ``served`` (its lease lost meanwhile) gets no last state from here."""
    ctx.draining = True
    for task, loop in loops.items():
        if not loop.busy or loop.state is PackML.HELD:
            task.cancel()  # waiting for a job, a robot or a technician: nothing to finish
    if loops:
        await asyncio.wait(loops, timeout=grace_s)
    for task, loop in loops.items():
        if (task.cancelled() or not task.done()) and served(loop.station.id):
            task.cancel()
            with contextlib.suppress(Exception):
                await loop.set_state(PackML.STOPPED, "orchestrator stopped")


async def start_stations(
    stack: contextlib.AsyncExitStack,
    line: LineConfig,
    ctx: CellContext,
    known_seqs: dict[str, int],
) -> Loops:
    """One PLC session per endpoint (closed by ``stack``) and one loop task per station."""
    loops: Loops = {}
    for endpoint, stations in group_by_endpoint(line).items():
        # The last recorded JobSeq lets the bridge see a counter reset that happened
        # while the cell was down.
        plc = await stack.enter_async_context(
            PlcSession(
                endpoint,
                {st.id: st.tags for st in stations},
                known_job_seqs={st.id: known_seqs[st.id] for st in stations if st.id in known_seqs},
                security=stations[0].security,
            )
        )
        for st in stations:
            loop = StationLoop(st, plc.station(st.id), ctx)
            loops[asyncio.create_task(loop.run(), name=f"station-{st.id}")] = loop
    return loops


class EndpointGroup:
    """One PLC endpoint's held stations: its session and their loops, in ``task``.

    ``after`` (the endpoint's previous group, cancelled) is awaited before connecting,
    so two sessions of this process never serve one station. ``known_seqs`` gives each
    station's last recorded JobSeq (called in a thread). ``live`` is the process's list
    of served stations for the metrics, kept up to date here.
    """

    def __init__(
        self,
        endpoint: str,
        stations: list[Station],
        ctx: CellContext,
        known_seqs: Callable[[], dict[str, int]],
        live: LiveStations,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.stations = stations
        self.station_ids = frozenset(st.id for st in stations)
        self.ctx = ctx
        self.loops: Loops = {}
        self._known_seqs = known_seqs
        self._live = live
        self.task = asyncio.create_task(self._run(after), name=f"plc-{endpoint}")

    async def _run(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after])
        known = await asyncio.to_thread(self._known_seqs)
        async with PlcSession(
            self.endpoint,
            {st.id: st.tags for st in self.stations},
            known_job_seqs={sid: known[sid] for sid in self.station_ids if sid in known},
            security=self.stations[0].security,
        ) as plc:
            for st in self.stations:
                loop = StationLoop(st, plc.station(st.id), self.ctx)
                self.loops[asyncio.create_task(loop.run(), name=f"station-{st.id}")] = loop
            entries = [(loop.station.id, loop.live, loop.channel) for loop in self.loops.values()]
            self._live.extend(entries)
            try:
                await self._serve()
            finally:
                for task in self.loops:
                    task.cancel()
                await asyncio.gather(*self.loops, return_exceptions=True)
                for entry in entries:
                    self._live.remove(entry)

    async def _serve(self) -> None:
        """Until cancelled; raises what a station loop raised. Loops that end (drained)
        leave the session open for their last states until the group is cancelled."""
        done, _ = await asyncio.wait(self.loops, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await asyncio.Event().wait()


class HeldStations:
    """Serves exactly the stations a ``LeaseKeeper`` holds, one group per endpoint."""

    def __init__(
        self, line: LineConfig, ctx: CellContext, known_seqs: Callable[[], dict[str, int]]
    ) -> None:
        self.endpoints = group_by_endpoint(line)
        self.ctx = ctx
        self.known_seqs = known_seqs
        self.groups: dict[str, EndpointGroup] = {}
        self.live: LiveStations = []
        self.draining = False  # only stop groups now, never start one
        self._retired: set[asyncio.Task[None]] = set()

    def serves(self, station_id: str) -> bool:
        return any(station_id in g.station_ids for g in self.groups.values())

    def loops(self) -> Loops:
        return {t: loop for g in self.groups.values() for t, loop in g.loops.items()}

    def apply(self, held: frozenset[str]) -> None:
        """Serve ``held``: an endpoint whose held stations changed has its group
        cancelled and, unless draining, a new one started. Never awaits, so a lost
        station's PLC writes stop before anything else happens."""
        for endpoint, stations in self.endpoints.items():
            want = [st for st in stations if st.id in held]
            old = self.groups.get(endpoint)
            if frozenset(st.id for st in want) == (old.station_ids if old else frozenset()):
                continue
            if old is not None:
                self._retire(endpoint)
            if want and not self.draining:
                self.groups[endpoint] = EndpointGroup(
                    endpoint,
                    want,
                    self.ctx,
                    self.known_seqs,
                    self.live,
                    after=old.task if old else None,
                )
            now = self.groups[endpoint].station_ids if endpoint in self.groups else ()
            log.info("PLC %s: stations served here: %s", endpoint, ", ".join(sorted(now)) or "none")

    def _retire(self, endpoint: str) -> None:
        task = self.groups.pop(endpoint).task
        task.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def follow(self, keeper: LeaseKeeper) -> None:
        """Apply each change of ``keeper``'s held stations until cancelled; raises what
        a station loop or a PLC session raised."""
        seen: frozenset[str] = frozenset()
        while True:
            change = asyncio.create_task(keeper.changed(seen), name="lease-change")
            groups = [g.task for g in self.groups.values()]
            try:
                await asyncio.wait([change, *groups], return_when=asyncio.FIRST_COMPLETED)
            finally:
                change.cancel()
            for task in groups:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if change.done() and not change.cancelled():
                seen = change.result()
                self.apply(seen)

    async def stop(self) -> None:
        """Cancel every group and wait until their sessions are closed."""
        for endpoint in list(self.groups):
            self._retire(endpoint)
        if self._retired:
            await asyncio.wait(set(self._retired))
