"""The tag maps' nodes on one PLC: resolved to concrete node ids and checked against it.

At every connect each station's tag references are resolved against the namespaces the
server reports then (``resolve_nodes``), and each node is checked for existence, data
type and the access its direction needs (``check_nodes``). Every problem of every
station is reported in one ``TagMapError`` naming station, tag and node, so one start-up
gives the whole list to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from asyncua import Client, ua

from mes_bridge.errors import TagMapError
from mes_bridge.nodeids import NodeRef, node_id
from mes_bridge.operation_limits import chunks
from mes_bridge.tags import TAG_SPEC, Direction, Tag


@dataclass(frozen=True)
class TagNode:
    """One station's tag as a concrete node on the connected PLC."""

    station_id: str
    tag: Tag
    text: str  # the node id as written in the tag map
    nodeid: ua.NodeId
    vtype: ua.VariantType

    def where(self) -> str:
        return f"station {self.station_id}, tag {self.tag.value}, node {self.text!r}"


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


def _good(dv: ua.DataValue) -> bool:
    """A value read with a good status (OPC UA: no status code means Good)."""
    return dv.StatusCode is None or dv.StatusCode.is_good()


def _type_name(dv: ua.DataValue) -> str:
    nodeid = dv.Value.Value if dv.Value is not None else None
    if (
        isinstance(nodeid, ua.NodeId)
        and nodeid.NamespaceIndex == 0
        and isinstance(nodeid.Identifier, int)
    ):
        with contextlib.suppress(ValueError):
            return ua.VariantType(nodeid.Identifier).name
    return str(nodeid)


async def check_nodes(client: Client, nodes: list[TagNode], per_read: int) -> None:
    """Every node exists, has the declared data type and the access its direction needs.

    All problems of all stations are reported together (one start-up, one list to fix).
    """
    types: list[ua.DataValue] = []
    access: list[ua.DataValue] = []
    for part in chunks([n.nodeid for n in nodes], per_read):
        types.extend(await client.uaclient.read_attributes(part, ua.AttributeIds.DataType))
        access.extend(await client.uaclient.read_attributes(part, ua.AttributeIds.UserAccessLevel))
    problems: list[str] = []
    for node, dtype, acc in zip(nodes, types, access, strict=True):
        code = dtype.StatusCode
        if code is not None and not code.is_good():
            what = (
                "not found on the PLC"
                if code.value == ua.StatusCodes.BadNodeIdUnknown
                else "not a variable on the PLC"
            )
            problems.append(f"  {node.where()}: {what} ({code.name})")
            continue
        expected = node_id(node.vtype.value, 0)
        if dtype.Value is None or dtype.Value.Value != expected:
            problems.append(
                f"  {node.where()}: data type is {_type_name(dtype)}, expected {node.vtype.name}"
            )
        level = acc.Value.Value if _good(acc) and acc.Value else 0
        needs = [("read", ua.AccessLevel.CurrentRead)]
        if TAG_SPEC[node.tag][0] is Direction.CELL_TO_PLC:
            needs.append(("write", ua.AccessLevel.CurrentWrite))
        for what, bit in needs:
            if not int(level or 0) & (1 << bit):
                problems.append(f"  {node.where()}: the PLC does not let us {what} it")
    if problems:
        raise TagMapError("PLC does not fit the tag map:\n" + "\n".join(problems))
