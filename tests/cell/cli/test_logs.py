"""Logs for a plant: JSON lines a collector can parse, the cell's events at INFO, asyncua
and Celery at WARNING, and one greppable line per published job."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cell.cli.logs import CHATTY, LogFormat, setup_logging
from cell.services import free_port
from tests.cell.harness import sample_line


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put the root logger and the libraries' levels back as pytest had them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in CHATTY}
    try:
        yield
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in handlers:
            root.addHandler(h)
        root.setLevel(level)
        for name, lvl in levels.items():
            logging.getLogger(name).setLevel(lvl)


def test_json_lines_parse_and_asyncua_info_is_not_emitted(restored_logging: None) -> None:
    out = io.StringIO()
    setup_logging(LogFormat.JSON, stream=out)
    logging.getLogger("cell.line.station").info(
        "job published station=ST20", extra={"station": "ST20", "part": "A\x1d B"}
    )
    logging.getLogger("asyncua.client.ua_client").info("publish response")
    logging.getLogger("celery.app.trace").info("task succeeded")
    logging.getLogger("asyncua.client.client").warning("connection lost")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("cell.line.orchestrator").exception("station failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["logger"], x["level"]) for x in lines] == [
        ("cell.line.station", "INFO"),
        ("asyncua.client.client", "WARNING"),
        ("cell.line.orchestrator", "ERROR"),
    ]
    assert lines[0]["message"] == "job published station=ST20"
    assert (lines[0]["station"], lines[0]["part"]) == ("ST20", "A\x1d B")
    assert lines[0]["time"].endswith("+00:00")
    assert "RuntimeError: boom" in lines[2]["exception"]


def test_debug_lets_the_libraries_speak(restored_logging: None) -> None:
    out = io.StringIO()
    setup_logging(LogFormat.TEXT, "DEBUG", stream=out)
    logging.getLogger("asyncua.client.ua_client").info("publish response")
    assert "INFO asyncua.client.ua_client publish response" in out.getvalue()
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging(LogFormat.TEXT, "LOUD", stream=out)


def _intern(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "cell", *args], env=env, stdout=f, stderr=subprocess.STDOUT
        )


@pytest.mark.slow
def test_intern_run_and_worker_log_json_lines_with_the_job_line(
    tmp_path: Path, make_database: Callable[[], str], redis_url: str
) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/plc"

    def on_port(data: dict) -> None:
        for st in data["stations"]:
            st["plc_endpoint"] = endpoint

    _, cfg = sample_line(tmp_path, on_port, stations=("ST20",))
    env = dict(
        os.environ,
        INTERN_DATABASE_URL=make_database(),
        INTERN_REDIS_URL=redis_url,
        INTERN_DATA_DIR=str(tmp_path / "cell"),
        INTERN_TIME_SCALE="40",
        INTERN_POLICY="expert",
        INTERN_LOG_FORMAT="json",
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("plcsim", "worker", "run")}
    procs = [
        _intern(["plcsim", "--config", str(cfg), "--speed", "40"], env, logs["plcsim"]),
        _intern(["worker", "--robot", "R2", "--config", str(cfg)], env, logs["worker"]),
        _intern(["run", "--config", str(cfg)], env, logs["run"]),
    ]
    try:
        end = time.monotonic() + 120
        while logs["run"].read_text().count("job published") < 2:
            assert time.monotonic() < end, logs["run"].read_text()[-3000:]
            assert all(p.poll() is None for p in procs), "a command ended early"
            time.sleep(0.5)
        # Read before stopping: Celery prints its shutdown notice past the logging.
        text = {name: logs[name].read_text() for name in ("run", "worker")}
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(90)
    for name, lines in text.items():
        records = [json.loads(line) for line in lines.splitlines()]  # each line one object
        assert records, f"intern {name} logged nothing"
        chatty = [r for r in records if r["logger"].startswith(CHATTY) and r["level"] == "INFO"]
        assert not chatty, f"intern {name}: {chatty[:3]}"
    records = [json.loads(line) for line in text["run"].splitlines()]
    jobs = [r for r in records if r["message"].startswith("job published")]
    first = jobs[0]
    assert first["station"] == "ST20" and first["outcome"] in ("OK", "NOK")
    assert first["part"] and first["cycle_time_ms"] > 0 and "error_code" in first
    assert f'station=ST20 job_seq={first["job_seq"]} part="{first["part"]}"' in first["message"]
