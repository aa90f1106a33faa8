"""One live OPC UA connection to a PLC: nodes resolved and checked, subscriptions made.

A ``Link`` is built for every (re)connect and thrown away when the connection is lost;
the session above it keeps the handshake state. Data changes are handed to a sink (an
``asyncio.Queue.put_nowait``) straight from the subscription handler: nothing slow ever
runs inside a data-change callback.

Subscriptions are grouped by what they are for, not by station: one (fast) subscription
holds every station's handshake inputs, another (slow) every HeartbeatPLC; a group is
split only past ``max_items_per_subscription``. Reads, writes and item creation are
split to the PLC's announced operation limits (small PLCs allow a few hundred nodes per
call), except a handshake step, which is always one write request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from asyncua import Client, ua
from pydantic import BaseModel, ConfigDict, Field

from mes_bridge.batcher import WriteBatcher
from mes_bridge.errors import PlcWriteError, TagMapError
from mes_bridge.handshake_types import WriteStep
from mes_bridge.nodeids import NodeRef
from mes_bridge.security import ClientSecurity
from mes_bridge.tags import TAG_SPEC, Direction, Tag

log = logging.getLogger(__name__)

# PLC->cell tags that drive the handshake; HeartbeatPLC goes in its own, slower subscription.
HANDSHAKE_INPUTS = (Tag.PART_ID, Tag.PROGRAM_NO, Tag.RESULT_ACK_SEQ, Tag.JOB_SEQ)

# Errors that mean "this connection is no good": the session reconnects and resyncs.
LINK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    ua.UaError,
)
_S = ua.StatusCodes
# Service faults on a write that say the connection or session is gone (reconnect);
# any other bad status on a write is the PLC refusing it (``PlcWriteError``).
CONNECTION_FAULTS = frozenset(
    {
        _S.BadSessionIdInvalid,
        _S.BadSessionClosed,
        _S.BadSessionNotActivated,
        _S.BadSecureChannelIdInvalid,
        _S.BadSecureChannelClosed,
        _S.BadConnectionClosed,
        _S.BadServerNotConnected,
        _S.BadCommunicationError,
        _S.BadTimeout,
        _S.BadServerHalted,
        _S.BadShutdown,
        _S.BadNoCommunication,
        _S.BadTooManySessions,
        _S.BadRequestInterrupted,
        _S.BadDisconnect,
    }
)
_LIMITS = (
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
)


class ConnectOptions(BaseModel):
    """How to talk to the PLC once reached (security is a ``ClientSecurity``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=4.0, gt=0, description="per request")
    watchdog_s: float = Field(default=1.0, gt=0, description="liveness probe period")
    # Short: a session orphaned by a lost connection keeps a slot on the PLC this long
    # (a small PLC allows a handful), and the bridge never resumes one anyway.
    session_timeout_s: float = Field(default=20.0, gt=0)
    publishing_interval_ms: float = Field(default=50.0, gt=0)
    heartbeat_interval_ms: float = Field(default=500.0, gt=0)
    max_items_per_subscription: int = Field(default=1000, ge=1)
    max_nodes_per_request: int = Field(
        default=1000, ge=1, description="lowered further to the PLC's limits"
    )


@dataclass(frozen=True)
class Limits:
    """Nodes per call the PLC accepts (its OperationLimits, capped by our options)."""

    read: int
    write: int
    monitor: int


@dataclass(frozen=True)
class TagNode:
    station_id: str
    tag: Tag
    text: str  # the node id as written in the tag map
    nodeid: ua.NodeId
    vtype: ua.VariantType

    def where(self) -> str:
        return f"station {self.station_id}, tag {self.tag.value}, node {self.text!r}"


@dataclass(frozen=True)
class DataChange:
    generation: int
    station_id: str
    tag: Tag
    value: object  # None when the PLC reported a bad status


