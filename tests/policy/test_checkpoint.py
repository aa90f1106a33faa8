import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from policy.base import CheckpointError
from policy.checkpoint import load_checkpoint, read_config, save_checkpoint
from policy.flow import FlowPolicyModel
from policy.local import LocalPolicy
from tests.policy.helpers import make_obs
from tests.policy.test_model import TINY


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(3)
    model = FlowPolicyModel(TINY)
    model.state_std.fill_(2.0)  # normalisation travels with the weights
    version = save_checkpoint(model, tmp_path / "ck", train_info={"steps": 1})
    return model, version, tmp_path / "ck"


def test_checkpoint_round_trips_through_safetensors(saved):
    model, version, folder = saved
    loaded, v2, doc = load_checkpoint(folder)
    assert v2 == version == doc["version"] and doc["train"] == {"steps": 1}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
    obs = make_obs(2)
    a = LocalPolicy(model, version).infer(obs)
    b = LocalPolicy.load(folder).infer(obs)
    np.testing.assert_array_equal(a, b)


def test_version_is_a_content_hash(saved, tmp_path):
    model, version, _ = saved
    assert save_checkpoint(model, tmp_path / "again") == version
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert save_checkpoint(model, tmp_path / "changed") != version


def test_modified_or_broken_checkpoints_are_refused(saved):
    _, _, folder = saved
    weights = folder / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="modified or is incomplete"):
        load_checkpoint(folder)


def test_config_edit_is_refused_and_missing_files_named(saved, tmp_path):
    _, _, folder = saved
    doc = json.loads((folder / "config.json").read_text())
    doc["model"]["flow_steps"] = 9
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match=r"config\.json"):
        read_config(tmp_path)
