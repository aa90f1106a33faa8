"""Checkpoints: safetensors weights beside a JSON config, named by a content hash.

A checkpoint is a folder with

* ``model.safetensors`` — every tensor of the model (weights and normalisation), no
  pickle anywhere;
* ``config.json`` — ``{"version": ..., "model": ModelConfig, "train": {...}}``.

``version`` is the first 16 hex digits of SHA-256 over the weights file and the canonical
JSON of the model config; loading recomputes it and refuses a mismatch, so the version
recorded with every job names exactly the weights that ran.

Reading a config imports no torch (the cell asks for versions); saving and loading the
weights import it when called.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policy.base import CheckpointError

if TYPE_CHECKING:
    from policy.flow import FlowPolicyModel

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def content_version(weights: bytes, model_config: dict[str, Any]) -> str:
    h = hashlib.sha256(weights)
    h.update(json.dumps(model_config, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()[:16]


def save_checkpoint(
    model: FlowPolicyModel, folder: Path, *, train_info: dict[str, Any] | None = None
) -> str:
    """Write ``model`` to ``folder`` (created); returns the version id."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    weights_path = folder / WEIGHTS
    tmp = weights_path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"format": "intern-cells-vla"})
    cfg = model.cfg.to_json()
    version = content_version(tmp.read_bytes(), cfg)
    os.replace(tmp, weights_path)
    doc = {"version": version, "model": cfg, "train": train_info or {}}
    (folder / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return version


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG} in {folder}: not a policy checkpoint folder")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or "model" not in doc or "version" not in doc:
        raise CheckpointError(f"{path} lacks 'model' or 'version'")
    return doc


def load_checkpoint(folder: Path) -> tuple[FlowPolicyModel, str, dict[str, Any]]:
    """Load a checkpoint folder; returns (model in eval mode, version, config document)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from policy.flow import FlowPolicyModel
    from policy.model import ModelConfig

    doc = read_config(folder)
    weights_path = folder / WEIGHTS
    if not weights_path.is_file():
        raise CheckpointError(f"no {WEIGHTS} in {folder}")
    version = content_version(weights_path.read_bytes(), doc["model"])
    if version != doc["version"]:
        raise CheckpointError(
            f"{folder}: weights hash to {version} but config says {doc['version']}; "
            "the checkpoint was modified or is incomplete"
        )
    try:
        cfg = ModelConfig.from_json(doc["model"])
        tensors = load_file(str(weights_path))
    except (ValueError, TypeError, SafetensorError) as exc:
        raise CheckpointError(f"{folder}: cannot read checkpoint: {exc}") from exc
    model = FlowPolicyModel(cfg)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder}: weights do not fit the config: {exc}") from exc
    model.eval()
    return model, version, doc
