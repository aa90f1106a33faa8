"""The errors the policy package raises, the check of a committed prefix and of a
policy's own replan age (how long its chunks should run, ``ExecConfig.replan_age``).

Every policy here implements ``robot.chunk_policy.ChunkPolicy`` (defined on the robot
side, once): a local torch model, a remote policy server, a recorder and the
simulated-latency runner wrap one another and swap without code changes on the robot
side. This module imports neither torch nor anything heavy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot.schema import ACTION_DIM


class PolicyError(RuntimeError):
    """A policy could not produce a chunk; the message says why and what to do."""


class PolicyInputError(PolicyError, ValueError):
    """An observation or prefix that does not match the schema."""


class PolicyConnectionError(PolicyError, ConnectionError):
    """A remote policy server could not be reached or broke the protocol."""


class CheckpointError(PolicyError):
    """A checkpoint is missing, corrupt or does not match its recorded version."""


def check_prefix(prefix: np.ndarray | None, max_len: int) -> np.ndarray:
    """Return ``prefix`` as a float32 ``(k, ACTION_DIM)`` array (k may be 0) or raise.

    ``max_len`` is the longest prefix the policy accepts (its chunk horizon or its trained
    maximum delay).
    """
    if prefix is None:
        return np.zeros((0, ACTION_DIM), dtype=np.float32)
    p = np.asarray(prefix)
    if p.ndim != 2 or p.shape[1] != ACTION_DIM:
        raise PolicyInputError(f"prefix must have shape (k, {ACTION_DIM}), got {tuple(p.shape)}")
    if p.shape[0] > max_len:
        raise PolicyInputError(f"prefix has {p.shape[0]} actions; at most {max_len} accepted")
    if not np.issubdtype(p.dtype, np.number) or not np.all(np.isfinite(p)):
        raise PolicyInputError("prefix must hold finite numbers")
    return p.astype(np.float32, copy=True)


#: The oldest a replan age may be: a chunk is 30 rows, the last 29 ticks after its look.
MAX_REPLAN_AGE = 29


def parse_replan_age(value: object) -> int | None:
    """A policy's own replan age (``ExecConfig.replan_age``) as a checkpoint stores it or a
    server announces it: None when absent, else a whole number of ticks from 1 to
    ``MAX_REPLAN_AGE``; anything else raises ``ValueError`` saying so."""
    if value is None:
        return None
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_REPLAN_AGE:
        raise ValueError(f"replan_age {value!r} is not a whole number of ticks 1-{MAX_REPLAN_AGE}")
    return int(text)


def run_metadata(policy: object) -> dict[str, Any]:
    """What both policy servers tell a client about running ``policy``'s chunks: its
    ``horizon``, its longest ``max_prefix`` and its own ``replan_age`` (None: none)."""
    return {
        "horizon": int(getattr(policy, "horizon", 0)),
        "max_prefix": int(getattr(policy, "max_prefix", 0)),
        "replan_age": getattr(policy, "replan_age", None),
    }


def announced_replan_age(meta: dict[str, Any], where: str) -> int | None:
    """The replan age a policy server's metadata announces (None: it names none)."""
    try:
        return parse_replan_age(meta.get("replan_age"))
    except ValueError as exc:
        raise PolicyConnectionError(f"policy server {where}: {exc}") from exc
