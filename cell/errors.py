"""One hierarchy for every error of the cell that a person can act on.

Each message says what is wrong and what to do. The edges turn them into answers in one
place each: the CLI (``cell.cli.common.exit_for``: the message on stderr, exit code 1 for a
refused act, 2 otherwise) and the HTTP API (``cell.api.errors``: JSON with a status).
Anything else that escapes is a bug and is logged with its traceback.
"""

from __future__ import annotations


class CellError(Exception):
    """Base of the cell's errors a person can act on."""


class InvalidInput(CellError, ValueError):
    """A config file, a setting, a query or a request the cell cannot use."""


class Refused(CellError, ValueError):
    """An act (roster change, alert step) that is not allowed now; the message says why."""


class NotAuthorized(CellError, ValueError):
    """Credentials that do not identify an active user with the right to do this."""


class Unavailable(CellError, RuntimeError):
    """A server the cell needs (PostgreSQL, Redis) cannot be started or reached."""
