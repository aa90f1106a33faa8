"""Injected inference latency: fixed, jittered, heavy-tailed, or with spikes.

Used to exercise the asynchronous executor and its watchdog deterministically on a CPU:
the same spec and seed give the same sequence of delays. A spec is written as a short
string (CLI and config files) and validated:

* ``fixed:80`` — always 80 ms;
* ``jitter:80,20`` — uniform in [60, 100] ms;
* ``heavy:80,1.5`` — 80 ms times a Pareto factor with tail index 1.5 (median ~1.6x);
  capped at ``cap_ms`` (default 20x the base);
* ``spike:80,0.02,600`` — 80 ms, and with probability 0.02 a 600 ms stall.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["fixed", "jitter", "heavy", "spike"]


class LatencySpec(BaseModel):
    """A latency distribution, in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind = "fixed"
    base_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    jitter_ms: float = Field(default=0.0, ge=0.0)
    tail_alpha: float = Field(default=1.5, gt=0.5)
    spike_p: float = Field(default=0.0, ge=0.0, le=1.0)
    spike_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    cap_ms: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> LatencySpec:
        if self.jitter_ms > self.base_ms:
            raise ValueError("jitter_ms must not exceed base_ms (latency cannot go negative)")
        return self

    @classmethod
    def parse(cls, text: str) -> LatencySpec:
        """Parse ``kind:a,b,c`` (see module doc); raises ``ValueError`` naming the fix."""
        kind, _, args = text.strip().partition(":")
        try:
            nums = [float(x) for x in args.split(",") if x.strip()] if args else []
        except ValueError:
            raise ValueError(f"latency {text!r}: arguments must be numbers") from None
        fields = {
            "fixed": ["base_ms"],
            "jitter": ["base_ms", "jitter_ms"],
            "heavy": ["base_ms", "tail_alpha"],
            "spike": ["base_ms", "spike_p", "spike_ms"],
        }
        if kind not in fields or len(nums) != len(fields[kind]):
            raise ValueError(
                f"latency {text!r} not understood; use fixed:MS, jitter:MS,JITTER_MS, "
                "heavy:MS,ALPHA or spike:MS,P,SPIKE_MS"
            )
        try:
            return cls.model_validate({"kind": kind, **dict(zip(fields[kind], nums, strict=True))})
        except ValidationError as exc:
            raise ValueError(f"latency {text!r}: {exc.errors()[0]['msg']}") from None


class LatencyInjector:
    """Draws delays (seconds) from ``spec``; deterministic for a given ``seed``."""

    def __init__(self, spec: LatencySpec | str, *, seed: int = 0) -> None:
        self.spec = LatencySpec.parse(spec) if isinstance(spec, str) else spec
        self._rng = np.random.default_rng(seed)

    def sample_s(self) -> float:
        s = self.spec
        if s.kind == "fixed":
            ms = s.base_ms
        elif s.kind == "jitter":
            ms = s.base_ms + self._rng.uniform(-s.jitter_ms, s.jitter_ms)
        elif s.kind == "heavy":
            ms = s.base_ms * (1.0 + float(self._rng.pareto(s.tail_alpha)))
            ms = min(ms, s.cap_ms if s.cap_ms is not None else 20.0 * max(s.base_ms, 1.0))
        else:
            ms = s.spike_ms if self._rng.random() < s.spike_p else s.base_ms
        return max(ms, 0.0) / 1e3

    def sample_ticks(self, dt: float) -> int:
        """A delay expressed in control ticks of length ``dt`` (rounded up)."""
        return math.ceil(self.sample_s() / dt - 1e-9)
