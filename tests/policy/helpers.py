"""Small real implementations used by the policy tests (no torch)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

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

    def __init__(self, horizon: int = 30, offset: float = 0.4 * MAX_STEP_M) -> None:
        self.horizon = horizon
        self.max_prefix = horizon
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
    """A real PolicyServer on a loopback port, run by its own event loop in a thread."""

    def __init__(self, config: ServerConfig, policy: WavePolicy | None = None) -> None:
        self.policy = policy or WavePolicy()
        self.server = PolicyServer(self.policy, config)
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
