"""How the long-running commands (``intern run``, ``intern worker``) log.

The cell's own events at INFO; the libraries that talk on every message (asyncua logs
each publish response at INFO, Celery each task) at WARNING unless DEBUG is asked for.
``text`` is for a person at a terminal; ``json`` is one JSON object per line (time,
level, logger, message, and the record's fields) for a plant's log collector.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TextIO

import typer


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        envvar="INTERN_LOG_FORMAT",
        case_sensitive=False,
        help="text for a terminal, json (one object per line) for a log collector.",
    ),
]

# Loggers of libraries that log per message; WARNING keeps a plant's logs to what matters.
CHATTY = ("asyncua", "celery", "kombu", "amqp")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# A LogRecord's own attributes: anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the fields given with ``extra=``, and ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def level_number(level: int | str) -> int:
    """``level`` as a number; ``ValueError`` for a name logging does not know."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR)")
    return numeric


def setup_logging(
    fmt: LogFormat = LogFormat.TEXT, level: int | str = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send every record at ``level`` or above to ``stream`` (default stderr) in ``fmt``,
    replacing the root logger's handlers, Python's warnings included; the chatty
    libraries at WARNING unless ``level`` is DEBUG."""
    numeric = level_number(level)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # a library's warning is a record in the same format
    chatty = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in CHATTY:
        logging.getLogger(name).setLevel(chatty)
