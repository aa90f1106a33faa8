"""The embedded servers end with the command that started them: on SIGTERM to a serving
command, and after a process that was killed outright left them running.

These run real ``intern`` processes on a data folder of their own, with no server URLs
set, so that the command starts the embedded PostgreSQL and Redis itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cell.services import Services, clear_stale_postgres, free_port

# ``intern`` as its script runs it (``main``: signals, exit codes), with this interpreter.
INTERN = [sys.executable, "-c", "from cell.cli import main; main()"]


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A folder of the test's own outside pytest's temporary root. Run as root, the
    embedded PostgreSQL runs as another user that must reach its data folder, and pytest
    makes its root private again whenever a session starts (another run on this machine)."""
    path = Path(tempfile.mkdtemp(prefix="intern-test-")).resolve()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def folder() -> Iterator[Path]:
    with private_folder() as path:
        yield path


def _env(data: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERN_")}
    home.mkdir(parents=True, exist_ok=True)
    return env | {"INTERN_DATA_DIR": str(data), "HOME": str(home)}


def _servers_of(data: Path) -> list[psutil.Process]:
    """The processes still running a server of the data folder ``data``: PostgreSQL by
    its data directory, Redis by the pid the folder recorded when it started it."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if (proc.info["name"] or "").startswith("postgres") and str(data) in cmdline:
            found.append(proc)
    started = data / "redis" / "server.json"
    if started.exists():
        pid = json.loads(started.read_text())["pid"]
        with contextlib.suppress(psutil.NoSuchProcess):
            if not _ended(psutil.Process(pid)):
                found.append(psutil.Process(pid))
    return found


def _ended(proc: psutil.Process) -> bool:
    """Whether ``proc`` has exited (a zombie has: its parent, here often the container's
    init, reaps it when it does)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _postmaster(data: Path) -> psutil.Process:
    pid = int((data / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
    return psutil.Process(pid)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # an answer all the same
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_sigterm_on_api_serve_stops_the_embedded_servers(folder: Path) -> None:
    data = folder / "data"
    port = free_port()
    proc = subprocess.Popen(
        [*INTERN, "api", "serve", "--port", str(port)],
        env=_env(data, folder / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"http://127.0.0.1:{port}/api/health"):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "intern api serve did not answer in 120 s"
            time.sleep(0.3)
        postmaster = _postmaster(data)
        running = _servers_of(data)
        assert postmaster in running and any("redis" in p.name() for p in running)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    # A graceful stop, as asked: unwound, not killed on the spot (that would be -15).
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert _ended(postmaster)
    assert _servers_of(data) == []


START_AND_DIE = """
import os, sys
from pathlib import Path
from cell.services import Services
svc = Services(Path(sys.argv[1]), None, None).__enter__()
print(svc.database_url, flush=True)
os._exit(0)  # killed outright: nothing stops the servers, nothing leaves the wheel's list
"""


@pytest.mark.slow
def test_what_a_killed_process_left_is_cleared_and_stopped_by_the_next(folder: Path) -> None:
    data = folder / "data"
    env = _env(data, folder / "home")
    dead = subprocess.Popen(
        [sys.executable, "-c", START_AND_DIE, str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    err = dead.communicate(timeout=120)[1]
    assert dead.returncode == 0, err.decode()
    pgdata = data / "postgres" / "pgdata"
    left = _servers_of(data)
    assert _postmaster(data) in left and len(left) >= 2  # PostgreSQL and Redis orphaned
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == [dead.pid]
    postmaster_file = (pgdata / "postmaster.pid").read_text()

    # The next command reuses the orphaned PostgreSQL, and now stops it when it ends.
    later = subprocess.run([*INTERN, "yield"], env=env, capture_output=True, timeout=120)
    assert later.returncode == 0, later.stderr.decode()
    assert "no parts" in later.stdout.decode()
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    assert not any(p.name().startswith("postgres") for p in _servers_of(data))

    # The next start of the embedded Redis stops the one whose owner is gone.
    orphan = psutil.Process(json.loads((data / "redis" / "server.json").read_text())["pid"])
    assert not _ended(orphan) and "redis" in orphan.name()
    with Services(data, "postgresql+psycopg://unused@/x", None) as svc:
        assert svc.embedded == ["redis"]
        assert _ended(orphan)
        assert [p.pid for p in _servers_of(data)] != [orphan.pid]
    assert _servers_of(data) == []

    # After a reboot, the pid in postmaster.pid may be some other program's: this one's.
    lines = postmaster_file.splitlines()
    (pgdata / "postmaster.pid").write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    assert clear_stale_postgres(pgdata) and not (pgdata / "postmaster.pid").exists()
    (pgdata / "postmaster.pid").write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
    again = subprocess.run([*INTERN, "yield"], env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    assert _servers_of(data) == []
