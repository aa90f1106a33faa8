"""The checkpoint store: policy checkpoints found by their version (content hash).

A version is what ``policy.checkpoint`` computes: 16 hex digits of SHA-256 over the
weights and the model config, recorded in each checkpoint's ``config.json`` and checked
again when the weights load. The store is a list of folders searched in order: the
shipped checkpoints (``policy.runtime.checkpoint_root``, one folder per task) first, then
the plant's own (``<INTERN_DATA_DIR>/checkpoints`` or ``INTERN_CHECKPOINT_DIR``), where a
candidate version is copied as a folder of its own (``<store>/<version>/``, any folder
name works). A folder is a checkpoint when it holds ``config.json`` and
``model.safetensors``; the store looks at each root and at its subfolders two levels
down, reading configs only (no torch).

The index is built on first use and read again when a version is not in it, so a
checkpoint copied into the store while a worker runs is found by its next job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from policy.base import CheckpointError
from policy.checkpoint import CONFIG, WEIGHTS, read_config

log = logging.getLogger(__name__)


class CheckpointStore:
    """Finds checkpoint folders by version among ``roots`` (missing roots are skipped)."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = tuple(roots)
        self._index: dict[str, Path] | None = None

    def find(self, version: str) -> Path | None:
        """The folder of ``version``, or None when no root holds it (after a fresh scan)."""
        if self._index is None or version not in self._index:
            self._index = self.scan()
        return self._index.get(version)

    def scan(self) -> dict[str, Path]:
        """Every checkpoint under the roots by version; the first root holding a version
        wins. A folder whose config cannot be read is logged and left out."""
        found: dict[str, Path] = {}
        for folder in self._candidates():
            try:
                version = str(read_config(folder)["version"])
            except CheckpointError as exc:
                log.warning("checkpoint store: %s", exc)
                continue
            found.setdefault(version, folder)
        return found

    def _candidates(self) -> Iterator[Path]:
        for root in self.roots:
            if not root.is_dir():
                continue
            for folder in (root, *_subfolders(root), *_subfolders(root, depth=2)):
                if (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file():
                    yield folder

    def describe(self) -> str:
        """The roots, for messages."""
        return ", ".join(str(r) for r in self.roots) or "no folders"


def _subfolders(root: Path, depth: int = 1) -> list[Path]:
    pattern = "/".join(["*"] * depth)
    return sorted(p for p in root.glob(pattern) if p.is_dir())
