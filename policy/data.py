"""Demonstrations for training: episodes of (observation, action) pairs, kept compactly.

An ``Episode`` holds one task episode: camera images (T, C, S, S, 3) uint8 in
``robot.schema.CAMERAS`` order, states (T, STATE_DIM) float32, actions (T, ACTION_DIM)
float32 (the action taken, or for relabelled episodes the expert's label at that state),
the instruction and whether the episode succeeded. Episodes made in-process also carry
the hidden sideways offsets each hand must still close (``CellEnv.aim``): ``aim``
(T, 2, 2) float32 and ``aim_valid`` (T, 2) bool, a training signal only; recorded
demonstrations have none (all invalid). Relabelled episodes also keep ``executed``
(T, ACTION_DIM): what the executor really ran at each tick, the policy's own committed
plan, which is what a committed prefix holds at run time.

On disk, demonstrations are in the robot's episode file format (``robot/EPISODES.md``);
``load_demos`` reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy.chunking import ACTION_SCALE
from policy.exec_config import DEFAULT_REPLAN_AGE
from robot.schema import (
    ACTION_DIM,
    ARM_ACTION,
    CAMERAS,
    IMAGE_SIZE,
    MAX_STEP_M,
    STATE_DIM,
    Observation,
    clip_action,
)

# Both arms' dx, dy and dyaw: sideways motion, measured as a fraction of full speed.
_LATERAL = np.array([0, 1, 3, 5, 6, 8])
# Both arms' dz, and how many ticks ahead a full-speed lift makes a state one to weight:
# the default replan age (5 ticks past a takeover plus an 80 ms inference delay), the age
# the actions of a chunk computed before the lift can reach.
LIFT_DIMS = np.array([2, 2 + len(ARM_ACTION)])
LIFT_WINDOW = DEFAULT_REPLAN_AGE


@dataclass
class Episode:
    images: np.ndarray
    state: np.ndarray
    action: np.ndarray
    instruction: str
    success: bool
    task: str = ""
    seed: int = -1
    aim: np.ndarray | None = None
    aim_valid: np.ndarray | None = None
    executed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.action)


class EpisodeBuilder:
    """Accumulates ticks of one episode."""

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []
        self.state: list[np.ndarray] = []
        self.action: list[np.ndarray] = []
        self.aim: list[np.ndarray] = []
        self.aim_valid: list[np.ndarray] = []
        self.executed: list[np.ndarray] = []
        self.instruction = ""

    def add(
        self,
        obs: Observation,
        action: np.ndarray,
        aim: tuple[np.ndarray, np.ndarray] | None = None,
        executed: np.ndarray | None = None,
    ) -> None:
        """One tick; ``aim`` is ``CellEnv.aim()`` at this state and ``executed`` the action
        really run when ``action`` is a label (give each every tick or never)."""
        self.images.append(np.stack([obs.images[c] for c in CAMERAS]))
        self.state.append(np.asarray(obs.state, dtype=np.float32))
        self.action.append(clip_action(action))
        if aim is not None:
            self.aim.append(np.asarray(aim[0], dtype=np.float32))
            self.aim_valid.append(np.asarray(aim[1], dtype=bool))
        if executed is not None:
            self.executed.append(clip_action(executed))
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
            aim=np.stack(self.aim) if self.aim else None,
            aim_valid=np.stack(self.aim_valid) if self.aim_valid else None,
            executed=np.stack(self.executed) if self.executed else None,
        )


def collect_expert_episode(env: Any, *, task: str, seed: int) -> Episode:
    """Run the scripted expert through one episode of ``env`` (a ``robot.env.CellEnv``)."""
    b = EpisodeBuilder()
    obs = env.reset()
    for _ in range(env.max_steps):
        a = env.expert_action()
        b.add(obs, a, env.aim())
        obs, done = env.step(a)
        if done:
            break
    return b.build(success=bool(env.outcome().success), task=task, seed=seed)


def load_demos(
    folder: Path, *, task: str | None = None, successful_only: bool = True
) -> list[Episode]:
    """Episodes recorded by ``robot.episode_files`` (``intern sim demos``) in ``folder``.

    The label of each tick is the expert's action when the episode carries one
    (relabelled runs), otherwise the action applied. Episodes of other tasks, failed
    ones (unless asked) and ones recorded without cameras are skipped; an empty result
    raises ``ValueError`` saying what was found.
    """
    from robot.episode_files import iter_episodes

    out: list[Episode] = []
    seen = 0
    for rec in iter_episodes(folder):
        seen += 1
        m = rec.manifest
        if task and m.get("task") != task:
            continue
        if successful_only and not rec.outcome.success:
            continue
        if set(rec.images) != set(CAMERAS):
            continue
        ep = Episode(
            images=np.stack([rec.images[c] for c in CAMERAS], axis=1),
            state=rec.state.astype(np.float32),
            action=(rec.expert_action if rec.expert_action is not None else rec.action).astype(
                np.float32
            ),
            instruction=str(m["instruction"]),
            success=bool(rec.outcome.success),
            task=str(m.get("task", "")),
            seed=int(m.get("seed", -1)),
        )
        check_episode(ep, folder / str(m.get("npz")))
        out.append(ep)
    if not out:
        raise ValueError(
            f"{folder}: {seen} recorded episodes, none usable (task {task}, successful, "
            "with cameras); record some with 'intern sim demos --task T --episodes N --out DIR'"
        )
    return out


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


def full_lift(actions: np.ndarray) -> np.ndarray:
    """Per arm (last axis, in ``LIFT_DIMS`` order), whether ``actions`` lift it at full
    speed. The fastening expert does so only to clear a fastener it has finished (or a
    tool it has emptied)."""
    return np.asarray(actions)[..., LIFT_DIMS] >= MAX_STEP_M - 1e-6


def lift_ahead(actions: np.ndarray, window: int = LIFT_WINDOW) -> np.ndarray:
    """Per tick, 1.0 where an arm's label lifts at full speed within ``window`` ticks.

    Why these states are drawn more often: a lift clear of a finished fastener lasts two
    ticks in a demonstration, so few samples show it, yet a chunk computed just before it
    decides whether the arm lifts or keeps pressing on a finished fastener with the tool
    off. Under asynchronous execution its first rows are dropped (they ran while it was
    computed), and a model that has seen the lift this rarely left the arm hovering."""
    lifts = full_lift(actions).any(axis=1)
    seen = np.concatenate([[0], np.cumsum(lifts)])
    t = np.arange(len(actions))
    return ((seen[np.minimum(t + window, len(actions))] - seen[t]) > 0).astype(np.float64)


class ChunkDataset:
    """Random (observation, action chunk) samples over a growing list of episodes."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.episodes: list[Episode] = []
        self._weights: list[np.ndarray] = []  # per episode, one per sample
        self._index = np.zeros((0, 2), dtype=np.int64)
        self._p: np.ndarray | None = None

    def add(self, episodes: Sequence[Episode], weight: float = 1.0) -> None:
        """Append episodes whose samples are drawn ``weight`` times as often as others'
        (before the alignment weighting of ``weights``)."""
        start = len(self.episodes)
        self.episodes.extend(episodes)
        for e in episodes:
            # States where the arm must move sideways (aligning over a feature) are rare
            # but decide success, so they are drawn more often.
            lateral = np.abs(e.action[:, _LATERAL] / ACTION_SCALE[_LATERAL]).max(axis=1)
            aligning = 1.0 + 4.0 * np.clip(lateral / 0.1, 0.0, 1.0)
            self._weights.append(weight * aligning * (1.0 + 4.0 * lift_ahead(e.action)))
        self._p = None
        rows = [
            np.stack([np.full(len(e), start + i), np.arange(len(e))], axis=1)
            for i, e in enumerate(episodes)
            if len(e)
        ]
        if rows:
            self._index = np.concatenate([self._index, *rows])

    def __len__(self) -> int:
        return len(self._index)

    def weights(self) -> np.ndarray:
        """Sampling probability per sample, in the order of the index."""
        p = np.concatenate(self._weights) if self._weights else np.zeros(0)
        return p / p.sum()

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray | list[str]]:
        if self._p is None:
            self._p = self.weights()
        picks = self._index[rng.choice(len(self._index), batch, p=self._p)]
        h = self.horizon
        images = np.empty((batch, *self.episodes[0].images.shape[1:]), dtype=np.uint8)
        state = np.empty((batch, STATE_DIM), dtype=np.float32)
        actions = np.zeros((batch, h, ACTION_DIM), dtype=np.float32)
        valid = np.zeros((batch, h), dtype=bool)
        aim = np.zeros((batch, 2, 2), dtype=np.float32)
        aim_valid = np.zeros((batch, 2), dtype=bool)
        executed = np.zeros((batch, h, ACTION_DIM), dtype=np.float32)
        has_executed = np.zeros(batch, dtype=bool)
        text: list[str] = []
        for j, (e, t) in enumerate(picks):
            ep = self.episodes[e]
            images[j] = ep.images[t]
            state[j] = ep.state[t]
            seg = ep.action[t : t + h]
            actions[j, : len(seg)] = seg
            valid[j, : len(seg)] = True
            if ep.aim is not None and ep.aim_valid is not None:
                aim[j], aim_valid[j] = ep.aim[t], ep.aim_valid[t]
            if ep.executed is not None:
                executed[j, : len(seg)] = ep.executed[t : t + h]
                has_executed[j] = True
            text.append(ep.instruction)
        return {
            "images": images,
            "state": state,
            "actions": actions,
            "valid": valid,
            "aim": aim,
            "aim_valid": aim_valid,
            "executed": executed,
            "has_executed": has_executed,
            "text": text,
        }

    def all_states(self) -> np.ndarray:
        return np.concatenate([e.state for e in self.episodes])

    def all_actions(self) -> np.ndarray:
        return np.concatenate([e.action for e in self.episodes])
