"""Every job's episode kept by the worker: real fenced jobs on a real Redis, run by the
real runner on the simulator, written to an episode store and read back."""

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from robot.episode_files import load_episode
from robot.fence import CellFences, WorkerFences, claim_key, record_key
from robot.job_episodes import CAMERA_EVERY, EpisodeKeeper, EpisodeStore
from robot.jobs import JobOutcome, JobSpec, Outcome, Task
from robot.schema import ACTION_DIM, CAMERAS, Observation
from robot.skills import make_runner
from robot.worker import Paced, execute_fenced
from tests.robot.test_skills import _spec as _recipe_spec


class _Expertish:
    """A policy of chunks of 8 that holds the arms still (cameras on): a NOK job."""

    version = "chunky-v2"

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        assert obs.images, "a policy job runs with cameras"
        return np.zeros((8, ACTION_DIM), dtype=np.float32)

    def reset(self) -> None:
        pass


def _spec(key: str, task: Task = Task.MATERIAL_HANDLING, seed: int = 2) -> JobSpec:
    base = _recipe_spec(task, seed=seed)
    return base.model_copy(update={"job_key": key, "station_id": "ST30", "robot_id": "R3"})


def _issued(client: redis.Redis, key: str) -> WorkerFences:
    async def issue() -> str:
        kw = client.connection_pool.connection_kwargs
        cell = aioredis.Redis(host=kw["host"], port=kw["port"], db=kw.get("db", 0))
        try:
            return await CellFences(cell).issue(key, "f1", "R3")
        finally:
            await cell.aclose()

    client.delete(record_key(key), claim_key(key))
    assert asyncio.run(issue()) == "issued"
    return WorkerFences(client, "w1")


def _run(redis_url: str, store: Path, spec: JobSpec, policy=None) -> JobOutcome:
    client = redis.Redis.from_url(redis_url)
    keeper = EpisodeKeeper(EpisodeStore(store))
    runner = make_runner(None if policy is None else (lambda _s: policy), keeper.tape)
    out = execute_fenced(_issued(client, spec.job_key), spec, "f1", Paced(runner, 1e6), keeper)
    assert out is not None
    return out


def test_an_expert_job_keeps_every_tick_without_cameras(redis_url: str, tmp_path: Path) -> None:
    spec = _spec("ST30:0:41", Task.NUT_INSTALL)
    out = _run(redis_url, tmp_path, spec)
    assert out.episode is not None and out.episode.path == "ST30/ST30_0_41"
    folder = tmp_path / out.episode.path
    assert sorted(p.name for p in folder.iterdir()) == ["episode.json", "episode.npz"]
    assert out.episode.bytes == sum(p.stat().st_size for p in folder.iterdir())
    ep = load_episode(folder / "episode.json")
    assert ep.length == out.episode.frames > 100 and ep.images == {}
    assert ep.manifest["job"]["job_key"] == "ST30:0:41"
    assert ep.manifest["policy_version"] == "expert" and ep.outcome.success
    assert len(ep.outcome.fasteners) == len(spec.fasteners) == len(out.fasteners)
    assert ep.manifest["arrays"]["chunk_step"]["shape"] == [0]  # no policy, no chunks
    # The outcome the cell reads under the fence carries the episode.
    client = redis.Redis.from_url(redis_url)
    raw = client.hget(record_key("ST30:0:41"), "outcome")
    assert raw is not None
    stored = json.loads(raw)
    assert stored["episode"] == out.episode.model_dump()


