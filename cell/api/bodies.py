"""The base of every JSON request body: unknown fields refused, text PostgreSQL can store.

PostgreSQL text holds neither NUL characters nor lone UTF-16 surrogates (which JSON's
``\\ud800`` escapes can carry); a body with either is a 422 naming the field, not a
database error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def storable(value: str) -> str:
    """``value`` if PostgreSQL can store it as text, else ``ValueError`` saying why."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone surrogate escape)") from None
    return value


class Body(BaseModel):
    """A request body: extra fields are refused, every text field must be storable."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        return storable(v) if isinstance(v, str) else v
