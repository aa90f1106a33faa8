"""A ``ChunkPolicy`` backed by any server speaking openpi's websocket protocol.

That is ``intern policy serve --protocol openpi``, or openpi's own policy server (pi0,
pi0.5 and others) configured for our keys, or any large model behind a server of that
kind. The maps are ``policy.openpi_schema``'s; the optional keys (the step, the
committed prefix, reset) are sent only to a server whose metadata lists them. With any
other server the committed prefix is written over the chunk's first rows, as the
``ChunkPolicy`` contract says, and ``reset()`` does nothing (the protocol has no reset).

The token goes in the opening handshake as ``Authorization: Bearer <token>``; use
``wss://`` (TLS, certificate checked) to send it beyond this machine. Each call has a
deadline (``timeout_s`` for the round trip); a broken connection is re-opened once per
call before ``PolicyConnectionError`` is raised.

The robot side imports this module: numpy, msgpack, websockets and the standard library,
no torch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from policy.base import (
    PolicyConnectionError,
    PolicyError,
    PolicyInputError,
    announced_run_settings,
)
from policy.openpi_codec import packb, unpackb
from policy.openpi_schema import RESET_KEY, actions_from_reply, request_message
from policy.wire import MAX_FRAME_BYTES, WireError
from robot.net import is_loopback
from robot.schema import ACTION_DIM, Observation

log = logging.getLogger(__name__)

DEFAULT_HORIZON = 30  # rows a chunk is planned for when the server's metadata names none
_INPUT_CODES = ("bad_request", "bad_dtype", "bad_array", "bad_message")


class OpenpiPolicy:
    """Infer chunks on the server at ``url`` (``ws://HOST:PORT`` or ``wss://...``).

    ``version``, ``horizon``, ``max_prefix``, ``replan_age`` and ``join_ticks`` come from
    the server's metadata (``version`` is ``openpi@HOST:PORT`` for a server that names
    none). ``last_timing`` holds the server's ``infer_ms`` of the last call and the
    client's ``rtt_ms``.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        self._url = url
        self._where = f"{parts.hostname}:{parts.port}"
        self._token = token
        self._timeout = timeout_s
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()  # owns the open connection
        self._extensions: frozenset[str] = frozenset()
        self.version = f"openpi@{self._where}"
        self.horizon = DEFAULT_HORIZON
        self.max_prefix = 0
        self.replan_age: int | None = None
        self.join_ticks: int | None = None
        self.last_timing: dict[str, float] = {}
        if token and parts.scheme == "ws" and not is_loopback(parts.hostname or ""):
            log.warning("the policy token goes to %s unencrypted: use wss://", self._where)

    def connect(self) -> OpenpiPolicy:
        """Open the connection and read the server's metadata."""
        self._call(None)
        return self

    def close(self) -> None:
        self._ws = None
        self._stack.close()

    def __enter__(self) -> OpenpiPolicy:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        msg = request_message(obs, prefix, self._extensions)
        t0 = time.perf_counter()
        reply = self._call(msg)
        try:
            actions = actions_from_reply(reply)
        except WireError as exc:
            raise PolicyConnectionError(f"policy server {self._where}: {exc}") from exc
        k = 0 if prefix is None else len(prefix)
        if k > len(actions):
            raise PolicyConnectionError(
                f"policy server {self._where} answered {len(actions)} actions for a prefix of {k}"
            )
        if k:  # committed actions are never rewritten, whatever the server did with them
            actions[:k] = np.asarray(prefix, dtype=np.float32).reshape(k, ACTION_DIM)
        timing = reply.get("server_timing")
        self.last_timing = {
            **{str(n): float(v) for n, v in dict(timing or {}).items()},
            "rtt_ms": (time.perf_counter() - t0) * 1e3,
        }
        self.version = str(reply.get("version", self.version))
        return actions

    def reset(self) -> None:
        if RESET_KEY in self._extensions:
            self._call({RESET_KEY: True})

    def _call(self, msg: dict[str, Any] | None) -> dict[str, Any]:
        """Send ``msg`` (None: only make sure the connection is open) and return the reply."""
        try:
            data = None if msg is None else packb(msg)
        except WireError as exc:
            raise PolicyInputError(str(exc)) from exc
        for attempt in (0, 1):
            try:
                return self._roundtrip(data)
            except PolicyError:  # the server answered: a retry would get the same answer
                raise
            except (OSError, WebSocketException, WireError) as exc:
                self.close()
                if isinstance(exc, InvalidStatus) or attempt == 1:
                    raise PolicyConnectionError(
                        f"policy server {self._url} failed: {exc}{_refusal(exc)}"
                    ) from exc
        raise AssertionError("unreachable")

    def _roundtrip(self, data: bytes | None) -> dict[str, Any]:
        if self._ws is None:
            self._open()
        assert self._ws is not None
        if data is None:
            return {}
        self._ws.send(data)
        reply = self._ws.recv(timeout=self._timeout)
        if isinstance(reply, str):
            code = reply.partition(":")[0]
            kind = PolicyInputError if code in _INPUT_CODES else PolicyError
            raise kind(f"policy server {self._where} refused the request: {reply}")
        return unpackb(reply)

    def _open(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
        # Entered as a context manager, as websockets asks; closed by ``close()``.
        ws = self._stack.enter_context(
            connect(
                self._url,
                additional_headers=headers,
                compression=None,
                max_size=MAX_FRAME_BYTES,
                open_timeout=self._timeout,
                close_timeout=self._timeout,
            )
        )
        try:
            first = ws.recv(timeout=self._timeout)
            if isinstance(first, str):  # an openpi server's text is an error message
                raise WireError("bad_reply", f"server sent text instead of metadata: {first}")
            meta = unpackb(first)
        except BaseException:
            self._stack.close()
            raise
        self._ws = ws
        self._read_metadata(meta)

    def _read_metadata(self, meta: dict[str, Any]) -> None:
        dim = meta.get("action_dim", ACTION_DIM)
        if dim != ACTION_DIM:
            self.close()
            raise PolicyConnectionError(
                f"policy server {self._where} speaks action_dim {dim}, this robot {ACTION_DIM}"
            )
        self.version = str(meta.get("version", self.version))
        self.horizon = int(meta.get("horizon") or meta.get("action_horizon") or DEFAULT_HORIZON)
        self.max_prefix = int(meta.get("max_prefix") or 0)
        run = announced_run_settings(meta, self._where)
        self.replan_age, self.join_ticks = run["replan_age"], run["join_ticks"]
        ext = meta.get("extensions") or []
        self._extensions = frozenset(str(e) for e in ext) if isinstance(ext, list) else frozenset()


def _refusal(exc: BaseException) -> str:
    """What a server that refused the handshake said, and what to do about a 401."""
    if not isinstance(exc, InvalidStatus):
        return ""
    body = (exc.response.body or b"").decode(errors="replace").strip()
    hint = (
        " (set INTERN_POLICY_TOKEN to the server's token)"
        if exc.response.status_code == 401
        else ""
    )
    return f": {body}{hint}" if body else hint
