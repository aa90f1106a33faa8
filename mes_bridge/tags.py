"""The handshake tags of one station and the map from each tag to a PLC node id.

A tag map comes from the line config, never from code, so that a plant PLC whose node ids
look like ``ns=3;s="DB_Cell01"."JobSeq"`` is usable without a code change.

Node id forms accepted for each tag:

* ``ns=<index>;<id>``: an absolute node id (index as the PLC reports it; fragile across
  PLC program downloads, so prefer the next form);
* ``nsu=<namespace uri>;<id>``: namespace given by URI, resolved to an index at connect time;
* ``<id>`` alone (``s=...``, ``i=...``, ``g=...``, ``b=...``): uses the map's ``namespace_uri``.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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

_ABSOLUTE = re.compile(r"^(ns|nsu)=[^;]+;[sigb]=.+$", re.DOTALL)
_RELATIVE = re.compile(r"^[sigb]=.+$", re.DOTALL)


class TagMap(BaseModel):
    """Node ids of one station's handshake tags.

    Either give every tag explicitly in ``nodes``, or give ``prefix`` and let missing tags
    default to ``s=<prefix>.<TagName>`` (the PLC simulator's layout). Explicit entries win.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace_uri: str | None = Field(
        default=None, description="Namespace URI for node ids given without ns=/nsu=."
    )
    prefix: str | None = Field(
        default=None, description="Default string-id prefix, e.g. 'Line1.ST10'."
    )
    nodes: dict[Tag, str] = Field(default_factory=dict)

    @field_validator("nodes")
    @classmethod
    def _node_ids_well_formed(cls, nodes: dict[Tag, str]) -> dict[Tag, str]:
        for tag, node in nodes.items():
            if not (_ABSOLUTE.match(node) or _RELATIVE.match(node)):
                raise ValueError(
                    f"tag {tag.value}: node id {node!r} is not of the form "
                    "'ns=<n>;s=<id>', 'nsu=<uri>;s=<id>' or 's=<id>' (also i=, g=, b=)"
                )
        return nodes

    @model_validator(mode="after")
    def _complete(self) -> TagMap:
        missing = [t.value for t in Tag if t not in self.nodes]
        if missing and self.prefix is None:
            raise ValueError(
                "tags without a node id and no 'prefix' to default them: " + ", ".join(missing)
            )
        relative = [t.value for t, n in self.resolved().items() if _RELATIVE.match(n)]
        if relative and self.namespace_uri is None:
            raise ValueError(
                "node ids without ns=/nsu= need 'namespace_uri' on the tag map: "
                + ", ".join(relative)
            )
        return self

    def resolved(self) -> dict[Tag, str]:
        """Every tag's node id string, defaults filled in from ``prefix``."""
        out: dict[Tag, str] = {}
        for tag in Tag:
            if tag in self.nodes:
                out[tag] = self.nodes[tag]
            else:
                out[tag] = f"s={self.prefix}.{tag.value}"
        return out
