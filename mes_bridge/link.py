"""One live OPC UA connection to a PLC: nodes resolved and checked, subscriptions made.

A ``Link`` is built for every (re)connect and thrown away when the connection is lost;
the session above it keeps the handshake state. Data changes are handed to a sink (an
``asyncio.Queue.put_nowait``) straight from the subscription handler: nothing slow ever
runs inside a data-change callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from asyncua import Client, ua
from asyncua.crypto import security_policies
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mes_bridge.errors import PlcWriteError, TagMapError
from mes_bridge.handshake import WriteStep
from mes_bridge.nodeids import NodeRef
from mes_bridge.tags import TAG_SPEC, Direction, Tag

log = logging.getLogger(__name__)

# PLC->cell tags that drive the handshake; HeartbeatPLC goes in its own, slower subscription.
HANDSHAKE_INPUTS = (Tag.PART_ID, Tag.PROGRAM_NO, Tag.RESULT_ACK_SEQ, Tag.JOB_SEQ)

# Errors that mean "this connection is no good": the session reconnects and resyncs.
LINK_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, OSError, asyncio.TimeoutError, ua.UaError,
)


class ConnectOptions(BaseModel):
    """How to reach the PLC. Plain mode is for the simulator and tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=4.0, gt=0, description="per request")
    watchdog_s: float = Field(default=1.0, gt=0, description="liveness probe period")
    session_timeout_s: float = Field(default=60.0, gt=0)
    publishing_interval_ms: float = Field(default=50.0, gt=0)
    heartbeat_interval_ms: float = Field(default=500.0, gt=0)
    max_items_per_subscription: int = Field(default=1000, ge=1)
    application_uri: str = "urn:intern-cells:bridge"
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: str | None = None
    server_certificate: Path | None = None
    username: str | None = None
    password: str | None = None

    @model_validator(mode="after")
    def _security_consistent(self) -> ConnectOptions:
        plain = (self.security_policy == "None", self.security_mode == "None")
        if plain[0] != plain[1]:
            raise ValueError("security_policy and security_mode must both be 'None' or neither")
        if not plain[0] and (self.certificate is None or self.private_key is None):
            raise ValueError(
                f"security mode {self.security_mode} needs 'certificate' and 'private_key'")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self


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
            self._link.on_lost(self._link.generation,
                               ConnectionError(f"subscription status {code.name}"))


class Link:
    def __init__(self, client: Client, nodes: dict[tuple[str, Tag], TagNode], generation: int,
                 sink: Callable[[DataChange], None],
                 on_lost: Callable[[int, BaseException], None]) -> None:
        self.client = client
        self.nodes = nodes
        self.by_nodeid = {n.nodeid: key for key, n in nodes.items()}
        self.generation = generation
        self.sink = sink
        self.on_lost = on_lost

    @classmethod
    async def open(
        cls, endpoint: str, refs: Mapping[str, Mapping[Tag, NodeRef]], options: ConnectOptions,
        *, generation: int, sink: Callable[[DataChange], None],
        on_lost: Callable[[int, BaseException], None],
    ) -> Link:
        """Connect, resolve namespace URIs, check every node, subscribe.

        Raises ``TagMapError`` if the PLC does not fit the tag maps, or one of
        ``LINK_ERRORS`` if it cannot be reached.
        """
        client = await _connect(endpoint, options)
        try:
            namespaces = await client.get_namespace_array()
            nodes = _resolve(refs, namespaces)
            await _check_nodes(client, list(nodes.values()))
            link = cls(client, nodes, generation, sink, on_lost)

            async def lost(exc: Exception) -> None:
                on_lost(generation, exc)

            client.connection_lost_callback = lost
            await link._subscribe(options)
            return link
        except BaseException:
            await _close_quietly(client, options.timeout_s)
            raise

    async def _subscribe(self, options: ConnectOptions) -> None:
        handler = _Handler(self)
        groups = (
            (options.publishing_interval_ms,
             [n for n in self.nodes.values() if n.tag in HANDSHAKE_INPUTS]),
            (options.heartbeat_interval_ms,
             [n for n in self.nodes.values() if n.tag is Tag.HEARTBEAT_PLC]),
        )
        size = options.max_items_per_subscription
        for interval, items in groups:
            for start in range(0, len(items), size):
                chunk = items[start:start + size]
                sub = await self.client.create_subscription(interval, handler)
                handles = await sub.subscribe_data_change(
                    [self.client.get_node(n.nodeid) for n in chunk], sampling_interval=0)
                bad = [f"  {n.where()}: cannot monitor ({h.name})"
                       for n, h in zip(chunk, handles, strict=True)
                       if isinstance(h, ua.StatusCode)]
                if bad:
                    raise TagMapError("PLC refused monitored items:\n" + "\n".join(bad))

    async def read_all(self) -> dict[str, dict[Tag, object]]:
        """Every mapped tag's value in one read; None where the status is bad."""
        keys = list(self.nodes)
        dvs = await self.client.uaclient.read_attributes(
            [self.nodes[k].nodeid for k in keys], ua.AttributeIds.Value)
        out: dict[str, dict[Tag, object]] = {}
        for (station, tag), dv in zip(keys, dvs, strict=True):
            good = dv.StatusCode is None or dv.StatusCode.is_good()
            out.setdefault(station, {})[tag] = dv.Value.Value if good and dv.Value else None
        return out

    async def write(self, items: Iterable[tuple[str, Tag, object]]) -> None:
        """One write request, values typed as the tags declare, applied in order.

        Raises ``PlcWriteError`` naming station, tag and node for a refused value.
        """
        targets = [(self.nodes[(sid, tag)], value) for sid, tag, value in items]
        if not targets:
            return
        dvs = [ua.DataValue(ua.Variant(value, node.vtype)) for node, value in targets]
        results = await self.client.uaclient.write_attributes(
            [node.nodeid for node, _ in targets], dvs, ua.AttributeIds.Value)
        bad = [f"  {node.where()}: writing {value!r} refused ({status.name})"
               for (node, value), status in zip(targets, results, strict=True)
               if not status.is_good()]
        if bad:
            raise PlcWriteError("PLC refused a write:\n" + "\n".join(bad))

    async def write_steps(self, station_id: str, steps: Iterable[WriteStep]) -> None:
        """Handshake steps in order, each request only after the previous succeeded."""
        for step in steps:
            await self.write((station_id, tag, value) for tag, value in step)

    async def close(self, timeout_s: float) -> None:
        await _close_quietly(self.client, timeout_s)


