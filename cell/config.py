"""The line config: the line, its stations (PLC endpoint, tag map, recipes) and its robots.

Loaded from YAML and validated with pydantic; a bad file fails with ``LineConfigError``
naming the file, the field and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cell.errors import InvalidInput
from mes_bridge.security import SecurityConfig
from mes_bridge.tags import TagMap
from robot.jobs import FastenerSpec, Task


class LineConfigError(InvalidInput):
    """A line config that cannot be used; the message names file, field and reason."""


PART_ID_MAX_LEN = 256
"""The longest PartId the cell takes at all; the record's part id columns are this wide."""

# ASCII control characters that structured part codes use as separators: GS between
# GS1 element strings, RS/GS/FS/US/EOT in ISO/IEC 15434 envelopes.
SEPARATORS = {"GS": "\x1d", "RS": "\x1e", "FS": "\x1c", "US": "\x1f", "EOT": "\x04"}
Separator = Literal["GS", "RS", "FS", "US", "EOT"]


class PartIdPolicy(BaseModel):
    """Which PartIds the line's stations take; a part id taken is kept verbatim.

    A PartId is taken when it has at most ``max_length`` characters, each printable (any
    script) or one of ``separators``. A station ends any other part's job NOK
    ``INVALID_PART_ID`` with ``refusal``'s reason; an empty one is ``EMPTY_PART_ID``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_length: int = Field(default=PART_ID_MAX_LEN, ge=1, le=PART_ID_MAX_LEN)
    separators: tuple[Separator, ...] = ("GS",)

    def refusal(self, part_id: str) -> str | None:
        """Why the line refuses ``part_id``, in words; None when it takes it."""
        if len(part_id) > self.max_length:
            return f"{len(part_id)} characters, more than the line's {self.max_length}"
        allowed = {SEPARATORS[name] for name in self.separators}
        for i, ch in enumerate(part_id, start=1):
            if not ch.isprintable() and ch not in allowed:
                also = ", ".join(self.separators) or "none"
                return (
                    f"character U+{ord(ch):04X} at position {i} is not printable "
                    f"(separators the line allows: {also})"
                )
        return None


class Recipe(BaseModel):
    """What a station does for one ``ProgramNo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    program_no: int = Field(ge=1, le=32767)
    name: str
    task: Task
    fasteners: tuple[FastenerSpec, ...] = ()
    takt_s: float = Field(default=76.0, gt=0)
    difficulty: float = Field(default=1.0, ge=0.0, le=5.0)
    on_nok: str = Field(default="continue", pattern="^(continue|retry_once|hold)$")

    @model_validator(mode="after")
    def _fasteners_fit_task(self) -> Recipe:
        if self.task is Task.MATERIAL_HANDLING and self.fasteners:
            raise ValueError("material_handling recipes take no fasteners")
        if self.task is not Task.MATERIAL_HANDLING and not self.fasteners:
            raise ValueError(f"a {self.task.value} recipe needs at least one fastener")
        for f in self.fasteners:
            if f.torque_min_nm >= f.torque_max_nm or f.angle_min_deg >= f.angle_max_deg:
                raise ValueError(f"fastener {f.side.value} {f.position}: min must be below max")
        return self


class Station(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    name: str = ""
    plc_endpoint: str = Field(pattern=r"^opc\.tcp://")
    security: SecurityConfig | None = Field(
        default=None, description="OPC UA security for the PLC endpoint; None: plain mode"
    )
    tags: TagMap
    recipes: tuple[Recipe, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_programs(self) -> Station:
        seen: set[int] = set()
        for r in self.recipes:
            if r.program_no in seen:
                raise ValueError(f"ProgramNo {r.program_no} appears twice")
            seen.add(r.program_no)
        return self

    def recipe(self, program_no: int) -> Recipe | None:
        return next((r for r in self.recipes if r.program_no == program_no), None)

    @property
    def tasks(self) -> set[Task]:
        return {r.task for r in self.recipes}


class RobotSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: str = ""
    skills: tuple[Task, ...] = Field(min_length=1)
    home_station: str | None = None


class LineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line: str
    stations: tuple[Station, ...] = Field(min_length=1)
    robots: tuple[RobotSpec, ...] = ()
    part_id: PartIdPolicy = Field(
        default_factory=PartIdPolicy, description="which PartIds the stations take"
    )
    timezone: str = Field(
        default="UTC",
        description="the line's IANA time zone: times given without an offset are read in it",
    )

    @model_validator(mode="after")
    def _references(self) -> LineConfig:
        station_ids = [s.id for s in self.stations]
        robot_ids = [r.id for r in self.robots]
        for kind, ids in (("station", station_ids), ("robot", robot_ids)):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind} ids appear twice: {', '.join(dupes)}")
        by_endpoint: dict[str, SecurityConfig | None] = {}
        for st in self.stations:
            if st.plc_endpoint in by_endpoint and by_endpoint[st.plc_endpoint] != st.security:
                raise ValueError(
                    f"station {st.id}: stations on {st.plc_endpoint} share one "
                    "OPC UA session and must give the same 'security'"
                )
            by_endpoint.setdefault(st.plc_endpoint, st.security)
        for r in self.robots:
            if r.home_station is None:
                continue
            if r.home_station not in station_ids:
                raise ValueError(f"robot {r.id}: home_station {r.home_station!r} is not a station")
            station = self.station(r.home_station)
            lacking = station.tasks - set(r.skills)
            if lacking:
                raise ValueError(
                    f"robot {r.id} has no skill for {', '.join(sorted(lacking))} "
                    f"needed at its home station {station.id}"
                )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return v

    def station(self, station_id: str) -> Station:
        for s in self.stations:
            if s.id == station_id:
                return s
        raise KeyError(station_id)

    def robot(self, robot_id: str) -> RobotSpec:
        for r in self.robots:
            if r.id == robot_id:
                return r
        raise KeyError(robot_id)


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location with station/robot ids instead of list indices."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and item < len(node):
            elem = node[item]
            label = elem.get("id") if isinstance(elem, Mapping) else None
            parts.append(f"[{label}]" if label else f"[{item}]")
            node = elem
        else:
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts)


def parse_line_config(data: Any, source: str = "<line config>") -> LineConfig:
    """Validate already-parsed config data; errors name ``source``, the field and the reason."""
    try:
        return LineConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid line config"]
        for err in exc.errors():
            where = _field_path(tuple(err["loc"]), data) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise LineConfigError("\n".join(lines)) from None


def load_line_config(path: Path) -> LineConfig:
    """Read and validate a YAML line config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LineConfigError(f"{path}: cannot read line config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LineConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LineConfigError(f"{path}: a line config is a mapping with 'line' and 'stations'")
    return parse_line_config(data, str(path))


def sample_config_path() -> Path:
    """The shipped sample config of a simulated die-casting line."""
    return Path(__file__).parent / "configs" / "sample_line.yaml"
