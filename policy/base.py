"""The errors the policy package raises, the check of a committed prefix and of what a
policy says about running its chunks (``RUN_SETTINGS``).

Every policy here implements ``robot.chunk_policy.ChunkPolicy`` (defined on the robot
side, once): a local torch model, a remote policy server, a recorder and the
simulated-latency runner wrap one another and swap without code changes on the robot
side. This module imports neither torch nor anything heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
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


#: What a policy may say about running its chunks (``ExecConfig``'s fields of the same
#: names), each in ticks, with the least it may be: how old the running actions get before
#: the next chunk is requested, and over how many ticks the step into a new chunk is spread.
#: A checkpoint stores them in its config's ``extra``; both servers announce them.
RUN_SETTINGS = {"replan_age": 1, "join_ticks": 0}


def parse_run_settings(values: Mapping[str, Any]) -> dict[str, int | None]:
    """Each of ``RUN_SETTINGS`` as ``values`` (a checkpoint's ``extra``, a server's
    metadata) give it: None when absent, else a whole number of ticks up to
    ``MAX_REPLAN_AGE``; anything else raises ``ValueError`` saying so."""
    out: dict[str, int | None] = {}
    for name, low in RUN_SETTINGS.items():
        value, top = values.get(name), MAX_REPLAN_AGE
        text = str(value)
        if value is not None and (
            isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= top
        ):
            raise ValueError(f"{name} {value!r} is not a whole number of ticks {low}-{top}")
        out[name] = None if value is None else int(text)
    return out


def run_metadata(policy: object) -> dict[str, Any]:
    """What both policy servers tell a client about running ``policy``'s chunks: its
    ``horizon``, its longest ``max_prefix`` and its own ``RUN_SETTINGS`` (None: none)."""
    return {
        "horizon": int(getattr(policy, "horizon", 0)),
        "max_prefix": int(getattr(policy, "max_prefix", 0)),
        **{name: getattr(policy, name, None) for name in RUN_SETTINGS},
    }


def announced_run_settings(meta: dict[str, Any], where: str) -> dict[str, int | None]:
    """The ``RUN_SETTINGS`` a policy server's metadata announces (None for any it omits)."""
    try:
        return parse_run_settings(meta)
    except ValueError as exc:
        raise PolicyConnectionError(f"policy server {where}: {exc}") from exc