async def _connect(endpoint: str, options: ConnectOptions) -> Client:
    client = Client(endpoint, timeout=options.timeout_s, watchdog_intervall=options.watchdog_s)
    client.application_uri = options.application_uri
    client.name = client.description = "intern-cells bridge"
    client.session_timeout = int(options.session_timeout_s * 1000)
    if options.security_policy != "None":
        policy = getattr(security_policies, f"SecurityPolicy{options.security_policy}")
        await client.set_security(
            policy,
            certificate=str(options.certificate),
            private_key=str(options.private_key),
            private_key_password=options.private_key_password,
            server_certificate=(str(options.server_certificate)
                                if options.server_certificate else None),
            mode=getattr(ua.MessageSecurityMode, options.security_mode),
        )
    if options.username is not None:
        client.set_user(options.username)
        client.set_password(options.password or "")
    await client.connect(auto_reconnect=False)
    return client


async def _close_quietly(client: Client, timeout_s: float) -> None:
    # The connection may already be dead: closing is best effort and bounded in time.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), timeout_s)


def _resolve(refs: Mapping[str, Mapping[Tag, NodeRef]],
             namespaces: list[str]) -> dict[tuple[str, Tag], TagNode]:
    nodes: dict[tuple[str, Tag], TagNode] = {}
    problems: list[str] = []
    for station, tags in refs.items():
        for tag, ref in tags.items():
            try:
                nodeid = ref.resolve(namespaces)
            except TagMapError as exc:
                problems.append(f"  station {station}, tag {tag.value}: {exc}")
                continue
            vtype = ua.VariantType[TAG_SPEC[tag][1]]
            nodes[(station, tag)] = TagNode(station, tag, ref.text, nodeid, vtype)
    if problems:
        raise TagMapError("tag map does not resolve on the PLC:\n" + "\n".join(problems))
    return nodes


def _type_name(dv: ua.DataValue) -> str:
    nodeid = dv.Value.Value if dv.Value is not None else None
    if isinstance(nodeid, ua.NodeId) and nodeid.NamespaceIndex == 0:
        with contextlib.suppress(ValueError):
            return ua.VariantType(nodeid.Identifier).name
    return str(nodeid)


async def _check_nodes(client: Client, nodes: list[TagNode]) -> None:
    """Every node exists, has the declared data type and the access its direction needs."""
    ids = [n.nodeid for n in nodes]
    types = await client.uaclient.read_attributes(ids, ua.AttributeIds.DataType)
    access = await client.uaclient.read_attributes(ids, ua.AttributeIds.UserAccessLevel)
    problems: list[str] = []
    for node, dtype, acc in zip(nodes, types, access, strict=True):
        if not dtype.StatusCode.is_good():
            problems.append(f"  {node.where()}: not found on the PLC ({dtype.StatusCode.name})")
            continue
        expected = ua.NodeId(node.vtype.value, 0)
        if dtype.Value is None or dtype.Value.Value != expected:
            problems.append(f"  {node.where()}: data type is {_type_name(dtype)}, "
                            f"expected {node.vtype.name}")
        level = acc.Value.Value if acc.StatusCode.is_good() and acc.Value else 0
        needs = [("read", ua.AccessLevel.CurrentRead)]
        if TAG_SPEC[node.tag][0] is Direction.CELL_TO_PLC:
            needs.append(("write", ua.AccessLevel.CurrentWrite))
        for what, bit in needs:
            if not int(level or 0) & (1 << bit):
                problems.append(f"  {node.where()}: the PLC does not let us {what} it")
    if problems:
        raise TagMapError("PLC does not fit the tag map:\n" + "\n".join(problems))
