"""A ``ChunkPolicy`` backed by a remote policy server (see ``policy.wire``).

The robot side imports this module only: numpy, msgpack and the standard library, no
torch, so a GPU box serving a large model plugs in without changing the robot's code.
Each attempt has a deadline (``timeout_s`` for the whole round trip); a broken connection
is re-opened once per call before ``PolicyConnectionError`` is raised. Every connection
opens with a ``hello`` carrying the token (the server reads nothing larger before it).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import numpy as np

from policy.base import (
    PolicyConnectionError,
    PolicyError,
    PolicyInputError,
    announced_run_settings,
)
from policy.wire import HEADER, WireError, frame, frame_length, observation_message, unpack
from robot.schema import ACTION_DIM, Observation


class RemotePolicy:
    """Infer chunks on a policy server at ``host:port``.

    ``last_timing`` holds the server's ``model_ms`` and ``total_ms`` of the last call plus
    the client's round trip ``rtt_ms``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._addr = (host, port)
        self._token = token
        self._timeout = timeout_s
        self._sock: socket.socket | None = None
        self.version = "unknown"
        self.horizon = 0
        self.max_prefix = 0
        self.replan_age: int | None = None
        self.join_ticks: int | None = None
        self.last_timing: dict[str, float] = {}

    def connect(self) -> RemotePolicy:
        """Open the connection and read the server's metadata (``version``, ``horizon``,
        ``max_prefix``, ``replan_age``, ``join_ticks``)."""
        info = self._call(self._hello())
        self.version = str(info["version"])
        self.horizon = int(info.get("horizon", 0))
        self.max_prefix = int(info.get("max_prefix", 0))
        run = announced_run_settings(info, f"{self._addr[0]}:{self._addr[1]}")
        self.replan_age, self.join_ticks = run["replan_age"], run["join_ticks"]
        if int(info.get("action_dim", ACTION_DIM)) != ACTION_DIM:
            raise PolicyConnectionError(
                f"server speaks action_dim {info.get('action_dim')}, this robot {ACTION_DIM}"
            )
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> RemotePolicy:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        msg: dict[str, Any] = {"op": "infer", "obs": observation_message(obs)}
        if prefix is not None:
            msg["prefix"] = np.asarray(prefix, dtype=np.float32)
        t0 = time.perf_counter()
        reply = self._call(msg)
        actions = reply.get("actions")
        if (
            not isinstance(actions, np.ndarray)
            or actions.ndim != 2
            or (actions.shape[1] != ACTION_DIM)
        ):
            raise PolicyConnectionError("server answered without a valid action chunk")
        self.version = str(reply.get("version", self.version))
        self.last_timing = {
            **{k: float(v) for k, v in dict(reply.get("timing", {})).items()},
            "rtt_ms": (time.perf_counter() - t0) * 1e3,
        }
        return actions.astype(np.float32, copy=False)

    def reset(self) -> None:
        self._call({"op": "reset"})

    def _hello(self) -> dict[str, Any]:
        return {"op": "hello", "token": self._token}

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        try:
            data = frame(msg)
        except WireError as exc:
            raise PolicyInputError(str(exc)) from exc
        for attempt in (0, 1):
            try:
                reply = self._roundtrip(data, opens=msg["op"] == "hello")
                break
            except (OSError, WireError) as exc:
                self.close()
                if attempt == 1:
                    raise PolicyConnectionError(
                        f"policy server {self._addr[0]}:{self._addr[1]} failed: {exc}"
                    ) from exc
        try:
            return _checked(reply)
        except PolicyError:
            if msg["op"] == "hello":  # a refused hello: the server has closed the connection
                self.close()
            raise

    def _roundtrip(self, data: bytes, *, opens: bool) -> dict[str, Any]:
        """Send one frame and read its reply; a fresh connection is opened with a hello
        first unless ``data`` is that hello (``opens``)."""
        deadline = time.monotonic() + self._timeout
        if self._sock is None:
            self._sock = socket.create_connection(self._addr, timeout=self._timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not opens:
                try:
                    _checked(self._exchange(frame(self._hello()), deadline))
                except PolicyError:
                    self.close()
                    raise
        return self._exchange(data, deadline)

    def _exchange(self, data: bytes, deadline: float) -> dict[str, Any]:
        assert self._sock is not None
        self._sock.settimeout(max(deadline - time.monotonic(), 1e-3))
        self._sock.sendall(data)
        n = frame_length(self._recv(HEADER.size, deadline))
        return unpack(self._recv(n, deadline))

    def _recv(self, n: int, deadline: float) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete reply within {self._timeout} s")
            self._sock.settimeout(left)
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        return bytes(buf)


def _checked(reply: dict[str, Any]) -> dict[str, Any]:
    """``reply`` if it is a success, else the policy error it carries."""
    if not reply.get("ok"):
        err = reply.get("error") or {}
        code, text = err.get("code", "error"), err.get("message", "")
        if code in ("bad_request", "bad_dtype", "bad_array"):
            raise PolicyInputError(f"server refused the request ({code}): {text}")
        raise PolicyError(f"policy server error ({code}): {text}")
    return reply