class _Handler:
    """Subscription handler: look the node up and hand the value on; nothing else."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        key = self._link.by_nodeid.get(node.nodeid)
        if key is None:
            return
        status = data.monitored_item.Value.StatusCode
        value = val if status is None or status.is_good() else None
        self._link.sink(DataChange(self._link.generation, key[0], key[1], value))

    def status_change_notification(self, status: Any) -> None:
        # The server ended or timed out a subscription: this connection can no longer be
        # trusted to report changes, so it is dropped and rebuilt with a resync.
        code = getattr(status, "Status", None)
        if code is not None and not code.is_good():
            self._link.on_lost(
                self._link.generation, ConnectionError(f"subscription status {code.name}")
            )


class Link:
    def __init__(
        self,
        client: Client,
        nodes: dict[tuple[str, Tag], TagNode],
        generation: int,
        sink: Callable[[DataChange], None],
        on_lost: Callable[[int, BaseException], None],
        limits: Limits,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.by_nodeid = {n.nodeid: key for key, n in nodes.items()}
        self.generation = generation
        self.sink = sink
        self.on_lost = on_lost
        self.limits = limits
        self.subscriptions: list[tuple[float, int]] = []  # (interval ms, items) each
        self._writes: WriteBatcher[tuple[TagNode, object]] = WriteBatcher(
            self._write_request, _refused, limits.write
        )

    @classmethod
    async def open(
        cls,
        endpoint: str,
        refs: Mapping[str, Mapping[Tag, NodeRef]],
        options: ConnectOptions,
        security: ClientSecurity,
        *,
        generation: int,
        sink: Callable[[DataChange], None],
        on_lost: Callable[[int, BaseException], None],
    ) -> Link:
        """Connect, resolve namespace URIs, check every node, subscribe.

        Raises ``TagMapError`` if the PLC does not fit the tag maps, ``PlcSecurityError``
        if it refuses us or we refuse it, or one of ``LINK_ERRORS`` if it cannot be reached.
        """
        client = await _connect(endpoint, options, security)
        try:
            limits = await _limits(client, options.max_nodes_per_request)
            namespaces = await client.get_namespace_array()
            nodes = resolve_nodes(refs, namespaces)
            await _check_nodes(client, list(nodes.values()), limits.read)
        except BaseException:
            await _close_quietly(client, options.timeout_s)
            raise
        link = cls(client, nodes, generation, sink, on_lost, limits)
        try:

            async def lost(exc: Exception) -> None:
                on_lost(generation, exc)

            client.connection_lost_callback = lost
            await link._subscribe(options)
            return link
        except BaseException:
            await link.close(options.timeout_s)
            raise

    async def _subscribe(self, options: ConnectOptions) -> None:
        handler = _Handler(self)
        groups = (
            (
                options.publishing_interval_ms,
                [n for n in self.nodes.values() if n.tag in HANDSHAKE_INPUTS],
            ),
            (
                options.heartbeat_interval_ms,
                [n for n in self.nodes.values() if n.tag is Tag.HEARTBEAT_PLC],
            ),
        )
        size = options.max_items_per_subscription
        for interval, items in groups:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                sub = await self.client.create_subscription(interval, handler)
                self.subscriptions.append((interval, len(chunk)))
                for part in _chunks(chunk, self.limits.monitor):
                    handles = await sub.subscribe_data_change(
                        [self.client.get_node(n.nodeid) for n in part], sampling_interval=0
                    )
                    bad = [
                        f"  {n.where()}: cannot monitor ({h.name})"
                        for n, h in zip(part, handles, strict=True)
                        if isinstance(h, ua.StatusCode)
                    ]
                    if bad:
                        raise TagMapError("PLC refused monitored items:\n" + "\n".join(bad))

    async def read_all(self) -> dict[str, dict[Tag, object]]:
        """Every mapped tag's value (as few reads as the PLC allows); None if bad status."""
        keys = list(self.nodes)
        dvs: list[ua.DataValue] = []
        for part in _chunks(keys, self.limits.read):
            dvs.extend(
                await self.client.uaclient.read_attributes(
                    [self.nodes[k].nodeid for k in part], ua.AttributeIds.Value
                )
            )
        out: dict[str, dict[Tag, object]] = {}
        for (station, tag), dv in zip(keys, dvs, strict=True):
            good = dv.StatusCode is None or dv.StatusCode.is_good()
            out.setdefault(station, {})[tag] = dv.Value.Value if good and dv.Value else None
        return out

    async def write(self, items: Iterable[tuple[str, Tag, object]]) -> None:
        """Values typed as the tags declare, in order, in as few requests as the PLC allows
        (shared with other stations' writes, see ``WriteBatcher``).

        Raises ``PlcWriteError`` naming station, tag, node and status for a refused value
        (or a refused request), one of ``LINK_ERRORS`` if the connection is gone.
        """
        targets = [(self.nodes[(sid, tag)], value) for sid, tag, value in items]
        for part in _chunks(targets, self.limits.write):
            await self._writes.submit(part)

    async def write_steps(self, station_id: str, steps: Iterable[WriteStep]) -> None:
        """Handshake steps in order, each whole in one request, sent once the previous
        one succeeded."""
        for step in steps:
            await self._writes.submit(
                [(self.nodes[(station_id, tag)], value) for tag, value in step]
            )

    async def _write_request(self, targets: list[tuple[TagNode, object]]) -> list[ua.StatusCode]:
        dvs = [ua.DataValue(ua.Variant(value, node.vtype)) for node, value in targets]
        try:
            return await self.client.uaclient.write_attributes(  # type: ignore[no-any-return]
                [node.nodeid for node, _ in targets], dvs, ua.AttributeIds.Value
            )
        except ua.UaStatusCodeError as exc:
            if exc.code in CONNECTION_FAULTS:
                raise
            where = "; ".join(node.where() for node, _ in targets)
            raise PlcWriteError(
                f"PLC refused a write request ({ua.StatusCode(exc.code).name}): {where}"
            ) from exc

    async def close(self, timeout_s: float) -> None:
        await self._writes.close(ConnectionError("PLC link closed"))
        await _close_quietly(self.client, timeout_s)


