"""Small real implementations used by the policy tests (no torch)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from policy.openpi_server import OpenpiServer
from policy.server import PolicyServer, ServerConfig
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, MAX_STEP_M, STATE_DIM, Observation


def make_obs(step: int = 0, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        images={
            c: rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8) for c in CAMERAS
        },
        state=rng.normal(size=STATE_DIM).astype(np.float32),
        instruction="install 3 nuts per side on the casting",
        step=step,
    )


def wave(ticks: np.ndarray) -> np.ndarray:
    """A smooth reference trajectory: the action every policy below would like at a tick."""
    a = np.zeros((len(ticks), ACTION_DIM), dtype=np.float32)
    a[:, 0] = 0.6 * MAX_STEP_M * np.sin(ticks / 15.0)
    a[:, 5] = 0.6 * MAX_STEP_M * np.cos(ticks / 15.0)
    a[:, 4] = 1.0
    return a


class WavePolicy:
    """Deterministic chunk policy: row i is ``wave(obs.step + i)`` plus a per-chunk offset.

    The offset (different for every call) makes unconditioned chunks disagree with each
    other, as a real sampled policy's do; with a prefix, the chunk starts from the prefix
    and glides back to the wave, so joins are smooth.
    """

    def __init__(
        self,
        horizon: int = 30,
        offset: float = 0.4 * MAX_STEP_M,
        replan_age: int | None = None,
        join_ticks: int | None = None,
    ) -> None:
        self.horizon = horizon
        self.max_prefix = horizon
        self.replan_age = replan_age
        self.join_ticks = join_ticks
        self.version = "wave-1"
        self.calls: list[tuple[int, int]] = []
        self._offset = offset

    def reset(self) -> None:
        self.calls.clear()

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        k = 0 if prefix is None else len(prefix)
        self.calls.append((obs.step, k))
        sign = 1.0 if len(self.calls) % 2 else -1.0
        chunk = wave(np.arange(obs.step, obs.step + self.horizon))
        chunk[:, 0] += sign * self._offset
        if k:
            gap = prefix[-1] - chunk[k - 1]
            chunk[:k] = prefix
            fade = np.linspace(1.0, 0.0, 8)[:, None]
            n = min(8, self.horizon - k)
            chunk[k : k + n] += fade[:n] * gap
        return chunk


class CountingEnv:
    """A minimal episode: the observation's step counts ticks; done after ``length``."""

    def __init__(self, length: int = 300) -> None:
        self.length = length
        self.actions: list[np.ndarray] = []
        self._t = 0

    def reset(self) -> Observation:
        self._t = 0
        self.actions.clear()
        return make_obs(0)

    def step(self, action: np.ndarray) -> tuple[Observation, bool]:
        self.actions.append(np.asarray(action, dtype=np.float32))
        self._t += 1
        return make_obs(self._t), self._t >= self.length

    # RobotIO for the real-time executor
    def observe(self) -> Observation:
        return make_obs(self._t)

    def act(self, action: np.ndarray) -> bool:
        return self.step(action)[1]


class ServerThread:
    """A real policy server (``PolicyServer``, or ``OpenpiServer`` with ``openpi``) on a
    loopback port, run by its own event loop in a thread."""

    def __init__(
        self, config: ServerConfig, policy: WavePolicy | None = None, *, openpi: bool = False
    ) -> None:
        self.policy = policy or WavePolicy()
        self.server: PolicyServer | OpenpiServer = (
            OpenpiServer(self.policy, config) if openpi else PolicyServer(self.policy, config)
        )
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(30)
        self.port = self.server.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


CHECKPOINT = Path(__file__).resolve().parents[2] / "policy" / "checkpoints" / "nut_install"


class ServeProcess:
    """``intern policy serve`` with the shipped nut installation checkpoint, in a
    subprocess on a free loopback port; ``args`` are added to the command line. What it
    prints goes to ``log`` (a file: a pipe nobody reads could stall the server)."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "cell", "policy", "serve", "--checkpoint", str(CHECKPOINT)]
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", "0", "--threads", "1", *args],
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while (found := re.search(r"on (\w+)://127\.0\.0\.1:(\d+)", log.read_text())) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not start: {log.read_text()}")
            time.sleep(0.2)
        self.banner = log.read_text()
        self.port = int(found.group(2))
        self.url = f"{found.group(1)}://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """The server's resident memory, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert found is not None
        return int(found.group(1))

    def stop(self) -> str:
        """Stop the server; everything it printed."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        return self.log.read_text()
