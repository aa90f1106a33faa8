"""API server settings (prefix ``INTERN_API_``); built where the server starts."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from robot.net import is_loopback


class ApiSettings(BaseSettings):
    """Where the API listens and how it authenticates.

    Reads without a token (``anonymous_read``) are allowed only on a loopback bind; a
    server reachable from other hosts needs a token for every request.
    """

    model_config = SettingsConfigDict(env_prefix="INTERN_API_", extra="ignore")

    database_url: str = Field(description="the production record (set by the caller)")
    redis_url: str | None = Field(default=None, description="for queue depth in /metrics")
    host: str = Field(default="127.0.0.1", description="bind address")
    port: int = Field(default=8470, ge=1, le=65535)
    anonymous_read: bool = Field(default=True, description="reads without a token (loopback)")
    token_ttl_hours: float = Field(default=12.0, gt=0, le=24 * 366)

    @model_validator(mode="after")
    def _safe_bind(self) -> ApiSettings:
        if not is_loopback(self.host) and self.anonymous_read:
            raise ValueError(
                f"binding {self.host} (not loopback) needs tokens for reads too: "
                "set INTERN_API_ANONYMOUS_READ=false"
            )
        return self