def test_a_policy_job_keeps_its_chunks_and_subsampled_cameras(
    redis_url: str, tmp_path: Path
) -> None:
    out = _run(redis_url, tmp_path, _spec("ST30:0:42"), _Expertish())
    assert out.outcome is Outcome.NOK and out.policy_version == "chunky-v2"
    assert out.episode is not None
    ep = load_episode(tmp_path / out.episode.path / "episode.json")
    with np.load(tmp_path / out.episode.path / "episode.npz") as z:
        kept, chunk_step = z["image_step"], z["chunk_step"]
        assert z["chunk_actions"].shape == (8 * len(chunk_step), ACTION_DIM)
        assert z["image_head"].shape[0] == len(kept)
    assert set(ep.images) == {"head", "wrist_left", "wrist_right"}
    assert ep.images["head"].shape[0] == ep.length  # held between kept frames
    # Every 3rd tick, and every tick a chunk was planned from, and no other.
    ticks = set(range(0, ep.length, CAMERA_EVERY)) | {
        int(i) for i in np.flatnonzero(np.isin(ep.step, chunk_step))
    }
    assert set(kept.tolist()) == ticks and len(kept) < ep.length
    assert not ep.outcome.success and ep.manifest["job"]["outcome"]["outcome"] == "nok"


def test_a_failed_write_leaves_the_outcome_as_it_was(redis_url: str, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    out = _run(redis_url, blocked, _spec("ST30:0:43"))
    assert out.outcome is Outcome.OK and out.episode is None


def test_a_job_refused_before_it_started_keeps_no_episode(tmp_path: Path) -> None:
    keeper = EpisodeKeeper(EpisodeStore(tmp_path))
    spec = _spec("ST30:0:44")
    keeper.tape(spec)  # the runner was handed a tape but ran no tick
    out = JobOutcome(job_key=spec.job_key, robot_id="R3", outcome=Outcome.NOK, cycle_time_ms=0)
    assert keeper.keep(spec, out).episode is None and not any(tmp_path.iterdir())


@pytest.mark.parametrize("again", [1, 2])
def test_a_job_written_again_replaces_its_folder_whole(tmp_path: Path, again: int) -> None:
    from robot.skills import run_job

    store = EpisodeStore(tmp_path)
    keeper = EpisodeKeeper(store)
    spec = _spec("ST30:0:45")
    for _ in range(again):
        out = keeper.keep(spec, run_job(spec, tape=keeper.tape(spec)))
    assert out.episode is not None
    assert [p.name for p in (tmp_path / "ST30").iterdir()] == ["ST30_0_45"]


def test_policy_jobs_export_with_held_camera_frames_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs a policy drove (cameras on) exported from the store; the real reader sees a
    frame on every tick, the last one kept."""
    from robot.lerobot_v3 import export_manifests
    from robot.skills import run_job
    from tests.robot.test_lerobot_v3 import real_lerobot_dataset

    pytest.importorskip("pyarrow", reason="the writer needs pyarrow: pip install pyarrow")
    store = EpisodeStore(tmp_path / "store")
    keeper = EpisodeKeeper(store)
    refs = []
    for seq in (51, 52):
        spec = _spec(f"ST30:0:{seq}", seed=seq)
        out = keeper.keep(spec, run_job(spec, policy=_Expertish(), tape=keeper.tape(spec)))
        assert out.episode is not None
        refs.append(out.episode)
    summary = export_manifests(
        [store.manifest_path(r.path) for r in refs], tmp_path / "ds", include_failed=True
    )
    assert summary.episodes == 2 and summary.frames == sum(r.frames for r in refs)
    dataset_cls = real_lerobot_dataset()
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    ds = dataset_cls("intern/jobs", root=tmp_path / "ds")
    assert ds.num_episodes == 2 and len(ds) == summary.frames
    assert ds.meta.camera_keys == [f"observation.images.{c}" for c in sorted(CAMERAS)]
    ep = load_episode(store.manifest_path(refs[0].path))
    with np.load(store.folder(refs[0].path) / "episode.npz") as z:
        kept, head = z["image_step"].tolist(), z["image_head"]
    tick = next(t for t in range(1, ep.length) if t not in kept)  # a tick between frames
    held = head[max(i for i, k in enumerate(kept) if k <= tick)]
    img = ds[tick]["observation.images.head"].numpy()
    assert np.allclose(img, held.transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert np.array_equal(ds[tick]["observation.state"].numpy(), ep.state[tick])
