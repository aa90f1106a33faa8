"""``PolicyRecorder``: a ``ChunkPolicy`` wrapper that writes every call to disk.

One file per episode (``reset()`` starts the next): ``episode_000000.msgpack``, a
sequence of ``policy.wire`` frames (4-byte length + msgpack, numeric arrays only), each
``{"obs": ..., "prefix": array | None, "actions": array, "version": str, "infer_ms":
float}``. ``read_records`` reads one back. No torch, no pickle.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from policy.wire import HEADER, frame, frame_length, observation_message, unpack
from robot.chunk_policy import ChunkPolicy
from robot.schema import Observation


class PolicyRecorder:
    """Record ``policy``'s inputs and outputs under ``folder`` (created)."""

    def __init__(self, policy: ChunkPolicy, folder: Path) -> None:
        self._inner = policy
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._episode = len(list(folder.glob("episode_*.msgpack")))
        self._fh: IO[bytes] | None = None

    @property
    def version(self) -> str:
        return self._inner.version

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = (self._folder / f"episode_{self._episode:06d}.msgpack").open("ab")
        return self._fh

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        actions = self._inner.infer(obs, prefix)
        record: dict[str, Any] = {
            "obs": observation_message(obs),
            "prefix": None if prefix is None else np.asarray(prefix, dtype=np.float32),
            "actions": np.asarray(actions, dtype=np.float32),
            "version": self._inner.version,
            "infer_ms": (time.perf_counter() - t0) * 1e3,
        }
        fh = self._file()
        fh.write(frame(record))
        fh.flush()
        return actions

    def reset(self) -> None:
        if self._fh is not None:
            self.close()
            self._episode += 1
        self._inner.reset()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of one episode file written by ``PolicyRecorder``."""
    with path.open("rb") as fh:
        while header := fh.read(HEADER.size):
            n = frame_length(header)
            body = fh.read(n)
            if len(body) != n:
                raise ValueError(f"{path}: truncated record")
            yield unpack(body)
