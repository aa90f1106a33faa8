"""The handshake tags of one station and the map from each tag to a PLC node id.

A tag map comes from the line config, never from code, so that a plant PLC is usable
without a code change. Node id forms accepted for each tag:

* ``nsu=<namespace uri>;<id>``: namespace given by URI, resolved to the server's index
  at every connect (the robust form: a PLC program download may renumber namespaces);
* ``ns=<index>;<id>``: an absolute index as the PLC reports it (fragile, see above);
* ``<id>`` alone: in the map's ``namespace_uri``;

where ``<id>`` is ``s=<string>`` (taken verbatim: quotes and dots are part of it),
``i=<number>``, ``g=<guid>`` or ``b=<base64>``. Tags not listed in ``nodes`` are
derived from ``pattern`` (``{tag}`` is replaced by the tag name) or from ``prefix``
(shorthand for the pattern ``<prefix>.{tag}``, the simulator's layout).

A Siemens S7-1500 whose data block ``DB_Cell01`` has members named like the tags, with
one member named differently, in the line config::

    tags:
      namespace_uri: http://www.siemens.com/simatic-s7-opcua
      pattern: '"DB_Cell01"."{tag}"'          # -> s="DB_Cell01"."JobSeq", ...
      nodes:
        HeartbeatPLC: 's="DB_Common"."Life"'  # one tag elsewhere
        # or any tag spelled out:  JobSeq: 'nsu=http://www.siemens.com/simatic-s7-opcua;s="DB_Cell01"."JobSeq"'

Data types the PLC must declare: UInt32 (S7 UDInt) for the sequence numbers, String for
PartId, Int16 (Int) for ProgramNo and Result, UInt16 (UInt) for the heartbeats, Int32
(DInt) for ErrorCode and CellState, UInt32 for CycleTimeMs, Boolean for Busy. The bridge
checks each node's existence, data type and access at connect and names the station,
tag and node of every mismatch (``TagMapError``).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mes_bridge.errors import TagMapError
from mes_bridge.nodeids import NodeRef, parse_node_ref


class Direction(StrEnum):
    """Who writes a tag."""

    PLC_TO_CELL = "plc_to_cell"
    CELL_TO_PLC = "cell_to_plc"


class Tag(StrEnum):
    """The handshake tags of ARCHITECTURE.md, by their canonical names."""

    JOB_SEQ = "JobSeq"
    PART_ID = "PartId"
    PROGRAM_NO = "ProgramNo"
    RESULT_ACK_SEQ = "ResultAckSeq"
    HEARTBEAT_PLC = "HeartbeatPLC"
    JOB_ACK_SEQ = "JobAckSeq"
    BUSY = "Busy"
    RESULT = "Result"
    ERROR_CODE = "ErrorCode"
    CYCLE_TIME_MS = "CycleTimeMs"
    RESULT_SEQ = "ResultSeq"
    HEARTBEAT_CELL = "HeartbeatCell"
    CELL_STATE = "CellState"


# Tag -> (direction, OPC UA built-in type name as in asyncua.ua.VariantType).
TAG_SPEC: dict[Tag, tuple[Direction, str]] = {
    Tag.JOB_SEQ: (Direction.PLC_TO_CELL, "UInt32"),
    Tag.PART_ID: (Direction.PLC_TO_CELL, "String"),
    Tag.PROGRAM_NO: (Direction.PLC_TO_CELL, "Int16"),
    Tag.RESULT_ACK_SEQ: (Direction.PLC_TO_CELL, "UInt32"),
    Tag.HEARTBEAT_PLC: (Direction.PLC_TO_CELL, "UInt16"),
    Tag.JOB_ACK_SEQ: (Direction.CELL_TO_PLC, "UInt32"),
    Tag.BUSY: (Direction.CELL_TO_PLC, "Boolean"),
    Tag.RESULT: (Direction.CELL_TO_PLC, "Int16"),
    Tag.ERROR_CODE: (Direction.CELL_TO_PLC, "Int32"),
    Tag.CYCLE_TIME_MS: (Direction.CELL_TO_PLC, "UInt32"),
    Tag.RESULT_SEQ: (Direction.CELL_TO_PLC, "UInt32"),
    Tag.HEARTBEAT_CELL: (Direction.CELL_TO_PLC, "UInt16"),
    Tag.CELL_STATE: (Direction.CELL_TO_PLC, "Int32"),
}


class TagMap(BaseModel):
    """Node ids of one station's handshake tags (see the module doc for the forms).

    Every tag gets a node: from ``nodes``, else from ``pattern``, else from ``prefix``.
    Validation parses every node id (an error names the tag and what is wrong) and
    refuses two tags on one node.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace_uri: str | None = Field(
        default=None, description="Namespace URI for node ids given without ns=/nsu=."
    )
    pattern: str | None = Field(
        default=None,
        description="String id of unlisted tags, '{tag}' standing for the "
        'tag name, e.g. \'"DB_Cell01"."{tag}"\'.',
    )
    prefix: str | None = Field(
        default=None, description="Default string-id prefix, e.g. 'Line1.ST10'."
    )
    nodes: dict[Tag, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> TagMap:
        if self.pattern is not None and self.prefix is not None:
            raise ValueError("give 'pattern' or 'prefix', not both")
        if self.pattern is not None and "{tag}" not in self.pattern:
            raise ValueError(f"pattern {self.pattern!r} has no '{{tag}}' in it")
        missing = [t.value for t in Tag if t not in self.nodes]
        if missing and self.pattern is None and self.prefix is None:
            raise ValueError(
                "tags without a node id and no 'pattern' or 'prefix' to derive "
                "them: " + ", ".join(missing)
            )
        problems = []
        for tag, text in self.resolved().items():
            try:
                parse_node_ref(text, self.namespace_uri)
            except TagMapError as exc:
                reason = str(exc).removeprefix(f"node {text!r}: ")
                problems.append(f"tag {tag.value}: node id {text!r}: {reason}")
        if problems:
            raise ValueError("; ".join(problems))
        counts = Counter(self.resolved().values())
        shared = [
            f"{', '.join(t.value for t, n in self.resolved().items() if n == node)} -> {node!r}"
            for node, c in counts.items()
            if c > 1
        ]
        if shared:
            raise ValueError("tags share a node: " + "; ".join(shared))
        return self

    def resolved(self) -> dict[Tag, str]:
        """Every tag's node id text, derived ones filled in."""
        out: dict[Tag, str] = {}
        for tag in Tag:
            if tag in self.nodes:
                out[tag] = self.nodes[tag]
            elif self.pattern is not None:
                out[tag] = "s=" + self.pattern.replace("{tag}", tag.value)
            else:
                out[tag] = f"s={self.prefix}.{tag.value}"
        return out

    def refs(self, station_id: str) -> dict[Tag, NodeRef]:
        """Every tag's parsed node id; ``TagMapError`` naming station, tag and node."""
        refs: dict[Tag, NodeRef] = {}
        for tag, text in self.resolved().items():
            try:
                refs[tag] = parse_node_ref(text, self.namespace_uri)
            except TagMapError as exc:
                raise TagMapError(f"station {station_id}, tag {tag.value}: {exc}") from None
        return refs
