"""Every job's episode, kept by the robot worker in an episode store.

A ``JobTape`` records one job as it runs (``robot.skills.drive`` feeds it): the
observation's proprioception and the action applied at every control tick, each chunk a
policy planned (with the tick it planned from), and camera frames at a reduced rate.
``EpisodeStore.write`` then keeps the job's episode in one folder of its own,
``<store>/<station>/<job key, ':' as '_'>/`` holding ``episode.npz`` + ``episode.json``
in the format of ``robot.episode_files`` (readable by ``load_episode``, exported to a
LeRobotDataset by ``robot.lerobot_v3``), with these additions:

* arrays ``image_step`` (int32, K): the tick of each kept camera frame (``image_<cam>``
  then holds K frames, not T); ``chunk_step`` (int32, C), ``chunk_length`` (int32, C) and
  ``chunk_actions`` (float32, sum of lengths x ACTION_DIM): the chunks as planned;
* manifest ``job``: the job key, station, part, program and the robot's outcome
  (``JobOutcome`` as JSON: robot, policy version, error code, cycle time, detail; its
  per-fastener results are the manifest's ``outcome.fasteners``), ``camera_every``, and
  ``recipe``: the job's fastener specs, so that its part can be made again;

Why this layout rather than a LeRobot folder per job: a LeRobot image feature needs a
frame on every row, so a per-job dataset would store each kept frame three times (or
every tick's); the planned chunks have no place in it; and it would cost PNG encoding,
parquet and per-feature stats in the worker's time between jobs, work the export does
once for the jobs someone wants. The store needs numpy only, and ``intern episodes
export`` builds one LeRobotDataset from any set of jobs. A folder is written under a
temporary name and renamed, so a folder under its job's name is complete.

Camera rate (``CAMERA_EVERY``): a frame every 3rd tick (10 Hz at 30 Hz control), and
always the frame of each tick a policy planned a chunk from (the view it acted on). The
arms move at most ``MAX_STEP_M`` (12 mm) a tick, so consecutive kept frames are at most
36 mm of tool motion apart, about one fastener pitch's tenth on the sample recipes:
enough to see every approach, seat and drive phase. Images are nearly all of an
episode's bytes; every tick would triple the store for frames that differ by a pixel or
two at 64 x 64. The export holds the last kept frame for the ticks between.

``EpisodeKeeper`` ties it to the worker: it hands the runner a tape per job and, once
the job's outcome is final, writes the episode and puts its ``EpisodeRef`` on the
outcome. Writing an episode never fails a job: a write that fails is logged and the
outcome goes on without an episode.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot.episode_files import ACTION_LAYOUT, FORMAT, SCHEMA_VERSION
from robot.jobs import EpisodeRef, ErrorCode, JobOutcome, JobSpec, Outcome
from robot.schema import ACTION_DIM, CONTROL_HZ, STATE_DIM, STATE_LAYOUT, Observation

log = logging.getLogger(__name__)

CAMERA_EVERY = 3  # keep a camera frame every 3rd control tick (10 Hz), see the docstring
EPISODE_NAME = "episode"


def job_folder(station_id: str, job_key: str) -> str:
    """A job's folder relative to the store: ``<station>/<job key, ':' as '_'>``."""
    return f"{station_id}/{job_key.replace(':', '_')}"


@dataclass
class JobTape:
    """One job's ticks, chunks and kept camera frames, in the order they ran."""

    spec: JobSpec
    camera_every: int = CAMERA_EVERY
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)
    image_steps: list[int] = field(default_factory=list)
    chunks: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _planned_at: int | None = None

    @property
    def length(self) -> int:
        return len(self.states)

    def plan(self, obs: Observation, chunk: np.ndarray) -> None:
        """A chunk the policy planned from ``obs``; that tick's frame is kept."""
        self.chunks.append((obs.step, np.asarray(chunk, dtype=np.float32).copy()))
        self._planned_at = obs.step

    def tick(self, obs: Observation, applied: np.ndarray) -> None:
        """``obs`` and the action then applied; its camera frames kept at the rate."""
        t = self.length
        if obs.images and (t % self.camera_every == 0 or obs.step == self._planned_at):
            for cam, img in obs.images.items():
                self.frames.setdefault(cam, []).append(np.asarray(img, dtype=np.uint8))
            self.image_steps.append(t)
        self.states.append(np.asarray(obs.state, dtype=np.float32).copy())
        self.actions.append(np.asarray(applied, dtype=np.float32).copy())
        self.steps.append(obs.step)
        self.rounds.append(int(obs.extras.get("round", 0)))
        self.times.append(float(obs.extras.get("sim_time_s", t / CONTROL_HZ)))

    def arrays(self) -> dict[str, np.ndarray]:
        """The tape as the arrays of ``episode.npz``."""
        n = self.length
        out = {f"image_{cam}": np.stack(f) for cam, f in sorted(self.frames.items())}
        if out:
            out["image_step"] = np.asarray(self.image_steps, dtype=np.int32)
        out["state"] = np.stack(self.states) if n else np.zeros((0, STATE_DIM), np.float32)
        out["action"] = np.stack(self.actions) if n else np.zeros((0, ACTION_DIM), np.float32)
        out["step"] = np.asarray(self.steps, dtype=np.int32)
        out["round"] = np.asarray(self.rounds, dtype=np.int16)
        out["sim_time_s"] = np.asarray(self.times, dtype=np.float64)
        out["chunk_step"] = np.asarray([s for s, _ in self.chunks], dtype=np.int32)
        out["chunk_length"] = np.asarray([len(c) for _, c in self.chunks], dtype=np.int32)
        out["chunk_actions"] = (
            np.concatenate([c for _, c in self.chunks])
            if self.chunks
            else np.zeros((0, ACTION_DIM), np.float32)
        )
        return out


