"""A plain install runs: ``pip install -e .`` without extras, in a fresh virtual
environment with a fresh HOME, is enough for the cell's commands, and pulls no torch.

Packages come from the index pip is configured with (as in CI). The install takes a
minute or two; every step has a deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cell.test_services import private_folder

ROOT = Path(__file__).resolve().parents[3]

# The web app as ``intern api serve`` builds it: templates (jinja2), the docs' files.
BUILD_APP = (
    "from cell.api import ApiSettings, create_app; "
    "create_app(ApiSettings(database_url='postgresql+psycopg://u@127.0.0.1:1/x', "
    "redis_url='redis://127.0.0.1:1/0'))"
)


@pytest.fixture
def folder() -> Iterator[Path]:
    with private_folder() as path:
        yield path


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_plain_install_runs_the_cells_commands(tmp_path: Path, folder: Path) -> None:
    venv = tmp_path / "venv"
    home = folder / "home"
    work = folder / "work"  # where a user runs intern: the embedded data goes here
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERN_", "VIRTUAL_ENV"))}
    env |= {"HOME": str(home), "PYTHONNOUSERSITE": "1"}
    _run([sys.executable, "-m", "venv", str(venv)], env, work, 120)
    bin_dir = venv / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "-e", str(ROOT)], env, work, 600)

    python = str(bin_dir / "python")
    no_torch = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
    _run([python, "-c", no_torch], env, work, 60)
    _run([python, "-c", BUILD_APP], env, work, 120)
    intern = str(bin_dir / "intern")
    assert "Usage" in _run([intern, "--help"], env, work, 60)
    assert "--config" in _run([intern, "run", "--help"], env, work, 60)
    assert "--policy" in _run([intern, "worker", "--help"], env, work, 60)
    # An empty record, on the embedded PostgreSQL the command starts in ./.intern.
    out = _run([intern, "yield"], env, work, 180)
    assert out.startswith("no parts from "), out
    assert (work / ".intern" / "postgres" / "pgdata" / "PG_VERSION").exists()
