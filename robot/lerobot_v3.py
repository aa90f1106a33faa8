"""Recorded episodes exported as one LeRobotDataset (codebase version ``v3.0``) folder.

``export_episodes(source, out)`` reads every complete episode of ``source`` (the ``.npz``
+ ``.json`` pairs of ``robot.episode_files``) and writes under ``out``:

* ``data/chunk-CCC/file-FFF.parquet``: one row per tick, episodes one after another, a new
  file once a file holds about ``DATA_FILE_MB`` megabytes;
* ``meta/episodes/chunk-000/file-000.parquet``: one row per episode (its task, length,
  data file, global row range ``dataset_from_index .. dataset_to_index`` and its stats);
* ``meta/tasks.parquet``: the instructions, indexed by text, with their ``task_index``;
* ``meta/stats.json``: min, max, mean, std, count and quantiles of every numeric feature;
* ``meta/info.json``, written last: its presence means the folder is complete.

Features: ``observation.state`` and ``action`` (float32, with the component names of the
manifests), ``observation.images.<camera>`` as image features (PNG bytes in the parquet,
shape ``[H, W, 3]``), ``expert_action`` when every episode carries expert labels, and
``next.done`` / ``next.success`` (bool, true on the last tick of an episode that ended
done / successful). ``timestamp`` is ``frame_index / fps``: the ticks of an episode are
evenly spaced in control time; scripted phases between rounds take no ticks.

By default only successful episodes are exported (they are demonstrations);
``include_failed=True`` keeps NOK ones too, told apart by ``next.success``.

The writer needs ``pyarrow`` (not a core dependency), imported when an export starts. The
``lerobot`` package itself is not needed to write, only to read the result.
"""

from __future__ import annotations

import importlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot.episode_files import FORMAT, Episode, load_episode
from robot.lerobot_stats import aggregate_stats, episode_stats

CODEBASE_VERSION = "v3.0"
ROBOT_TYPE = "intern_cells_humanoid"
CHUNK_SIZE = 1000  # files per chunk folder, as the reader's default
DATA_FILE_MB = 100  # a data file is closed once it holds about this many megabytes
INDEX_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
FLAGS = ("next.done", "next.success")


class ExportError(ValueError):
    """Episodes that cannot be exported as one dataset; the message says why."""


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    root: Path
    episodes: int
    frames: int
    tasks: int
    skipped_failed: int


def _arrow() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, or a clear error naming the install."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ExportError(
            "exporting a LeRobot dataset needs pyarrow: pip install pyarrow"
        ) from None


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a uint8 (H, W, 3) image (no filter, zlib level 6)."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    header = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def dataset_features(first: Episode, *, with_expert: bool) -> dict[str, dict[str, Any]]:
    """The ``info.json`` features of a dataset whose episodes look like ``first``."""
    m = first.manifest
    feats: dict[str, dict[str, Any]] = {
        "observation.state": {
            "dtype": "float32",
            "shape": [first.state.shape[1]],
            "names": list(m["state_layout"]),
        },
        "action": {
            "dtype": "float32",
            "shape": [first.action.shape[1]],
            "names": list(m["action_layout"]),
        },
    }
    if with_expert:
        feats["expert_action"] = {**feats["action"]}
    for cam, shape in sorted(m["cameras"].items()):
        feats[f"observation.images.{cam}"] = {
            "dtype": "image",
            "shape": list(shape),
            "names": ["height", "width", "channels"],
        }
    for flag in FLAGS:
        feats[flag] = {"dtype": "bool", "shape": [1], "names": None}
    for name, dtype in INDEX_FEATURES.items():
        feats[name] = {"dtype": dtype, "shape": [1], "names": None}
    return feats


