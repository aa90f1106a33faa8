"""API server settings (prefix ``INTERN_API_``); built where the server starts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from robot.net import is_loopback

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


class ApiSettings(BaseSettings):
    """Where the API listens and how it authenticates.

    Reads without a token (``anonymous_read``) are allowed only on a loopback bind; a
    server reachable from other hosts needs a token for every request, ``/metrics``,
    ``/docs`` and ``/openapi.json`` included. ``allowed_hosts`` are the names a request's
    ``Host`` header may carry (a page on another site that resolves its own name to this
    server, DNS rebinding, is refused); a bind to one address allows that address too.
    """

    model_config = SettingsConfigDict(env_prefix="INTERN_API_", extra="ignore")

    database_url: str = Field(description="the production record (set by the caller)")
    redis_url: str | None = Field(
        default=None, description="the broker: queue depth, liveness and the line's samples"
    )
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8470, ge=1, le=65535)
    anonymous_read: bool = Field(default=True, description="reads without a token (loopback)")
    token_ttl_hours: float = Field(default=12.0, gt=0, le=24 * 366)
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=LOOPBACK_NAMES,
        description="Host header names accepted, comma-separated ('*': any)",
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(h.strip().lower() for h in v.split(",") if h.strip())
        return v

    @model_validator(mode="after")
    def _safe_bind(self) -> ApiSettings:
        if not is_loopback(self.host) and self.anonymous_read:
            raise ValueError(
                f"binding {self.host} (not loopback) needs tokens for reads too: "
                "set INTERN_API_ANONYMOUS_READ=false"
            )
        if not self.allowed_hosts:
            raise ValueError("allowed_hosts is empty: no request could be answered")
        return self

    def host_allowed(self, name: str) -> bool:
        """Whether a request's ``Host`` name (without its port) may be answered."""
        name = name.lower().strip("[]")
        allowed = {h.strip("[]") for h in self.allowed_hosts}
        if "*" in allowed or name in allowed:
            return True
        return self.host not in WILDCARD_BINDS and name == self.host.lower().strip("[]")
