"""Episodes exported as a LeRobotDataset v3.0 folder, read back by the real ``lerobot``.

The reading side needs ``lerobot`` (0.4.x, the releases of codebase v3.0) with its dataset
dependencies; without them the reading tests skip and say what to install. The public
index's torchvision is built against CUDA torch: beside a CPU-only torch its C extension
cannot load, and its Python side then fails on two operator registrations. Declaring those
two operators' schemas (without kernels) first lets the real torchvision import; the
dataset reader only uses its pure-Python ``ToTensor``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot.env import CellEnv
from robot.episode_files import load_episode, record_episode, write_demos
from robot.jobs import Task
from robot.lerobot_v3 import ExportError, export_episodes, png_bytes
from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM, STATE_LAYOUT

INSTALL = (
    "pip install --no-deps lerobot==0.4.4 torchvision==0.28.0 && pip install "
    "'datasets>=4,<5' 'huggingface-hub>=0.34.2,<0.36' 'accelerate>=1.10,<2' pillow "
    "'av>=15,<16' 'jsonlines>=4,<5'"
)


def _torchvision_ops_declared() -> None:
    """Declare torchvision's nms/qnms schemas when its C extension cannot load here."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    libs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"))
    try:
        if libs:
            ctypes.CDLL(str(libs[0]))
            return
    except OSError:
        pass
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    for op in ("nms", "qnms"):
        # Declared already by an earlier test in this process: nothing to do.
        with contextlib.suppress(RuntimeError):
            torch.library.define(f"torchvision::{op}", schema)


def real_lerobot_dataset() -> Any:
    """The real ``LeRobotDataset`` class, or a skip that names the install."""
    try:
        _torchvision_ops_declared()
        module = importlib.import_module("lerobot.datasets.lerobot_dataset")
    except ImportError as exc:
        pytest.skip(f"lerobot's dataset reader is not importable ({exc}); install: {INSTALL}")
    return module.LeRobotDataset


class StandStill:
    """A policy that never moves: its episodes run out of time, NOK."""

    version = "stand-still"

    def infer(self, obs: Any, prefix: np.ndarray | None = None) -> np.ndarray:
        return np.zeros((8, ACTION_DIM), np.float32)

    def reset(self) -> None:
        pass


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two expert demos (OK) and one stand-still run (NOK), with cameras."""
    folder = tmp_path_factory.mktemp("episodes")
    write_demos(Task.NUT_INSTALL, 2, folder, seed_start=3)
    env = CellEnv(Task.NUT_INSTALL, seed=9)
    record_episode(env, folder, "stand_still", StandStill(), expert_labels=True)
    return folder


def test_png_is_a_lossless_rgb_image() -> None:
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    pil = pytest.importorskip("PIL.Image", reason=f"needs pillow to decode; install: {INSTALL}")
    import io

    assert np.array_equal(np.asarray(pil.open(io.BytesIO(png_bytes(img)))), img)


def test_real_reader_loads_the_demos(recorded: Path, tmp_path: Path, monkeypatch) -> None:
    dataset_cls = real_lerobot_dataset()
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    summary = export_episodes(recorded, tmp_path / "ds")
    assert (summary.episodes, summary.skipped_failed, summary.tasks) == (2, 1, 1)
    demos = [load_episode(p) for p in sorted(recorded.glob("nut_install_s*.json"))]

    ds = dataset_cls("intern/nut_install", root=tmp_path / "ds")
    assert ds.num_episodes == 2 and ds.fps == 30
    assert len(ds) == ds.num_frames == summary.frames == sum(e.length for e in demos)
    assert ds.meta.info["codebase_version"] == "v3.0"
    assert ds.meta.camera_keys == [f"observation.images.{c}" for c in sorted(CAMERAS)]
    assert ds.meta.names["observation.state"] == list(STATE_LAYOUT)
    assert ds.meta.shapes["action"] == (ACTION_DIM,)

    last = demos[0].length - 1
    item = ds[last]
    assert item["observation.state"].shape == (STATE_DIM,)
    assert np.array_equal(item["observation.state"].numpy(), demos[0].state[last])
    assert np.array_equal(item["action"].numpy(), demos[0].action[last])
    for cam in CAMERAS:
        img = item[f"observation.images.{cam}"]
        assert tuple(img.shape) == (3, IMAGE_SIZE, IMAGE_SIZE)
        expect = demos[0].images[cam][last].transpose(2, 0, 1) / 255.0
        assert np.allclose(img.numpy(), expect, atol=1e-6)
    assert bool(item["next.success"]) and bool(item["next.done"])
    assert not bool(ds[0]["next.success"])
    assert item["task"] == demos[0].manifest["instruction"]
    second = ds[demos[0].length]
    assert int(second["episode_index"]) == 1 and int(second["frame_index"]) == 0
    stats = ds.meta.stats["observation.state"]
    assert np.allclose(stats["mean"], np.concatenate([e.state for e in demos]).mean(axis=0))
    assert ds.meta.stats["observation.images.head"]["mean"].shape == (3, 1, 1)


def test_nok_episodes_on_request(recorded: Path, tmp_path: Path, monkeypatch) -> None:
    dataset_cls = real_lerobot_dataset()
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    summary = export_episodes(recorded, tmp_path / "ds", include_failed=True)
    assert (summary.episodes, summary.skipped_failed) == (3, 0)
    ds = dataset_cls("intern/nut_install", root=tmp_path / "ds")
    assert ds.num_episodes == 3
    ends = [int(ds.meta.episodes[i]["dataset_to_index"]) - 1 for i in range(3)]
    flags = [(bool(ds[e]["next.done"]), bool(ds[e]["next.success"])) for e in ends]
    assert flags == [(True, True), (True, True), (True, False)]
    # Demos carry the expert's actions; the stand-still run was recorded with them too.
    assert "expert_action" in ds.meta.features


def test_bad_input_is_refused_with_a_reason(recorded: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="the writer needs pyarrow: pip install pyarrow")
    with pytest.raises(ExportError, match="not a folder"):
        export_episodes(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_episodes(recorded, tmp_path / "full")
    mixed = tmp_path / "mixed"
    write_demos(Task.NUT_INSTALL, 1, mixed, seed_start=3)
    write_demos(Task.NUT_INSTALL, 1, mixed, seed_start=4, render=False)
    with pytest.raises(ExportError, match="cameras; export them apart"):
        export_episodes(mixed, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no episodes"):
        export_episodes(tmp_path / "empty", tmp_path / "out")
    info = json.dumps({"format": "other"})
    (tmp_path / "empty" / "a.json").write_text(info)
    with pytest.raises(ExportError, match="not an intern-cells-episode manifest"):
        export_episodes(tmp_path / "empty", tmp_path / "out")


def test_cli_export_and_its_errors(recorded: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cell.cli import build_app

    runner, app = CliRunner(), build_app()
    pytest.importorskip("pyarrow", reason="the writer needs pyarrow: pip install pyarrow")
    res = runner.invoke(
        app, ["episodes", "export", "--from", str(recorded), "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 0, res.output
    assert "wrote 2 episodes" in res.output and "1 NOK left out" in res.output
    assert json.loads((tmp_path / "d/meta/info.json").read_text())["total_episodes"] == 2
    res = runner.invoke(
        app,
        ["episodes", "export", "--from", str(recorded), "--out", str(tmp_path / "e"), "--nok"],
    )
    assert res.exit_code == 0 and "wrote 3 episodes" in res.output, res.output
    res = runner.invoke(
        app, ["episodes", "export", "--from", str(recorded), "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 2 and "not an empty folder" in res.output
    assert "Traceback" not in res.output