def _columns(
    ep: Episode, feats: dict[str, dict[str, Any]], episode_index: int, start: int, task: int
) -> dict[str, np.ndarray | list[Any]]:
    """One episode's columns; image columns are lists of PNG structs."""
    n, fps = ep.length, ep.manifest["control_hz"]
    outcome = ep.outcome
    last = np.arange(n) == n - 1
    cols: dict[str, np.ndarray | list[Any]] = {
        "observation.state": ep.state.astype(np.float32),
        "action": ep.action.astype(np.float32),
        "next.done": last & outcome.done,
        "next.success": last & outcome.success,
        "timestamp": (np.arange(n) / fps).astype(np.float32),
        "frame_index": np.arange(n, dtype=np.int64),
        "episode_index": np.full(n, episode_index, dtype=np.int64),
        "index": np.arange(start, start + n, dtype=np.int64),
        "task_index": np.full(n, task, dtype=np.int64),
    }
    if "expert_action" in feats:
        assert ep.expert_action is not None  # all episodes have it, checked before
        cols["expert_action"] = ep.expert_action.astype(np.float32)
    for cam, frames in ep.images.items():
        cols[f"observation.images.{cam}"] = [
            {"bytes": png_bytes(img), "path": None} for img in frames
        ]
    return cols


def _arrow_type(pa: Any, ft: dict[str, Any]) -> Any:
    if ft["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    return value if list(ft["shape"]) == [1] else pa.list_(value, ft["shape"][0])


def _arrow_table(pa: Any, schema: Any, cols: dict[str, Any], feats: dict[str, Any]) -> Any:
    arrays = []
    for key, ft in feats.items():
        col, kind = cols[key], schema.field(key).type
        if ft["dtype"] != "image" and list(ft["shape"]) != [1]:
            flat = pa.array(np.ascontiguousarray(col).reshape(-1))
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, ft["shape"][0]))
        else:
            arrays.append(pa.array(col, type=kind))
    return pa.Table.from_arrays(arrays, schema=schema)


