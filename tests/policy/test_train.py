"""The training recipe end to end at toy size: demonstrations, cloning, relabelling, saving."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from policy.checkpoint import read_config
from policy.data import ChunkDataset, collect_expert_episode
from policy.flow import FlowPolicyModel
from policy.local import LocalPolicy
from policy.model import ModelConfig
from policy.train import TrainConfig, make_env, train
from robot.jobs import Task


def _tiny(out: Path, **kw: object) -> TrainConfig:
    base = dict(
        task=Task.SCREWING,
        out=out,
        expert_episodes=2,
        steps=3,
        batch=4,
        dagger_rounds=1,
        dagger_episodes=1,
        dagger_steps=2,
        d_model=32,
    )
    return TrainConfig(**(base | kw))  # type: ignore[arg-type]


def test_a_toy_run_writes_a_loadable_deterministic_checkpoint(tmp_path: Path) -> None:
    logs: list[str] = []
    summary = train(_tiny(tmp_path / "ck"), log=logs.append)
    doc = read_config(tmp_path / "ck")
    assert doc["version"] == summary["version"]
    assert doc["model"]["extra"] == {"noise_scale": "0"}
    assert [r["round"] for r in doc["train"]["relabel_rounds"]] == [0]
    assert any("relabel round 0" in line for line in logs)
    policy = LocalPolicy.load(tmp_path / "ck")
    assert policy.noise_scale == 0.0
    obs = make_env(_tiny(tmp_path), 5).reset()
    np.testing.assert_array_equal(policy.infer(obs), policy.infer(obs))  # no sampling noise


def test_training_continues_from_a_checkpoint(tmp_path: Path) -> None:
    first = train(_tiny(tmp_path / "a", dagger_rounds=0), log=lambda _: None)
    second = train(_tiny(tmp_path / "b", dagger_rounds=0, init=tmp_path / "a"), log=lambda _: None)
    assert second["continued_from"] == first["version"] != second["version"]


# Each of what a checkpoint says about running its chunks: set, kept, then overridden.
@pytest.mark.parametrize(("name", "own", "later"), [("replan_age", 11, 6), ("join_ticks", 6, 0)])
def test_a_checkpoint_keeps_its_run_settings_through_continued_training(
    tmp_path: Path, name: str, own: int, later: int
) -> None:
    train(_tiny(tmp_path / "a", dagger_rounds=0, **{name: own}), log=lambda _: None)
    assert getattr(LocalPolicy.load(tmp_path / "a"), name) == own
    train(_tiny(tmp_path / "b", dagger_rounds=0, init=tmp_path / "a"), log=lambda _: None)
    assert read_config(tmp_path / "b")["model"]["extra"][name] == str(own)
    train(_tiny(tmp_path / "c", dagger_rounds=0, init=tmp_path / "b", **{name: later}), log=print)
    assert getattr(LocalPolicy.load(tmp_path / "c"), name) == later


def test_action_units_have_a_floor_so_large_corrections_stay_in_range(tmp_path: Path) -> None:
    env = make_env(_tiny(tmp_path, task=Task.NUT_INSTALL), 3)
    ep = collect_expert_episode(env, task="nut_install", seed=3)
    data = ChunkDataset(30)
    data.add([ep])
    model = FlowPolicyModel(ModelConfig(d_model=32))
    floor = torch.full((ep.action.shape[1],), 0.5)
    model.set_normalisation(
        torch.from_numpy(data.all_states()), torch.from_numpy(data.all_actions()), floor=floor
    )
    assert torch.all(model.action_std >= 0.5)


def test_relabelled_samples_are_drawn_by_their_weight(tmp_path: Path) -> None:
    ep = collect_expert_episode(make_env(_tiny(tmp_path), 4), task="screwing", seed=4)
    data = ChunkDataset(30)
    data.add([ep])
    data.add([ep], weight=3.0)
    p = data.weights()
    n = len(ep)
    assert p[n:].sum() == pytest.approx(3 * p[:n].sum())


def test_the_teacher_aims_at_the_truth_unless_asked_for_the_experts_error(
    tmp_path: Path,
) -> None:
    exact = make_env(_tiny(tmp_path, task=Task.NUT_INSTALL), 6)
    realistic = make_env(_tiny(tmp_path, task=Task.NUT_INSTALL, teacher_error=True), 6)
    obs_a, obs_b = exact.reset(), realistic.reset()
    # Same world and views; only the labels differ.
    np.testing.assert_array_equal(obs_a.images["wrist_left"], obs_b.images["wrist_left"])
    np.testing.assert_array_equal(exact.task.aim()[0], realistic.task.aim()[0])
    assert not exact.task.expert_bias.any() and realistic.task.expert_bias.any()
    assert not np.array_equal(exact.expert_action(), realistic.expert_action())


def test_the_training_prefix_keeps_the_tool_and_blurs_the_motion() -> None:
    from policy.chunking import ACTION_SCALE, MOTION_DIMS, TOOL_DIMS
    from policy.train import corrupt_prefix

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (512, 30, 10)).astype(np.float32) * ACTION_SCALE
    before = actions.copy()
    out = corrupt_prefix(actions, rng, gain_low=0.25, noise=0.0)
    np.testing.assert_array_equal(actions, before)  # the labels are left alone
    np.testing.assert_array_equal(out[..., TOOL_DIMS], actions[..., TOOL_DIMS])
    ratio = out[..., MOTION_DIMS] / actions[..., MOTION_DIMS]
    # One gain per sample and dimension, spread over the whole range.
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-4)
    assert 0.25 <= ratio.min() < 0.3 and 1.45 < ratio.max() <= 1.5
    jittered = corrupt_prefix(np.zeros_like(actions), rng, gain_low=1.0, noise=0.05)
    sd = jittered[..., MOTION_DIMS].std(axis=(0, 1)) / ACTION_SCALE[MOTION_DIMS]
    np.testing.assert_allclose(sd, 0.05, rtol=0.05)  # jitter in units of the speed limit


def test_relabelled_samples_show_the_plan_the_policy_committed_as_their_prefix(
    tmp_path: Path,
) -> None:
    from policy.tokenizer import Tokenizer
    from policy.train import _to_batch, relabel_episode

    cfg = _tiny(tmp_path, task=Task.NUT_INSTALL)
    policy = LocalPolicy(FlowPolicyModel(ModelConfig(d_model=32)), "untrained", noise_scale=0.0)
    rng = np.random.default_rng(0)
    ep, _ = relabel_episode(policy, cfg, 7, rng, beta=0.0)
    assert ep.executed is not None and ep.executed.shape == ep.action.shape
    # An untrained policy moves nothing; the teacher's labels do.
    assert not np.abs(ep.executed[:, :3]).any() and np.abs(ep.action[:, :3]).any()
    demo = collect_expert_episode(make_env(cfg, 8), task="nut_install", seed=8)
    assert demo.executed is None
    data = ChunkDataset(30)
    data.add([ep])
    b = data.sample(rng, 16)
    assert b["has_executed"].all()
    batch = _to_batch(b, Tokenizer(ModelConfig().vocab, ModelConfig().text_len), rng, 8, cfg)
    np.testing.assert_array_equal(batch["prefix"].numpy(), b["executed"])


def test_relabelling_drives_under_both_executors_in_turn() -> None:
    from policy.exec_config import ExecConfig, ExecMode
    from policy.train import relabel_mode

    modes = [relabel_mode(s) for s in range(6)]
    assert set(modes) == {ExecMode.SYNC, ExecConfig().mode}
    assert all(a is not b for a, b in pairwise(modes))
