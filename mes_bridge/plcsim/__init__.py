"""A line PLC simulator: a real asyncua server that plays the PLC side of the handshake.

Per station it writes PartId and ProgramNo, increments JobSeq at the takt, waits for
ResultSeq == JobSeq, latches Result/ErrorCode/CycleTimeMs, writes ResultAckSeq, counts OK
and NOK parts and increments HeartbeatPLC every second. A station may take its parts from
another (``SimStation.upstream``): a casting then goes from station to station under one
part id, and part ids carry the run (``PlcSimulator``'s ``run_id``) so that no two runs
share one. Variables live at the node ids of
each station's tag map (by default ``s=<prefix>.<Tag>`` in ``urn:intern-cells:plcsim``).

The PLC's memory is kept apart from the OPC UA server, so the server can be stopped and
started again on the same port ("PLC restart") with its values retained, or with its
counters reset (a cold restart).

Modules: ``station`` (what one station is told and reports, and the state its program
keeps), ``program`` (the PLC program), ``server`` (the OPC UA server and its security),
``simulator`` (``PlcSimulator``, tying them together, and ``run_plcsim``). The names
below are the package's public face.
"""

from mes_bridge.plcsim.server import SimSecurity
from mes_bridge.plcsim.simulator import PlcSimulator, run_plcsim
from mes_bridge.plcsim.station import (
    DEFAULT_ENDPOINT,
    PLCSIM_NAMESPACE,
    Injection,
    JobTiming,
    LatchedResult,
    SimCounts,
    SimStation,
    default_tag_map,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "PLCSIM_NAMESPACE",
    "Injection",
    "JobTiming",
    "LatchedResult",
    "PlcSimulator",
    "SimCounts",
    "SimSecurity",
    "SimStation",
    "default_tag_map",
    "run_plcsim",
]
