"""The PLC simulator for a line config: one simulated PLC serving every station.

Castings flow through the stations in the order the line config lists them: new parts
enter at the first station, and each station takes the parts that left the one before
it, under the same part id.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse, urlunparse

from rich.console import Console

from cell.config import LineConfig
from mes_bridge.plcsim import PlcSimulator, SimStation, run_plcsim

log = logging.getLogger(__name__)


def with_endpoint(line: LineConfig, endpoint: str) -> LineConfig:
    """The same line with every station's PLC endpoint replaced by ``endpoint``."""
    stations = tuple(st.model_copy(update={"plc_endpoint": endpoint}) for st in line.stations)
    return line.model_copy(update={"stations": stations})


def sim_stations(
    line: LineConfig, *, speed: float | None, parts: int | None
) -> dict[str, SimStation]:
    """How the simulator plays each station of ``line`` (all recipes' ProgramNos in turn).

    Parts arrive at the station's takt (its first recipe's) divided by ``speed``; with
    ``speed`` None, the next part comes as soon as the last result is latched. A station
    after the first takes its parts from the station listed before it.
    """
    upstream = [None, *(st.id for st in line.stations[:-1])]
    return {
        st.id: SimStation(
            tags=st.tags,
            takt_s=st.recipes[0].takt_s / speed if speed else 0.0,
            parts=parts,
            program_nos=tuple(r.program_no for r in st.recipes),
            upstream=up,
        )
        for st, up in zip(line.stations, upstream, strict=True)
    }


def single_endpoint(line: LineConfig) -> str:
    endpoints = {st.plc_endpoint for st in line.stations}
    if len(endpoints) != 1:
        raise ValueError(
            "the PLC simulator plays one PLC; this line's stations name "
            f"{len(endpoints)} endpoints: {', '.join(sorted(endpoints))}"
        )
    return endpoints.pop()


def line_simulator(line: LineConfig, *, speed: float | None, parts: int | None) -> PlcSimulator:
    """A simulator (async context manager) for every station of ``line`` at its endpoint."""
    return PlcSimulator(sim_stations(line, speed=speed, parts=parts), single_endpoint(line))


async def serve_plcsim(
    line: LineConfig, *, host: str, port: int, speed: float | None, parts: int, stop: asyncio.Event
) -> None:
    """Serve the line's simulated PLC until ``stop`` is set or every station did ``parts``."""
    endpoint = urlparse(single_endpoint(line))
    netloc = f"{host or endpoint.hostname}:{port or endpoint.port}"
    url = urlunparse(endpoint._replace(netloc=netloc))
    console = Console()
    counts = await run_plcsim(
        sim_stations(line, speed=speed, parts=parts or None),
        url,
        stop=stop,
        on_ready=lambda real: console.print(f"PLC simulator for {line.line} at {real}"),
        report_every_s=10.0,
    )
    for sid, c in counts.items():
        console.print(f"{sid}: {c.requested} requested, {c.ok} OK, {c.nok} NOK")
