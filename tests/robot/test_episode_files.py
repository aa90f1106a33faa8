"""Episodes on disk: npz + JSON manifest, loaded back as numpy arrays, never with pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robot.env import CellEnv, rollout
from robot.episode_files import (
    FORMAT,
    SCHEMA_VERSION,
    EpisodeFormatError,
    EpisodeRecorder,
    iter_episodes,
    load_episode,
    record_episode,
    write_demos,
)
from robot.jobs import Task
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM, STATE_LAYOUT


def test_round_trip_keeps_every_tick_byte_for_byte(tmp_path: Path) -> None:
    env = CellEnv(Task.NUT_INSTALL, seed=6)
    seen: list = []
    rec = EpisodeRecorder(env)

    def both(obs, applied, expert) -> None:
        seen.append((obs, applied.copy()))
        rec.add(obs, applied, expert)

    out = rollout(env, on_step=both, expert_labels=True)
    path = rec.save(tmp_path, "ep")
    ep = load_episode(path)
    assert ep.length == len(seen) == out.steps
    for t, (obs, applied) in enumerate(seen):
        for cam in CAMERAS:
            assert ep.images[cam][t].tobytes() == obs.images[cam].tobytes()
        assert ep.state[t].tobytes() == obs.state.tobytes()
        assert ep.action[t].tobytes() == applied.tobytes()
        assert ep.step[t] == obs.step and ep.round[t] == obs.extras["round"]
    assert ep.expert_action is not None and ep.expert_action.shape == (ep.length, ACTION_DIM)
    assert ep.outcome == out


def test_manifest_documents_the_episode(tmp_path: Path) -> None:
    path = record_episode(CellEnv(Task.SCREWING, seed=2, difficulty=1.5), tmp_path, "one")
    m = json.loads(path.read_text())
    assert m["format"] == FORMAT and m["schema_version"] == SCHEMA_VERSION
    assert (m["task"], m["seed"], m["difficulty"]) == ("screwing", 2, 1.5)
    assert m["cameras"] == {c: [IMAGE_SIZE, IMAGE_SIZE, 3] for c in CAMERAS}
    assert m["state_layout"] == list(STATE_LAYOUT) and len(m["action_layout"]) == ACTION_DIM
    assert m["arrays"]["state"] == {"dtype": "float32", "shape": [m["length"], STATE_DIM]}
    assert m["policy_version"] == "expert" and m["outcome"]["done"] is True
    assert m["instruction"] == "drive 2 screws per side into the cover"


def test_demos_without_cameras_and_iteration(tmp_path: Path) -> None:
    paths = write_demos(Task.MATERIAL_HANDLING, 2, tmp_path, seed_start=40, render=False)
    assert [p.name for p in paths] == [
        "material_handling_s000040.json",
        "material_handling_s000041.json",
    ]
    eps = list(iter_episodes(tmp_path))
    assert len(eps) == 2 and all(e.images == {} for e in eps)
    assert eps[0].manifest["cameras"] == {}


def test_bad_files_fail_with_a_clear_error_and_pickles_are_refused(tmp_path: Path) -> None:
    path = record_episode(CellEnv(Task.NUT_INSTALL, seed=1, render=False), tmp_path, "ep")
    npz = tmp_path / "ep.npz"
    with pytest.raises(EpisodeFormatError, match="cannot read manifest"):
        load_episode(tmp_path / "missing.json")
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "schema_version": 99}))
    with pytest.raises(EpisodeFormatError, match="schema version 99"):
        load_episode(path)
    path.write_text(json.dumps(m))
    np.savez(npz, state=np.array([{"x": 1}], dtype=object))  # an object array needs pickle
    with pytest.raises(EpisodeFormatError, match="cannot read arrays"):
        load_episode(path)
    np.savez(npz, state=np.zeros((3, STATE_DIM), np.float32))
    with pytest.raises(EpisodeFormatError, match="does not match the manifest"):
        load_episode(path)
