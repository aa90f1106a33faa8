from dataclasses import replace

import numpy as np
import pytest
import torch

from policy.base import CheckpointError, PolicyInputError
from policy.flow import FlowPolicyModel
from policy.local import LocalPolicy
from policy.model import ModelConfig, prefix_mask
from robot.schema import ACTION_DIM
from tests.policy.helpers import make_obs

TINY = replace(ModelConfig(), d_model=32, n_heads=2, vision_channels=(8, 8), keypoints=4)


def batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randint(0, 255, (n, 3, 64, 64, 3), dtype=torch.uint8, generator=g),
        "text": torch.randint(1, 20, (n, TINY.text_len), generator=g),
        "state": torch.randn(n, TINY.state_dim, generator=g),
        "actions": torch.randn(n, TINY.horizon, ACTION_DIM, generator=g) * 0.01,
        "valid": torch.ones(n, TINY.horizon, dtype=torch.bool),
        "prefix_len": torch.randint(0, TINY.max_prefix + 1, (n,), generator=g),
    }


def test_lambda_mask_keeps_far_noisy_tokens_off_the_prefix():
    m = prefix_mask(torch.tensor([0, 3]), horizon=10, window=2)[:, 0]
    assert m[0].all()  # no prefix: full attention
    d = m[1]
    assert d[:3, :3].all() and not d[:3, 3:].any()  # prefix sees only the prefix
    assert d[3:5, :3].all()  # the two tokens right after it see it
    assert not d[5:, :3].any()  # later ones do not
    assert d[3:, 3:].all()


def test_noisy_tokens_beyond_the_window_do_not_read_the_prefix_directly():
    torch.manual_seed(0)
    net = FlowPolicyModel(replace(TINY, expert_layers=1)).net
    torch.nn.init.normal_(net.act_out.weight, std=0.1)
    b = batch(1)
    mem, keep, cond = net.encode(
        b["images"].permute(0, 1, 4, 2, 3).float() / 255, b["text"], b["state"]
    )
    x = torch.randn(1, TINY.horizon, ACTION_DIM)
    t = torch.full((1, TINY.horizon), 0.7)
    d = torch.tensor([4])
    v1 = net.velocity(x, t, mem, keep, d, cond)
    x2 = x.clone()
    x2[:, :4] += 1.0  # a different prefix
    v2 = net.velocity(x2, t, mem, keep, d, cond)
    w = TINY.prefix_window
    assert torch.allclose(v1[:, 4 + w :], v2[:, 4 + w :], atol=1e-6)
    assert not torch.allclose(v1[:, 4 : 4 + w], v2[:, 4 : 4 + w], atol=1e-4)


