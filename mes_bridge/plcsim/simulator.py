"""``PlcSimulator``: the simulated line PLC's memory, served by a real OPC UA server.

It holds each station's memory apart from the server (``SimServer``), so the server can
be stopped and started again on the same port ("PLC restart") with its values retained,
or with its counters reset (a cold restart); copies what clients write into memory and
wakes the PLC program (``PlcProgram``); and offers what tests and demos ask of a PLC:
latched results, timings and counts, and faults to inject. ``run_plcsim`` runs one until
its stations are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.common.callback import ServerItemCallback

from mes_bridge.nodeids import node_id, parse_node_ref
from mes_bridge.plcsim.program import PlcProgram
from mes_bridge.plcsim.server import SimSecurity, SimServer
from mes_bridge.plcsim.station import (
    DEFAULT_ENDPOINT,
    PLCSIM_NAMESPACE,
    Injection,
    JobTiming,
    LatchedResult,
    SimCounts,
    SimStation,
    StationState,
)
from mes_bridge.tags import TAG_SPEC, Direction, Tag

log = logging.getLogger(__name__)

_ZERO: dict[str, object] = {"String": "", "Boolean": False}


def _zero_memory(vtypes: Mapping[Tag, ua.VariantType]) -> dict[Tag, object]:
    return {tag: _ZERO.get(vt.name, 0) for tag, vt in vtypes.items()}


WriteHook = Callable[[str, Tag, object], None]
RUN_ID = re.compile(r"[A-Za-z0-9-]{1,20}")


def check_flow(upstream: Mapping[str, str | None]) -> None:
    """Refuse (``ValueError``) a flow of parts that names an unknown station or goes round
    in a circle, where no part could ever enter."""
    for sid, up in upstream.items():
        if up is not None and up not in upstream:
            raise ValueError(f"station {sid}: upstream {up!r} is not a station of this PLC")
        seen = [sid]
        while up is not None:
            if up in seen:
                raise ValueError(f"parts go round in a circle: {' -> '.join([*seen, up])}")
            seen.append(up)
            up = upstream[up]


class PlcSimulator:
    """The simulated line PLC; an async context manager. ``url`` is the real endpoint.

    ``security`` makes it a secured PLC (see ``SimSecurity``); ``keep`` bounds the
    per-station history of latched results and timings (None: keep all, for tests; a
    long-running simulator should bound it). ``run_id`` goes into every new part's id
    (default: the UTC start time to the second, ``YYMMDD-hhmmss``), so that a later run
    writing to the same record never reuses a part id. Raises ``ValueError`` for an
    endpoint, ``keep``, ``run_id`` or station flow (``SimStation.upstream``) it cannot use.
    """

    def __init__(
        self,
        stations: Mapping[str, SimStation],
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        heartbeat_s: float = 1.0,
        security: SimSecurity | None = None,
        keep: int | None = None,
        run_id: str | None = None,
    ) -> None:
        parsed = urlparse(endpoint)
        if parsed.scheme != "opc.tcp" or parsed.port is None:
            raise ValueError(f"simulator endpoint must be opc.tcp://host:port/path: {endpoint!r}")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        run_id = run_id if run_id is not None else datetime.now(UTC).strftime("%y%m%d-%H%M%S")
        if not RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id {run_id!r}: 1 to 20 letters, digits and dashes")
        check_flow({sid: cfg.upstream for sid, cfg in stations.items()})
        self._host = parsed.hostname or "127.0.0.1"
        self._port, self._path = parsed.port, parsed.path
        self._stations: dict[str, StationState] = {}
        for sid, cfg in stations.items():
            vtypes = {
                t: ua.VariantType[cfg.type_overrides.get(t, spec[1])]
                for t, spec in TAG_SPEC.items()
                if t not in cfg.omit
            }
            self._stations[sid] = StationState(sid, cfg, _zero_memory(vtypes), vtypes, keep)
        self._by_node: dict[ua.NodeId, tuple[StationState, Tag]] = {}
        self._server = SimServer(
            self.url, "intern-cells line PLC simulator", security, self._on_write
        )
        self._built = False
        self._lock = asyncio.Lock()
        self._program = PlcProgram(self._stations, self, heartbeat_s, run_id)
        self._hooks: list[WriteHook] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"opc.tcp://{self._host}:{self._port}{self._path}"

    async def __aenter__(self) -> PlcSimulator:
        await self.start_server()
        self._tasks = self._program.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.stop_server()

    # ------------------------------------------------------------------ results

    def completed(self, station_id: str) -> list[LatchedResult]:
        return list(self._stations[station_id].completed)

    def counts(self, station_id: str) -> SimCounts:
        st = self._stations[station_id]
        return SimCounts(st.requested, st.ok, st.nok)

    def timings(self, station_id: str) -> list[JobTiming]:
        return list(self._stations[station_id].timings.values())

    def value(self, station_id: str, tag: Tag) -> object:
        """The PLC's current value of a tag (as the PLC program sees it)."""
        return self._stations[station_id].mem[tag]

    async def wait_completed(self, n: int, timeout: float) -> None:
        """Wait until every station has latched at least ``n`` results, or ``TimeoutError``."""

        def done() -> bool:
            return all(st.ok + st.nok >= n for st in self._stations.values())

        if not await self._program.latched.until(done, timeout, lambda: None):
            have = {sid: st.ok + st.nok for sid, st in self._stations.items()}
            raise TimeoutError(
                f"PLC simulator: {n} results per station not latched within "
                f"{timeout} s; have {have}"
            )

    async def wait_for(
        self, station_id: str, tag: Tag, predicate: Callable[[object], bool], timeout: float
    ) -> object:
        """Wait until the PLC's value of ``tag`` satisfies ``predicate``; return it.

        Raises ``TimeoutError`` naming the station, tag and last value.
        """
        st = self._stations[station_id]
        if not await st.changed.until(lambda: predicate(st.mem.get(tag)), timeout, lambda: None):
            raise TimeoutError(
                f"PLC simulator: station {station_id} tag {tag.value} still "
                f"{st.mem.get(tag)!r} after {timeout} s"
            )
        return st.mem.get(tag)

    def written_at(self, station_id: str, tag: Tag) -> float | None:
        """``time.perf_counter()`` when a client last wrote ``tag``, None if never."""
        return self._stations[station_id].written_at.get(tag)

    # ------------------------------------------------------------------ fault hooks

    async def plc_write(self, station_id: str, tag: Tag, value: object) -> None:
        """Write a tag as the PLC program would (e.g. to force a gap in JobSeq)."""
        await self._put(self._stations[station_id], tag, value)

    async def plc_write_raw(self, station_id: str, tag: Tag, variant: ua.Variant) -> None:
        """Put a value of any type on a tag's node (the PLC program's memory is unchanged)."""
        st = self._stations[station_id]
        async with self._lock:
            if self._server.running:
                await self._server.store(st.nodes[tag], variant)

    def abandon(self, station_id: str) -> None:
        """Give the station's open job up unanswered and request the next part's job (a
        PLC program that moves a part on, e.g. an operator's manual release)."""
        st = self._stations[station_id]
        st.abandons += 1
        st.changed.fire()

    def abandoned(self, station_id: str) -> list[int]:
        """JobSeqs the station's PLC program gave up with ``abandon``."""
        return list(self._stations[station_id].abandoned)

    def set_heartbeat(self, station_id: str, running: bool) -> None:
        """Start or stop the station's HeartbeatPLC (a PLC program stopped and restarted)."""
        st = self._stations[station_id]
        st.cfg = st.cfg.model_copy(update={"heartbeat": running})

    def inject(
        self,
        station_id: str,
        *,
        part_id: str | None = None,
        program_no: int | None = None,
        raw: Mapping[Tag, ua.Variant] | None = None,
    ) -> None:
        """Use these values for the station's next part (others as usual); see ``Injection``."""
        if program_no is not None and not -32768 <= program_no <= 32767:
            raise ValueError(f"ProgramNo {program_no} does not fit the Int16 tag")
        raw = dict(raw or {})
        bad = [
            t.value
            for t in raw
            if TAG_SPEC[t][0] is not Direction.PLC_TO_CELL or t is Tag.HEARTBEAT_PLC
        ]
        if bad:
            raise ValueError(
                f"raw values are for JobSeq, PartId, ProgramNo and ResultAckSeq, "
                f"not {', '.join(bad)}"
            )
        self._stations[station_id].injected.append(Injection(part_id, program_no, raw))

    def on_client_write(self, hook: WriteHook) -> None:
        """Call ``hook(station, tag, value)`` for every accepted client write, right after
        it is applied and before the client gets its answer (e.g. to drop connections
        between two writes of the handshake)."""
        self._hooks.append(hook)

    def drop_connections(self) -> int:
        """Reset every client connection now, as a cut cable does; returns how many."""
        return self._server.drop_connections()

    async def refuse_writes(self, station_id: str, tag: Tag, refuse: bool = True) -> None:
        """Make a cell->PLC tag read-only for clients (or writable again)."""
        await self._server.set_writable(self._stations[station_id].nodes[tag], not refuse)

    # ------------------------------------------------------------------ server

    async def start_server(self) -> None:
        """Start listening, the address space showing the current PLC memory."""
        async with self._lock:
            if not self._built:
                # Built once and started/stopped for restarts: building the standard
                # address space takes seconds of CPU, a restart should not.
                server = await self._server.build([PLCSIM_NAMESPACE])
                for st in self._stations.values():
                    await self._add_station(server, st)
                self._built = True
            for st in self._stations.values():
                for tag, nodeid in st.nodes.items():
                    await self._server.store(nodeid, ua.Variant(st.mem[tag], st.vtypes[tag]))
            port = await self._server.start()
            if self._port == 0:
                self._port = port
                self._server.url = self.url
        log.info("PLC simulator listening on %s", self.url)

    async def stop_server(self, *, abort: bool = False) -> None:
        """Stop listening; clients lose connection, session and subscriptions.

        Memory is kept. ``abort`` resets the connections (a power cut or a killed PLC
        runtime) instead of closing them.
        """
        async with self._lock:
            await self._server.stop(abort=abort)

    async def restart(self, *, cold: bool = False, down_s: float = 0.0, kill: bool = False) -> None:
        """Stop and start again on the same port; ``cold`` resets every counter to 0,
        ``kill`` resets connections instead of closing them."""
        await self.stop_server(abort=kill)
        if down_s:
            await asyncio.sleep(down_s)  # the PLC is simply off for this long
        if cold:
            for st in self._stations.values():
                st.mem = _zero_memory(st.vtypes)
                st.epoch += 1
                st.changed.fire()
        await self.start_server()

    async def _add_station(self, server: Server, st: StationState) -> None:
        folder = await server.nodes.objects.add_folder(
            await server.get_namespace_index(PLCSIM_NAMESPACE), st.sid
        )
        resolved = st.cfg.tags.resolved()
        for tag, vtype in st.vtypes.items():
            ref = parse_node_ref(resolved[tag], st.cfg.tags.namespace_uri)
            if isinstance(ref.namespace, str):
                await server.register_namespace(ref.namespace)
            nodeid = ref.resolve(await server.get_namespace_array())
            var = await folder.add_variable(
                nodeid,
                ua.QualifiedName(tag.value, nodeid.NamespaceIndex),
                ua.Variant(st.mem[tag], vtype),
                datatype=node_id(vtype.value, 0),
            )
            if TAG_SPEC[tag][0] is Direction.CELL_TO_PLC:
                await var.set_writable()
            st.nodes[tag] = nodeid
            self._by_node[nodeid] = (st, tag)

    def _on_write(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """A client wrote: copy accepted Value writes into PLC memory and wake the station."""
        now = time.perf_counter()
        for wv, status in zip(
            event.request_params.NodesToWrite, event.response_params, strict=True
        ):
            if wv.AttributeId != ua.AttributeIds.Value or not status.is_good():
                continue
            hit = self._by_node.get(wv.NodeId)
            if hit is None or TAG_SPEC[hit[1]][0] is not Direction.CELL_TO_PLC:
                continue
            st, tag = hit
            value = wv.Value.Value.Value if wv.Value and wv.Value.Value else None
            st.mem[tag] = value
            st.written_at[tag] = now
            job_seq = st.mem[Tag.JOB_SEQ]
            timing = st.timings.get(job_seq) if isinstance(job_seq, int) else None
            if timing is not None and value == timing.job_seq:
                if tag is Tag.JOB_ACK_SEQ and timing.t_ack is None:
                    timing.t_ack = now
                elif tag is Tag.RESULT_SEQ and timing.t_result is None:
                    timing.t_result = now
            st.changed.fire()
            for hook in self._hooks:
                hook(st.sid, tag, value)

    async def _put(self, st: StationState, tag: Tag, value: object) -> None:
        if tag not in st.vtypes:
            return
        async with self._lock:
            st.mem[tag] = value
            if self._server.running:
                await self._server.store(st.nodes[tag], ua.Variant(value, st.vtypes[tag]))
        st.changed.fire()


async def run_plcsim(
    stations: Mapping[str, SimStation],
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    heartbeat_s: float = 1.0,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    report_every_s: float = 0.0,
    security: SimSecurity | None = None,
    keep: int | None = 10_000,
    run_id: str | None = None,
) -> dict[str, SimCounts]:
    """Run the simulator until every station has done its ``parts`` or ``stop`` is set.

    With no ``parts`` on any station and no ``stop`` it runs until cancelled. ``on_ready``
    gets the real endpoint URL once the server listens; ``report_every_s`` > 0 logs counts.
    ``keep`` bounds the kept history (a simulator may run for weeks); ``run_id`` goes into
    new part ids (see ``PlcSimulator``). Returns each station's counts.
    """
    stop = stop or asyncio.Event()
    async with PlcSimulator(
        stations, endpoint, heartbeat_s=heartbeat_s, security=security, keep=keep, run_id=run_id
    ) as sim:
        if on_ready is not None:
            on_ready(sim.url)
        finite = all(cfg.parts is not None for cfg in stations.values())
        target = max((cfg.parts or 0) for cfg in stations.values())
        last_report = time.monotonic()
        while not stop.is_set():
            if finite and all(
                sim.counts(sid).ok + sim.counts(sid).nok >= (cfg.parts or 0)
                for sid, cfg in stations.items()
            ):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if report_every_s and time.monotonic() - last_report >= report_every_s:
                last_report = time.monotonic()
                log.info(
                    "PLC simulator: %s (target %s)",
                    {sid: sim.counts(sid) for sid in stations},
                    target,
                )
        return {sid: sim.counts(sid) for sid in stations}