def _tasks_table(pa: Any, tasks: list[str]) -> Any:
    """``meta/tasks.parquet`` as pandas writes a frame indexed by the task text, so the
    reader's ``pd.read_parquet`` gets the text back as the index."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.Table.from_arrays(
        [pa.array(range(len(tasks)), type=pa.int64()), pa.array(tasks, type=pa.string())],
        schema=schema,
    )


def _select(paths: Sequence[Path], include_failed: bool) -> tuple[list[dict[str, Any]], int]:
    """Manifests to export (each with its ``path``), in order, and how many NOK were left."""
    chosen, skipped = [], 0
    for path in paths:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"{path}: cannot read manifest: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ExportError(f"{path}: not an {FORMAT} manifest")
        if include_failed or (manifest.get("outcome") or {}).get("success") is True:
            chosen.append({**manifest, "path": path})
        else:
            skipped += 1
    return chosen, skipped


def _signature(m: dict[str, Any]) -> tuple[Any, ...]:
    cams = tuple(sorted((k, tuple(v)) for k, v in m["cameras"].items()))
    return (m["control_hz"], tuple(m["state_layout"]), tuple(m["action_layout"]), cams)


def _check_alike(manifests: list[dict[str, Any]]) -> None:
    first = manifests[0]
    for m in manifests[1:]:
        if _signature(m) != _signature(first):
            raise ExportError(
                f"{m['path']} differs from {first['path']} in control rate, state or "
                "action layout or cameras; export them apart"
            )


@dataclass
class _DataFiles:
    """Episode rows into ``data/chunk-CCC/file-FFF.parquet``, a new file past the limit."""

    pq: Any
    root: Path
    schema: Any
    chunk: int = 0
    file: int = 0
    size: int = 0
    writer: Any = None

    def write(self, table: Any) -> tuple[int, int]:
        if self.writer is not None and self.size >= DATA_FILE_MB * 1024 * 1024:
            self.close()
            self.file += 1
            if self.file == CHUNK_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
        if self.writer is None:
            path = self.root / f"data/chunk-{self.chunk:03d}/file-{self.file:03d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = self.pq.ParquetWriter(path, self.schema, compression="snappy")
            self.size = 0
        self.writer.write_table(table)
        self.size += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def export_episodes(source: Path, out: Path, *, include_failed: bool = False) -> ExportSummary:
    """Write the episodes of ``source`` as one LeRobotDataset v3.0 under ``out`` (absent or
    empty); one episode in memory at a time. Raises ``ExportError`` or
    ``EpisodeFormatError`` on unusable input, before anything is written where it can."""
    source = Path(source)
    if not source.is_dir():
        raise ExportError(f"{source}: not a folder of episodes")
    return export_manifests(sorted(source.glob("*.json")), out, include_failed=include_failed)


def export_manifests(
    paths: Sequence[Path], out: Path, *, include_failed: bool = False
) -> ExportSummary:
    """Write the episodes of the manifests ``paths`` (in that order, each an episode's
    ``.json``, e.g. the jobs' episodes of ``robot.job_episodes``) as one LeRobotDataset
    v3.0 under ``out`` (absent or empty); errors as ``export_episodes``."""
    pa, pq = _arrow()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: exists and is not an empty folder; choose a new one")
    manifests, skipped = _select(paths, include_failed)
    if not manifests:
        raise ExportError(f"no episodes to export ({skipped} NOK left out)")
    _check_alike(manifests)
    first = load_episode(manifests[0]["path"])
    expert = all("expert_action" in m["arrays"] for m in manifests)
    feats = dataset_features(first, with_expert=expert)
    schema = pa.schema([(k, _arrow_type(pa, ft)) for k, ft in feats.items()])
    tasks: list[str] = []
    rows: list[dict[str, Any]] = []
    all_stats = []
    files = _DataFiles(pq, out, schema)
    start = 0
    try:
        for i, m in enumerate(manifests):
            ep = first if i == 0 else load_episode(m["path"])
            if ep.manifest["instruction"] not in tasks:
                tasks.append(ep.manifest["instruction"])
            cols = _columns(ep, feats, i, start, tasks.index(ep.manifest["instruction"]))
            chunk, file = files.write(_arrow_table(pa, schema, cols, feats))
            stats = episode_stats(cols, feats, ep.images)
            all_stats.append(stats)
            rows.append(_episode_row(ep, i, start, (chunk, file), stats))
            start += ep.length
    finally:
        files.close()
    _write_meta(pa, pq, out, feats, rows, tasks, all_stats, first.manifest["control_hz"])
    return ExportSummary(out, len(rows), start, len(tasks), skipped)


def _episode_row(
    ep: Episode,
    index: int,
    start: int,
    data_file: tuple[int, int],
    stats: dict[str, dict[str, np.ndarray]],
) -> dict[str, Any]:
    """An episode's row of ``meta/episodes``: where its ticks are, and their stats."""
    row: dict[str, Any] = {
        "episode_index": index,
        "tasks": [ep.manifest["instruction"]],
        "length": ep.length,
        "data/chunk_index": data_file[0],
        "data/file_index": data_file[1],
        "dataset_from_index": start,
        "dataset_to_index": start + ep.length,
        "meta/episodes/chunk_index": 0,
        "meta/episodes/file_index": 0,
    }
    for key, st in stats.items():
        row.update({f"stats/{key}/{name}": v.tolist() for name, v in st.items()})
    return row


def _write_meta(
    pa: Any,
    pq: Any,
    out: Path,
    feats: dict[str, Any],
    rows: list[dict[str, Any]],
    tasks: list[str],
    stats: list[dict[str, dict[str, np.ndarray]]],
    fps: int,
) -> None:
    """Episodes, tasks and stats, then ``info.json`` last."""
    meta = out / "meta"
    (meta / "episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), meta / "episodes/chunk-000/file-000.parquet")
    pq.write_table(_tasks_table(pa, tasks), meta / "tasks.parquet")
    (meta / "stats.json").write_text(json.dumps(aggregate_stats(stats), indent=1), "utf-8")
    frames = rows[-1]["dataset_to_index"]
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": ROBOT_TYPE,
        "total_episodes": len(rows),
        "total_frames": frames,
        "total_tasks": len(tasks),
        "chunks_size": CHUNK_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(rows)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": None,
        "features": feats,
    }
    (meta / "info.json").write_text(json.dumps(info, indent=4), "utf-8")
