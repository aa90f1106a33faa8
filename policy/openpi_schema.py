"""Our observation and action schema (``robot.schema``) as openpi's websocket dictionaries.

The one place where the keys are named; the server (``policy.openpi_server``) and the
client (``policy.openpi_client``) both map through here. Arrays are encoded as
``policy.openpi_codec`` says.

Metadata, the server's first message on a connection::

    "version"       str     the policy's version (checkpoint content hash)
    "action_dim"    int     ACTION_DIM (10)
    "state_dim"     int     STATE_DIM (16)
    "image_size"    int     IMAGE_SIZE (64)
    "horizon"       int     rows of each action chunk
    "max_prefix"    int     longest ``action_prefix`` accepted
    "replan_age"    int?    ticks its chunks should run (``ExecConfig.replan_age``), or nil
    "join_ticks"    int?    ticks a boundary is spread over (``ExecConfig.join_ticks``), or nil
    "image_keys"    map     observation key -> camera name (below)
    "extensions"    list    which of the optional keys below the server understands

Observation, one map per request (the openpi client's ``infer(obs)``)::

    "observation/head_image"         uint8 [64, 64, 3]  camera "head"
    "observation/left_wrist_image"   uint8 [64, 64, 3]  camera "wrist_left"
    "observation/right_wrist_image"  uint8 [64, 64, 3]  camera "wrist_right"
    "observation/state"              float32 [16]       robot.schema.STATE_LAYOUT
    "prompt"                         str                the task's instruction

  optional, sent only to a server whose metadata lists them in ``"extensions"``:

    "observation/step"  int                  control tick of this observation
    "action_prefix"     float32 [k, 10]      actions already committed from that tick on;
                                             the chunk starts with them

  and the message ``{"reset": true}`` alone (extension ``"reset"``): forget the episode
  (answered ``{"reset": true}``).

Reply::

    "actions"        float32 [H, 10]  robot.schema's action layout, row i for tick step + i
    "server_timing"  map              "infer_ms" (this request), "prev_total_ms" (the
                                      previous request, send included)
    "policy_timing"  map              "infer_ms" (the model alone)
    "version"        str              as in the metadata

A server that cannot answer a request sends a text message saying why (openpi's
convention; the connection stays open for the next request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from policy.base import run_metadata
from policy.wire import WireError, WireObservation
from robot.chunk_policy import ChunkPolicy
from robot.schema import ACTION_DIM, IMAGE_SIZE, STATE_DIM, Observation

IMAGE_KEYS: dict[str, str] = {
    "observation/head_image": "head",
    "observation/left_wrist_image": "wrist_left",
    "observation/right_wrist_image": "wrist_right",
}
STATE_KEY = "observation/state"
PROMPT_KEY = "prompt"
STEP_KEY = "observation/step"
PREFIX_KEY = "action_prefix"
RESET_KEY = "reset"
ACTIONS_KEY = "actions"
EXTENSIONS = (STEP_KEY, PREFIX_KEY, RESET_KEY)
_KNOWN = {*IMAGE_KEYS, STATE_KEY, PROMPT_KEY, STEP_KEY, PREFIX_KEY}


@dataclass(frozen=True)
class OpenpiRequest:
    """A decoded request: an observation to answer (with its committed prefix), or a reset."""

    obs: Observation | None
    prefix: np.ndarray | None = None

    @property
    def is_reset(self) -> bool:
        return self.obs is None


def metadata(policy: ChunkPolicy) -> dict[str, Any]:
    """What a server sends first: the policy's version and the shapes it speaks."""
    return {
        "version": policy.version,
        "action_dim": ACTION_DIM,
        "state_dim": STATE_DIM,
        "image_size": IMAGE_SIZE,
        **run_metadata(policy),
        "image_keys": dict(IMAGE_KEYS),
        "extensions": list(EXTENSIONS),
    }


