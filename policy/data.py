"""Demonstrations for training: episodes of (observation, action) pairs, kept compactly.

An ``Episode`` holds one task episode: camera images (T, C, S, S, 3) uint8 in
``robot.schema.CAMERAS`` order, states (T, STATE_DIM) float32, actions (T, ACTION_DIM)
float32 (the action taken, or for relabelled episodes the expert's label at that state),
the instruction and whether the episode succeeded.

On disk (``save_episodes`` / ``load_episodes``): one ``episode_NNNNNN.npz`` per episode
(arrays ``images``, ``state``, ``action``; loaded with ``allow_pickle=False``) and a
``manifest.json`` listing them with instruction, task, seed and success.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM, Observation, clip_action

MANIFEST = "manifest.json"


@dataclass
class Episode:
    images: np.ndarray
    state: np.ndarray
    action: np.ndarray
    instruction: str
    success: bool
    task: str = ""
    seed: int = -1

    def __len__(self) -> int:
        return len(self.action)


class EpisodeBuilder:
    """Accumulates ticks of one episode."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.state: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.instruction = ""

    def add(self, obs: Observation, action: np.ndarray) -> None:
        self.images.append(np.stack([obs.images[c] for c in CAMERAS]))
        self.state.append(np.asarray(obs.state, dtype=np.float32))
        self.action.append(clip_action(action))
        self.instruction = obs.instruction

    def build(self, *, success: bool, task: str, seed: int) -> Episode:
        return Episode(
            images=np.stack(self.images),
            state=np.stack(self.state),
            action=np.stack(self.action),
            instruction=self.instruction,
            success=success,
            task=task,
            seed=seed,
        )


def collect_expert_episode(env: Any, *, task: str, seed: int) -> Episode:
    """Run the scripted expert through one episode of ``env`` (a ``robot.env.CellEnv``)."""
    b = EpisodeBuilder()
    obs = env.reset()
    for _ in range(env.max_steps):
        a = env.expert_action()
        b.add(obs, a)
        obs, done = env.step(a)
        if done:
            break
    return b.build(success=bool(env.outcome().success), task=task, seed=seed)


def save_episodes(episodes: Iterable[Episode], folder: Path) -> int:
    """Write episodes under ``folder`` (appending to an existing manifest); returns count."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(folder) if (folder / MANIFEST).exists() else []
    n0 = len(manifest)
    for i, ep in enumerate(episodes, start=n0):
        name = f"episode_{i:06d}.npz"
        np.savez_compressed(folder / name, images=ep.images, state=ep.state, action=ep.action)
        manifest.append(
            {"file": name, "instruction": ep.instruction, "success": ep.success,
             "task": ep.task, "seed": ep.seed, "length": len(ep)}
        )
    (folder / MANIFEST).write_text(json.dumps({"episodes": manifest}, indent=1) + "\n")
    return len(manifest) - n0


def _read_manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {MANIFEST}; record demonstrations first "
            "(intern sim demos --task T --episodes N --out DIR)"
        )
    doc = json.loads(path.read_text())
    eps = doc.get("episodes") if isinstance(doc, dict) else None
    if not isinstance(eps, list):
        raise ValueError(f"{path}: expected {{'episodes': [...]}}")
    return eps


def load_episodes(
    folder: Path, *, task: str | None = None, successful_only: bool = True,
    reader: Callable[[Path, dict[str, Any]], Episode] | None = None,
) -> list[Episode]:
    """Load the episodes listed in ``folder``'s manifest (optionally one task, successes)."""
    out: list[Episode] = []
    for entry in _read_manifest(folder):
        if task and entry.get("task") not in (task, None, ""):
            continue
        if successful_only and not entry.get("success", True):
            continue
        ep = (reader or _read_npz)(folder, entry)
        check_episode(ep, folder / str(entry.get("file")))
        out.append(ep)
    return out


def _read_npz(folder: Path, entry: dict[str, Any]) -> Episode:
    with np.load(folder / entry["file"], allow_pickle=False) as z:
        return Episode(
            images=z["images"], state=z["state"].astype(np.float32),
            action=z["action"].astype(np.float32), instruction=str(entry["instruction"]),
            success=bool(entry.get("success", True)), task=str(entry.get("task", "")),
            seed=int(entry.get("seed", -1)),
        )


def check_episode(ep: Episode, where: Path) -> None:
    t = len(ep.action)
    want = {
        "images": ((t, len(CAMERAS), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
        "state": ((t, STATE_DIM), np.float32),
        "action": ((t, ACTION_DIM), np.float32),
    }
    for name, (shape, dtype) in want.items():
        arr = getattr(ep, name)
        if arr.shape != shape or arr.dtype != dtype:
            raise ValueError(f"{where}: {name} is {arr.dtype}{arr.shape}, expected {dtype}{shape}")


class ChunkDataset:
    """Random (observation, action chunk) samples over a growing list of episodes."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.episodes: list[Episode] = []
        self._index = np.zeros((0, 2), dtype=np.int64)

    def add(self, episodes: Sequence[Episode]) -> None:
        start = len(self.episodes)
        self.episodes.extend(episodes)
        rows = [
            np.stack([np.full(len(e), start + i), np.arange(len(e))], axis=1)
            for i, e in enumerate(episodes) if len(e)
        ]
        if rows:
            self._index = np.concatenate([self._index, *rows])

    def __len__(self) -> int:
        return len(self._index)

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray | list[str]]:
        picks = self._index[rng.integers(0, len(self._index), batch)]
        h = self.horizon
        images = np.empty((batch, *self.episodes[0].images.shape[1:]), dtype=np.uint8)
        state = np.empty((batch, STATE_DIM), dtype=np.float32)
        actions = np.zeros((batch, h, ACTION_DIM), dtype=np.float32)
        valid = np.zeros((batch, h), dtype=bool)
        text: list[str] = []
        for j, (e, t) in enumerate(picks):
            ep = self.episodes[e]
            images[j] = ep.images[t]
            state[j] = ep.state[t]
            seg = ep.action[t : t + h]
            actions[j, : len(seg)] = seg
            valid[j, : len(seg)] = True
            text.append(ep.instruction)
        return {"images": images, "state": state, "actions": actions, "valid": valid,
                "text": text}

    def all_states(self) -> np.ndarray:
        return np.concatenate([e.state for e in self.episodes])

    def all_actions(self) -> np.ndarray:
        return np.concatenate([e.action for e in self.episodes])
