"""How many nodes the PLC takes per call, and splitting our calls to fit.

A PLC announces its OperationLimits (nodes per read, per write, monitored items per
call); small PLCs allow a few hundred. ``read_limits`` reads them once per connection,
capped by our own option, and ``chunks`` cuts a list of nodes or values to such a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from asyncua import Client, ua

from mes_bridge.nodeids import node_id

T = TypeVar("T")

_LIMIT_NODES = (
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
    ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
)


@dataclass(frozen=True)
class Limits:
    """Nodes per call the PLC accepts (its OperationLimits, capped by our options)."""

    read: int
    write: int
    monitor: int


async def read_limits(client: Client, cap: int) -> Limits:
    """The PLC's OperationLimits (0 or unreadable: no limit), capped at ``cap``."""
    dvs = await client.uaclient.read_attributes(
        [node_id(i) for i in _LIMIT_NODES], ua.AttributeIds.Value
    )
    values = []
    for dv in dvs:
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        v = dv.Value.Value if good and dv.Value is not None else 0
        values.append(min(cap, int(v)) if isinstance(v, int) and v > 0 else cap)
    return Limits(*values)


def chunks(items: list[T], size: int) -> list[list[T]]:
    """``items`` cut into consecutive lists of at most ``size``, in order."""
    return [items[i : i + size] for i in range(0, len(items), size)]
