"""Episodes on disk for training: one ``.npz`` of arrays plus one ``.json`` manifest each.

Format (``FORMAT``, ``SCHEMA_VERSION``; also described in ``robot/EPISODES.md``). For an
episode named ``N`` in a folder:

``N.npz`` (numpy zip, written with ``np.savez_compressed``, no object arrays; read with
``allow_pickle=False``), T = number of control ticks, row ``t`` is tick ``t``:

* ``image_<camera>``: uint8 (T, H, W, 3) for each camera of the manifest (absent when the
  episode was run without cameras);
* ``state``: float32 (T, STATE_DIM), the observation's proprioception;
* ``action``: float32 (T, ACTION_DIM), the action applied at that tick (after clipping);
* ``expert_action``: float32 (T, ACTION_DIM), the scripted expert's action for the same
  state (present when recorded with expert labels, e.g. for relabelling a policy's run);
* ``step``: int32 (T,), the tick index; ``round``: int16 (T,), the episode round;
* ``sim_time_s``: float64 (T,), simulated time at the observation;
* ``image_step``: int32 (K,), where camera frames were kept only at some ticks (a job's
  episode, ``robot.job_episodes``): ``image_<camera>`` then holds K frames, those of
  these ticks, and a loaded episode gives each tick the last frame kept.

``N.json``: ``format``, ``schema_version``, ``task``, ``seed``, ``difficulty``,
``instruction``, ``policy_version``, ``control_hz``, ``length`` (T), ``cameras`` (name ->
[H, W, 3]), ``state_layout``, ``action_layout``, ``arrays`` (name -> dtype and shape),
``outcome`` (``EpisodeOutcome`` as JSON) and ``npz`` (the array file's name).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot.chunk_policy import ChunkPolicy
from robot.env import CellEnv, EpisodeOutcome, rollout
from robot.jobs import Task
from robot.schema import ACTION_DIM, ARM_ACTION, CONTROL_HZ, STATE_DIM, STATE_LAYOUT, Observation

FORMAT = "intern-cells-episode"
SCHEMA_VERSION = 1
ACTION_LAYOUT = tuple(f"{arm}.{k}" for arm in ("left", "right") for k in ARM_ACTION)


class EpisodeFormatError(ValueError):
    """A file that is not a readable episode of this format; the message says why."""


@dataclass
class Episode:
    """One loaded episode: the manifest and its arrays."""

    manifest: dict[str, Any]
    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    step: np.ndarray
    round: np.ndarray
    sim_time_s: np.ndarray
    expert_action: np.ndarray | None = None

    @property
    def length(self) -> int:
        return int(self.state.shape[0])

    @property
    def outcome(self) -> EpisodeOutcome:
        return EpisodeOutcome.model_validate(self.manifest["outcome"])


@dataclass
class EpisodeRecorder:
    """Collects ticks through ``rollout(..., on_step=recorder.add)`` and writes them."""

    env: CellEnv
    policy_version: str = "expert"
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    experts: list[np.ndarray] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def add(self, obs: Observation, applied: np.ndarray, expert: np.ndarray | None) -> None:
        for cam, img in obs.images.items():
            self.frames.setdefault(cam, []).append(img)
        self.states.append(obs.state)
        self.actions.append(np.asarray(applied, dtype=np.float32).copy())
        if expert is not None:
            self.experts.append(np.asarray(expert, dtype=np.float32).copy())
        self.steps.append(obs.step)
        self.rounds.append(int(obs.extras.get("round", 0)))
        self.times.append(float(obs.extras.get("sim_time_s", 0.0)))

    def arrays(self) -> dict[str, np.ndarray]:
        n = len(self.states)
        out: dict[str, np.ndarray] = {
            f"image_{cam}": np.stack(frames) for cam, frames in self.frames.items()
        }
        out["state"] = (
            np.stack(self.states).astype(np.float32) if n else np.zeros((0, STATE_DIM), np.float32)
        )
        out["action"] = (
            np.stack(self.actions).astype(np.float32)
            if n
            else np.zeros((0, ACTION_DIM), np.float32)
        )
        if self.experts and len(self.experts) == n:
            out["expert_action"] = np.stack(self.experts).astype(np.float32)
        out["step"] = np.asarray(self.steps, dtype=np.int32)
        out["round"] = np.asarray(self.rounds, dtype=np.int16)
        out["sim_time_s"] = np.asarray(self.times, dtype=np.float64)
        return out

    def save(self, folder: Path, name: str) -> Path:
        """Write ``name.npz`` then ``name.json`` (the manifest last: its presence means done)."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays = self.arrays()
        cfg = self.env.config
        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "task": cfg.task.value,
            "seed": cfg.seed,
            "difficulty": cfg.difficulty,
            "instruction": self.env.instruction,
            "policy_version": self.policy_version,
            "control_hz": CONTROL_HZ,
            "length": len(self.states),
            "cameras": {
                k.removeprefix("image_"): list(a.shape[1:])
                for k, a in arrays.items()
                if k.startswith("image_")
            },
            "state_layout": list(STATE_LAYOUT),
            "action_layout": list(ACTION_LAYOUT),
            "arrays": {
                k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()
            },
            "outcome": self.env.outcome().model_dump(mode="json"),
            "npz": f"{name}.npz",
        }
        npz = folder / f"{name}.npz"
        tmp = folder / f".{name}.tmp.npz"
        np.savez_compressed(tmp, allow_pickle=False, **arrays)
        os.replace(tmp, npz)
        path = folder / f"{name}.json"
        path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        return path