def instruction_of(spec: JobSpec) -> str:
    """The task text an exported episode carries: the task and its fastener count."""
    if spec.fasteners:
        return f"{spec.task.value.replace('_', ' ')}: {len(spec.fasteners)} fasteners"
    return spec.task.value.replace("_", " ")


def manifest_of(tape: JobTape, outcome: JobOutcome, arrays: dict[str, np.ndarray]) -> dict:
    """``episode.json``: the ``robot.episode_files`` manifest plus the job."""
    spec = tape.spec
    try:
        failure = None if outcome.error_code == 0 else ErrorCode(outcome.error_code).name.lower()
    except ValueError:
        failure = f"error {outcome.error_code}"
    cycle_s = outcome.cycle_time_ms / 1000.0
    ok = outcome.outcome is Outcome.OK and outcome.error_code == 0
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "task": spec.task.value,
        "seed": spec.seed,
        "difficulty": spec.difficulty,
        # The job's recipe: where its fasteners sit and their windows, so that the same
        # part can be made again (an expert's correction of a failure, for one).
        "recipe": [f.model_dump(mode="json") for f in spec.fasteners],
        "instruction": instruction_of(spec),
        "policy_version": outcome.policy_version,
        "control_hz": CONTROL_HZ,
        "length": tape.length,
        "cameras": {k.removeprefix("image_"): list(a.shape[1:]) for k, a in _images(arrays)},
        "camera_every": tape.camera_every,
        "state_layout": list(STATE_LAYOUT),
        "action_layout": list(ACTION_LAYOUT),
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
        "outcome": {
            "task": spec.task.value,
            "seed": spec.seed,
            "difficulty": spec.difficulty,
            "done": True,
            "success": ok,
            "failure": failure,
            "error_code": outcome.error_code,
            "fasteners": [f.model_dump(mode="json") for f in outcome.fasteners],
            "sim_time_s": cycle_s,
            "cycle_time_s": cycle_s,
            "takt_s": spec.takt_s,
            "steps": tape.length,
            "phases": {},
        },
        "job": {
            "job_key": spec.job_key,
            "station_id": spec.station_id,
            "part_id": spec.part_id,
            "program_no": spec.program_no,
            # The fasteners are in the manifest's ``outcome`` already: not twice.
            "outcome": outcome.model_dump(mode="json", exclude={"episode", "fasteners"}),
        },
        "npz": f"{EPISODE_NAME}.npz",
    }


def _images(arrays: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(k, a) for k, a in arrays.items() if k.startswith("image_") and k != "image_step"]


class EpisodeStore:
    """Job episodes under ``root``, one folder per job (``job_folder``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, tape: JobTape, outcome: JobOutcome) -> EpisodeRef:
        """Write ``tape`` with its final ``outcome``; atomically (a temporary folder,
        renamed). A folder already under the job's name is replaced. Raises ``OSError``."""
        rel = job_folder(tape.spec.station_id, tape.spec.job_key)
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            arrays = tape.arrays()
            np.savez_compressed(tmp / f"{EPISODE_NAME}.npz", allow_pickle=False, **arrays)
            manifest = manifest_of(tape, outcome, arrays)
            (tmp / f"{EPISODE_NAME}.json").write_text(json.dumps(manifest), encoding="utf-8")
            size = sum(p.stat().st_size for p in tmp.iterdir())
            if final.exists():
                old = final.parent / f".{final.name}.{os.getpid()}.old"
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return EpisodeRef(path=rel, frames=tape.length, bytes=size)

    def folder(self, rel: str) -> Path:
        """The folder ``rel`` of this store; ``ValueError`` for one outside it."""
        root = self.root.resolve()
        path = (root / rel).resolve()
        if path == root or not path.is_relative_to(root):
            raise ValueError(f"episode path {rel!r} is not inside the store {root}")
        return path

    def manifest_path(self, rel: str) -> Path:
        """The ``episode.json`` of a folder ``rel`` of this store."""
        return self.folder(rel) / f"{EPISODE_NAME}.json"

    def delete(self, rel: str) -> int:
        """Delete the folder ``rel`` (gone already: nothing to do); returns its bytes."""
        folder = self.folder(rel)
        if not folder.is_dir():
            return 0
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        shutil.rmtree(folder)
        return size


class EpisodeKeeper:
    """The worker's side of the store: a tape for each job the runner starts, and the
    episode written once the job's outcome is final. One job at a time (the worker's
    solo pool): starting a job drops a tape left from one that never finished."""

    def __init__(self, store: EpisodeStore) -> None:
        self.store = store
        self._tape: JobTape | None = None

    def tape(self, spec: JobSpec) -> JobTape:
        """A new tape for ``spec``; given to ``robot.skills.make_runner`` as ``tapes``."""
        self._tape = JobTape(spec)
        return self._tape

    def keep(self, spec: JobSpec, outcome: JobOutcome) -> JobOutcome:
        """``outcome`` with the job's episode on it, after writing it; unchanged when the
        job ran no tick (refused before it started) or the write fails for any reason
        (logged with its traceback: a full volume or a bug alike leave the job as it was)."""
        tape, self._tape = self._tape, None
        if tape is None or tape.spec.job_key != spec.job_key or tape.length == 0:
            return outcome
        try:
            ref = self.store.write(tape, outcome)
        except Exception as exc:  # the contract: keeping an episode never fails the job
            log.warning("job %s: episode not kept: %s", spec.job_key, exc, exc_info=True)
            return outcome
        return outcome.model_copy(update={"episode": ref})
