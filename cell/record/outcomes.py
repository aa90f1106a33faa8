"""Words of the record that people type on a command line or send to the API, kept free
of the database layer so that a command's options can name them cheaply."""

from __future__ import annotations

from enum import StrEnum


class Rework(StrEnum):
    """What a technician did to a NOK part."""

    REWORKED_OK = "reworked_ok"
    SCRAPPED = "scrapped"
