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
from mes_bridge.operation_limits import Limits, chunks, read_limits
from mes_bridge.security import ClientSecurity
from mes_bridge.tag_nodes import TagNode, check_nodes, resolve_nodes
from mes_bridge.tags import Tag

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
            limits = await read_limits(client, options.max_nodes_per_request)
            namespaces = await client.get_namespace_array()
            nodes = resolve_nodes(refs, namespaces)
            await check_nodes(client, list(nodes.values()), limits.read)
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
                for part in chunks(chunk, self.limits.monitor):
                    handles = await sub.subscribe_data_change(
                        [self.client.get_node(n.nodeid) for n in part],
                        sampling_interval=ua.Duration(0),
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
        for part in chunks(keys, self.limits.read):
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
        for part in chunks(targets, self.limits.write):
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
            return await self.client.uaclient.write_attributes(
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


async def _close_quietly(client: Client, timeout_s: float) -> None:
    # The connection may already be dead: closing is best effort and bounded in time.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), timeout_s)
