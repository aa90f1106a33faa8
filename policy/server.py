"""The policy server: answers observations with action chunks over the ``policy.wire`` format.

It serves any ``ChunkPolicy`` (usually the local torch model, loaded by the CLI) and never
imports torch itself. Inference runs in one worker thread, one request at a time, so the
event loop keeps answering ``hello`` and refusing bad frames while the model computes.

Security: binds loopback unless told otherwise, and refuses to start on any other
address without a token; when a token is set every request must carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policy.base import PolicyError
from policy.wire import (
    HEADER,
    WireError,
    WireRequest,
    error_reply,
    frame,
    frame_length,
    parse_request,
    unpack,
)
from robot.chunk_policy import ChunkPolicy
from robot.net import is_loopback
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM

log = logging.getLogger(__name__)


class ServerConfig(BaseModel):
    """Where and how the server listens. A non-loopback host needs a token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: str | None = Field(default=None, min_length=16, max_length=500)
    read_timeout_s: float = Field(default=300.0, gt=0, description="idle connection limit")
    infer_timeout_s: float = Field(default=30.0, gt=0, description="one inference's limit")

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServerConfig:
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"binding {self.host} exposes the policy beyond this machine: set a token "
                "(at least 16 characters) or bind 127.0.0.1"
            )
        return self


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0


class PolicyServer:
    """Serve ``policy`` with ``config``; ``await start()``, then ``port``, ``await close()``."""

    def __init__(self, policy: ChunkPolicy, config: ServerConfig) -> None:
        self._policy = policy
        self._config = config
        self._server: asyncio.Server | None = None
        self._lock = asyncio.Lock()
        self.stats = ServerStats()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._config.host, self._config.port
        )
        log.info("policy server %s on %s:%d", self._policy.version, self._config.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    header = await asyncio.wait_for(
                        reader.readexactly(HEADER.size), self._config.read_timeout_s
                    )
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                try:
                    # A bare pickle stream starts with the PROTO opcode; read as a length it
                    # would only look oversized, so name it for what it is.
                    if header[:1] == b"\x80" and 2 <= header[1] <= 5:
                        raise WireError(
                            "pickle_refused",
                            "this looks like a Python pickle; the policy wire never unpickles. "
                            "Send length-prefixed msgpack (see policy.wire).",
                        )
                    n = frame_length(header)
                except WireError as exc:
                    # The length is untrustworthy, so the stream cannot be resynchronised.
                    await self._send(writer, error_reply(exc.code, str(exc)))
                    return
                try:
                    body = await asyncio.wait_for(
                        reader.readexactly(n), self._config.read_timeout_s
                    )
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                await self._send(writer, await self._answer(body))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(frame(reply))
        await writer.drain()

    async def _answer(self, body: bytes) -> dict[str, Any]:
        self.stats.requests += 1
        t0 = time.perf_counter()
        try:
            req = parse_request(unpack(body))
            self._check_token(req)
            return await self._dispatch(req, t0)
        except WireError as exc:
            self.stats.errors += 1
            return error_reply(exc.code, str(exc))
        except PolicyError as exc:
            self.stats.errors += 1
            return error_reply("policy_error", str(exc))

    def _check_token(self, req: WireRequest) -> None:
        want = self._config.token
        if want and not (req.token and hmac.compare_digest(req.token, want)):
            raise WireError("unauthorized", "missing or wrong token")

    async def _dispatch(self, req: WireRequest, t0: float) -> dict[str, Any]:
        version = self._policy.version
        if req.op == "hello":
            return {
                "ok": True,
                "version": version,
                "action_dim": ACTION_DIM,
                "state_dim": STATE_DIM,
                "cameras": list(CAMERAS),
                "image_size": IMAGE_SIZE,
                "horizon": int(getattr(self._policy, "horizon", 0)),
                "max_prefix": int(getattr(self._policy, "max_prefix", 0)),
            }
        if req.op == "reset":
            async with self._lock:
                await asyncio.to_thread(self._policy.reset)
            return {"ok": True, "version": version}
        assert req.obs is not None
        obs = req.obs.to_observation()
        async with self._lock:
            t_model = time.perf_counter()
            try:
                actions = await asyncio.wait_for(
                    asyncio.to_thread(self._policy.infer, obs, req.prefix),
                    self._config.infer_timeout_s,
                )
            except TimeoutError:
                raise PolicyError(
                    f"inference took longer than {self._config.infer_timeout_s} s"
                ) from None
            except ValueError as exc:
                raise WireError("bad_request", str(exc)) from exc
            model_ms = (time.perf_counter() - t_model) * 1e3
        return {
            "ok": True,
            "version": version,
            "actions": actions,
            "timing": {"model_ms": model_ms, "total_ms": (time.perf_counter() - t0) * 1e3},
        }