def record_episode(
    env: CellEnv,
    folder: Path,
    name: str,
    policy: ChunkPolicy | None = None,
    *,
    expert_labels: bool = False,
    replan_every: int | None = None,
) -> Path:
    """Run one episode (expert if ``policy`` is None) and write it; returns the manifest."""
    rec = EpisodeRecorder(env, policy_version="expert" if policy is None else policy.version)
    rollout(
        env,
        policy,
        replan_every=replan_every,
        on_step=rec.add,
        expert_labels=expert_labels or policy is None,
    )
    return rec.save(folder, name)


def write_demos(
    task: Task,
    episodes: int,
    folder: Path,
    *,
    seed_start: int = 0,
    difficulty: float = 1.0,
    render: bool = True,
) -> list[Path]:
    """Expert demonstrations for seeds ``seed_start .. seed_start + episodes - 1``."""
    paths = []
    for seed in range(seed_start, seed_start + episodes):
        env = CellEnv(task, seed=seed, difficulty=difficulty, render=render)
        paths.append(record_episode(env, folder, f"{task.value}_s{seed:06d}"))
    return paths


def load_episode(path: Path) -> Episode:
    """Read an episode from its manifest (``.json``) or array file (``.npz``)."""
    path = Path(path)
    manifest_path = path.with_suffix(".json")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EpisodeFormatError(f"{manifest_path}: cannot read manifest: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise EpisodeFormatError(f"{manifest_path}: manifest is not JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise EpisodeFormatError(f"{manifest_path}: not an {FORMAT} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise EpisodeFormatError(
            f"{manifest_path}: schema version {manifest.get('schema_version')!r}; this "
            f"reader understands {SCHEMA_VERSION}"
        )
    npz_path = manifest_path.with_name(manifest["npz"])
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise EpisodeFormatError(f"{npz_path}: cannot read arrays: {exc}") from None
    for key, meta in manifest["arrays"].items():
        a = arrays.get(key)
        if a is None or list(a.shape) != meta["shape"] or str(a.dtype) != meta["dtype"]:
            raise EpisodeFormatError(f"{npz_path}: array {key!r} does not match the manifest")
    return Episode(
        manifest=manifest,
        images=_held_images(arrays, len(arrays["state"])),
        state=arrays["state"],
        action=arrays["action"],
        step=arrays["step"],
        round=arrays["round"],
        sim_time_s=arrays["sim_time_s"],
        expert_action=arrays.get("expert_action"),
    )


def _held_images(arrays: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    """Camera frames per tick. An episode that kept frames only at some ticks
    (``image_step``, see ``robot.job_episodes``) gets each tick the last frame kept."""
    images = {
        k.removeprefix("image_"): v
        for k, v in arrays.items()
        if k.startswith("image_") and k != "image_step"
    }
    kept = arrays.get("image_step")
    if kept is None or not images:
        return images
    which = np.searchsorted(kept, np.arange(length), side="right") - 1
    return {cam: frames[np.maximum(which, 0)] for cam, frames in images.items()}


def iter_episodes(folder: Path) -> Iterator[Episode]:
    """Every complete episode in ``folder`` (those with a manifest), by name."""
    for manifest in sorted(Path(folder).glob("*.json")):
        yield load_episode(manifest)