def request_message(
    obs: Observation, prefix: np.ndarray | None, extensions: frozenset[str]
) -> dict[str, Any]:
    """The client's map for ``obs``; the optional keys only where ``extensions`` has them."""
    msg: dict[str, Any] = {key: np.asarray(obs.images[cam]) for key, cam in IMAGE_KEYS.items()}
    msg[STATE_KEY] = np.asarray(obs.state, dtype=np.float32)
    msg[PROMPT_KEY] = obs.instruction
    if STEP_KEY in extensions:
        msg[STEP_KEY] = int(obs.step)
    if PREFIX_KEY in extensions and prefix is not None and len(prefix):
        msg[PREFIX_KEY] = np.asarray(prefix, dtype=np.float32)
    return msg


def parse_request(msg: dict[str, Any]) -> OpenpiRequest:
    """A decoded map as a request, checked against ``robot.schema``; ``WireError``
    ('bad_request') names the key that is off and the keys expected."""
    if msg.get(RESET_KEY) is True and set(msg) == {RESET_KEY}:
        return OpenpiRequest(obs=None)
    missing = [k for k in (*IMAGE_KEYS, STATE_KEY, PROMPT_KEY) if k not in msg]
    unknown = sorted(str(k) for k in set(msg) - _KNOWN)
    if missing or unknown:
        raise WireError(
            "bad_request",
            f"missing keys {missing}, unknown keys {unknown}; an observation has "
            f"{[*IMAGE_KEYS, STATE_KEY, PROMPT_KEY]} (optional {[STEP_KEY, PREFIX_KEY]})",
        )
    try:
        wire_obs = WireObservation(
            images={cam: msg[key] for key, cam in IMAGE_KEYS.items()},
            state=msg[STATE_KEY],
            instruction=msg[PROMPT_KEY],
            step=msg.get(STEP_KEY, 0),
        )
    except ValidationError as exc:
        raise WireError("bad_request", _explain(exc)) from None
    return OpenpiRequest(obs=wire_obs.to_observation(), prefix=_prefix(msg.get(PREFIX_KEY)))


def _prefix(value: object) -> np.ndarray | None:
    if value is None:
        return None
    if not (
        isinstance(value, np.ndarray)
        and value.ndim == 2
        and value.shape[1] == ACTION_DIM
        and value.dtype.kind == "f"
        and np.all(np.isfinite(value))
    ):
        raise WireError("bad_request", f"{PREFIX_KEY}: must be finite floats [k, {ACTION_DIM}]")
    return value.astype(np.float32)


def _explain(exc: ValidationError) -> str:
    names = {"images": "images (" + ", ".join(IMAGE_KEYS) + ")", "state": STATE_KEY}
    names |= {"instruction": PROMPT_KEY, "step": STEP_KEY}
    parts = []
    for e in exc.errors():
        where = names.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else "observation"
        parts.append(f"{where}: {str(e['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def reply_message(
    actions: np.ndarray, version: str, infer_ms: float, model_ms: float, prev_total_ms: float | None
) -> dict[str, Any]:
    """The server's answer to one observation."""
    timing: dict[str, float] = {"infer_ms": infer_ms}
    if prev_total_ms is not None:
        timing["prev_total_ms"] = prev_total_ms
    return {
        ACTIONS_KEY: np.asarray(actions, dtype=np.float32),
        "server_timing": timing,
        "policy_timing": {"infer_ms": model_ms},
        "version": version,
    }


def actions_from_reply(reply: dict[str, Any]) -> np.ndarray:
    """The chunk in a server's reply as float32 ``[H, ACTION_DIM]``; ``WireError``
    ('bad_reply') says what came instead."""
    actions = reply.get(ACTIONS_KEY)
    if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[0] < 1:
        got = actions.shape if isinstance(actions, np.ndarray) else type(actions).__name__
        raise WireError(
            "bad_reply", f"reply has no '{ACTIONS_KEY}' array [H, {ACTION_DIM}] (got {got})"
        )
    if actions.shape[1] != ACTION_DIM:
        raise WireError(
            "bad_reply",
            f"'{ACTIONS_KEY}' has {actions.shape[1]} values per row; this robot takes "
            f"{ACTION_DIM} (robot.schema): map them in the server's output transform",
        )
    return actions.astype(np.float32)
