"""A second real policy version for tests: a shipped checkpoint with one changed byte of
the weights file's metadata (the same tensors), saved under its own content hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from policy.checkpoint import CONFIG, WEIGHTS, content_version


def variant(src: Path, store: Path) -> str:
    """Copy checkpoint ``src`` into ``store/<version>/`` with the safetensors header's
    format tag changed by one byte; returns the copy's version (not ``src``'s)."""
    weights = (src / WEIGHTS).read_bytes()
    size = int.from_bytes(weights[:8], "little")
    header = weights[8 : 8 + size]
    changed = header.replace(b"intern-cells-vla", b"intern-cells-vlb", 1)
    assert changed != header and len(changed) == size, "no format tag in the header"
    data = weights[:8] + changed + weights[8 + size :]
    doc = json.loads((src / CONFIG).read_text())
    doc["version"] = content_version(data, doc["model"])
    folder = store / doc["version"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WEIGHTS).write_bytes(data)
    (folder / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    shutil.copymode(src / WEIGHTS, folder / WEIGHTS)
    return str(doc["version"])