def _refused(bad: list[tuple[tuple[TagNode, object], ua.StatusCode]]) -> PlcWriteError:
    return PlcWriteError(
        "PLC refused a write:\n"
        + "\n".join(
            f"  {node.where()}: writing {value!r} refused ({status.name})"
            for (node, value), status in bad
        )
    )


async def _connect(endpoint: str, options: ConnectOptions, security: ClientSecurity) -> Client:
    client = Client(endpoint, timeout=options.timeout_s, watchdog_intervall=options.watchdog_s)
    client.name = client.description = "intern-cells bridge"
    client.session_timeout = int(options.session_timeout_s * 1000)
    try:
        await security.apply(client, endpoint)
        await client.connect(auto_reconnect=False)
    except LINK_ERRORS as exc:
        refused = security.explain(exc, endpoint)
        if refused is not None:
            raise refused from exc
        raise
    return client


async def _limits(client: Client, cap: int) -> Limits:
    """The PLC's OperationLimits (0 or unreadable: no limit), capped at ``cap``."""
    dvs = await client.uaclient.read_attributes(
        [ua.NodeId(i) for i in _LIMITS], ua.AttributeIds.Value
    )
    values = []
    for dv in dvs:
        v = dv.Value.Value if dv.StatusCode.is_good() and dv.Value is not None else 0
        values.append(min(cap, int(v)) if isinstance(v, int) and v > 0 else cap)
    return Limits(*values)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or []


async def _close_quietly(client: Client, timeout_s: float) -> None:
    # The connection may already be dead: closing is best effort and bounded in time.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), timeout_s)


def resolve_nodes(
    refs: Mapping[str, Mapping[Tag, NodeRef]], namespaces: list[str]
) -> dict[tuple[str, Tag], TagNode]:
    """Every station's tags as concrete nodes on a server with these ``namespaces``.

    Raises ``TagMapError`` listing every node that does not resolve, and every node
    mapped twice (two stations on one data block is a copy-paste error that would let
    one station's job be answered by another).
    """
    nodes: dict[tuple[str, Tag], TagNode] = {}
    problems: list[str] = []
    owner: dict[ua.NodeId, TagNode] = {}
    for station, tags in refs.items():
        for tag, ref in tags.items():
            try:
                nodeid = ref.resolve(namespaces)
            except TagMapError as exc:
                problems.append(f"  station {station}, tag {tag.value}: {exc}")
                continue
            vtype = ua.VariantType[TAG_SPEC[tag][1]]
            node = TagNode(station, tag, ref.text, nodeid, vtype)
            if nodeid in owner:
                problems.append(f"  {node.where()}: the same node as {owner[nodeid].where()}")
            owner.setdefault(nodeid, node)
            nodes[(station, tag)] = node
    if problems:
        raise TagMapError("tag map does not resolve on the PLC:\n" + "\n".join(problems))
    return nodes


def _type_name(dv: ua.DataValue) -> str:
    nodeid = dv.Value.Value if dv.Value is not None else None
    if isinstance(nodeid, ua.NodeId) and nodeid.NamespaceIndex == 0:
        with contextlib.suppress(ValueError):
            return ua.VariantType(nodeid.Identifier).name
    return str(nodeid)


async def _check_nodes(client: Client, nodes: list[TagNode], per_read: int) -> None:
    """Every node exists, has the declared data type and the access its direction needs.

    All problems of all stations are reported together (one start-up, one list to fix).
    """
    types: list[ua.DataValue] = []
    access: list[ua.DataValue] = []
    for part in _chunks([n.nodeid for n in nodes], per_read):
        types.extend(await client.uaclient.read_attributes(part, ua.AttributeIds.DataType))
        access.extend(await client.uaclient.read_attributes(part, ua.AttributeIds.UserAccessLevel))
    problems: list[str] = []
    for node, dtype, acc in zip(nodes, types, access, strict=True):
        if not dtype.StatusCode.is_good():
            code = dtype.StatusCode
            what = (
                "not found on the PLC"
                if code.value == ua.StatusCodes.BadNodeIdUnknown
                else "not a variable on the PLC"
            )
            problems.append(f"  {node.where()}: {what} ({code.name})")
            continue
        expected = ua.NodeId(node.vtype.value, 0)
        if dtype.Value is None or dtype.Value.Value != expected:
            problems.append(
                f"  {node.where()}: data type is {_type_name(dtype)}, expected {node.vtype.name}"
            )
        level = acc.Value.Value if acc.StatusCode.is_good() and acc.Value else 0
        needs = [("read", ua.AccessLevel.CurrentRead)]
        if TAG_SPEC[node.tag][0] is Direction.CELL_TO_PLC:
            needs.append(("write", ua.AccessLevel.CurrentWrite))
        for what, bit in needs:
            if not int(level or 0) & (1 << bit):
                problems.append(f"  {node.where()}: the PLC does not let us {what} it")
    if problems:
        raise TagMapError("PLC does not fit the tag map:\n" + "\n".join(problems))