def test_training_step_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = FlowPolicyModel(TINY)
    b = batch(8)
    model.set_normalisation(b["state"], b["actions"].reshape(-1, ACTION_DIM))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    first = []
    last = []
    for i in range(60):
        loss = model.loss(**b, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        (first if i < 10 else last).append(loss.item())
    # Flow-matching loss keeps the irreducible noise term; a working gradient path still
    # takes a clear bite out of it within a few dozen steps.
    assert np.mean(last[-10:]) < 0.9 * np.mean(first)


def test_loss_ignores_prefix_and_invalid_tokens():
    model = FlowPolicyModel(TINY)
    b = batch(4)
    b["prefix_len"] = torch.full((4,), TINY.horizon - 2)
    b["valid"][:, -1] = False
    base = model.loss(**b, generator=torch.Generator().manual_seed(0))
    b["actions"][:, : TINY.horizon - 2] += 5.0  # prefix values change the conditioning ...
    b["actions"][:, -1] += 5.0  # ... and an invalid token is never scored
    other = model.loss(**b, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(base) and torch.isfinite(other)
    b2 = batch(4)
    b2["valid"][:] = False
    assert model.loss(**b2).item() == 0.0


def test_local_policy_keeps_the_prefix_and_checks_its_inputs():
    policy = LocalPolicy(FlowPolicyModel(TINY), "tiny")
    obs = make_obs(3)
    prefix = np.random.default_rng(0).normal(0, 0.005, (5, ACTION_DIM)).astype(np.float32)
    chunk = policy.infer(obs, prefix)
    assert chunk.shape == (TINY.horizon, ACTION_DIM) and chunk.dtype == np.float32
    np.testing.assert_array_equal(chunk[:5], prefix)
    policy.reset()
    again = policy.infer(obs, prefix)
    np.testing.assert_array_equal(chunk, again)  # seeded sampling replays after reset
    with pytest.raises(PolicyInputError, match="at most"):
        policy.infer(obs, np.zeros((TINY.max_prefix + 1, ACTION_DIM), np.float32))
    obs.images["head"] = obs.images["head"][:, :10]
    with pytest.raises(PolicyInputError, match="uint8"):
        policy.infer(obs)


def _dark_spot(col: int) -> torch.Tensor:
    """Images of a grey field with one dark 3x3 spot at row 32, column ``col``."""
    img = torch.full((1, 3, 64, 64, 3), 180, dtype=torch.uint8)
    img[:, :, 31:34, col - 1 : col + 2] = 5
    return img


def test_keypoint_skip_carries_the_fine_keypoint_to_every_action_token():
    torch.manual_seed(0)
    net = FlowPolicyModel(TINY).net
    text = torch.ones(1, TINY.text_len, dtype=torch.long)
    state = torch.zeros(1, TINY.state_dim)
    conds = []
    for col in (30, 34):
        _, _, cond = net.encode(FlowPolicyModel.images_in(_dark_spot(col)), text, state)
        conds.append(cond)
    assert conds[0] is not None and conds[0].shape == (1, TINY.d_model)
    # A four-pixel shift of the spot changes the conditioning: the position travels
    # straight to the action tokens instead of only through attention.
    assert (conds[0] - conds[1]).abs().max() > 1e-3
    off = FlowPolicyModel(replace(TINY, keypoint_skip=False)).net
    assert off.kp_cond is None
    assert off.encode(FlowPolicyModel.images_in(_dark_spot(30)), text, state)[2] is None


def test_configs_written_before_the_keypoint_skip_load_without_it():
    doc = ModelConfig().to_json()
    del doc["keypoint_skip"]
    assert ModelConfig.from_json(doc).keypoint_skip is False
    assert ModelConfig.from_json(ModelConfig().to_json()).keypoint_skip is True


def test_aim_offsets_enter_the_loss_only_where_valid():
    torch.manual_seed(0)
    model = FlowPolicyModel(TINY)
    b = batch(4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    aim = torch.full((4, 2, 2), 0.004)
    none = torch.zeros(4, 2, dtype=torch.bool)
    base = model.loss(**b, generator=g(), aim=aim, aim_valid=none)
    assert base == model.loss(**b, generator=g(), aim=aim * 3, aim_valid=none)
    some = none.clone()
    some[0, 1] = True
    near = model.loss(**b, generator=g(), aim=aim, aim_valid=some)
    far = model.loss(**b, generator=g(), aim=aim * 3, aim_valid=some)
    assert far > near > base


def test_a_separate_prefix_replaces_the_clean_tokens_and_nothing_else():
    torch.manual_seed(0)
    model = FlowPolicyModel(TINY)
    torch.nn.init.normal_(model.net.act_out.weight, std=0.1)  # zero at init: see the input
    b = batch(4)
    b["prefix_len"] = torch.full((4,), 3)

    def loss(prefix: torch.Tensor | None) -> torch.Tensor:
        torch.manual_seed(1)  # the flow times come from the global generator
        return model.loss(**b, prefix=prefix, generator=torch.Generator().manual_seed(0))

    default = loss(None)
    assert torch.equal(loss(b["actions"].clone()), default)
    moved = b["actions"].clone()
    moved[:, 3:] += 5.0  # rows past the prefix are never read from it
    assert torch.equal(loss(moved), default)
    moved[:, :3] += 5.0
    assert not torch.equal(loss(moved), default)


@pytest.mark.parametrize("stored", ["0", "30", "11.5", "eleven"])
def test_a_checkpoint_with_a_bad_replan_age_is_refused_with_the_reason(stored):
    model = FlowPolicyModel(replace(TINY, extra={"replan_age": stored}))
    with pytest.raises(CheckpointError, match=f"checkpoint tiny: replan_age '{stored}' is not"):
        LocalPolicy(model, "tiny")
    good = FlowPolicyModel(replace(TINY, extra={"replan_age": "11"}))
    assert LocalPolicy(good, "tiny").replan_age == 11


@pytest.mark.parametrize("stored", ["-1", "30", "6.0"])
def test_a_checkpoint_with_a_bad_join_is_refused_with_the_reason(stored):
    model = FlowPolicyModel(replace(TINY, extra={"join_ticks": stored}))
    with pytest.raises(CheckpointError, match=f"checkpoint tiny: join_ticks '{stored}' is not"):
        LocalPolicy(model, "tiny")
    for stored_ok, expected in (("0", 0), ("6", 6)):
        good = FlowPolicyModel(replace(TINY, extra={"join_ticks": stored_ok}))
        assert LocalPolicy(good, "tiny").join_ticks == expected
    assert LocalPolicy(FlowPolicyModel(TINY), "tiny").join_ticks is None
