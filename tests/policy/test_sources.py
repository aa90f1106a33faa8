"""What drives a robot worker's jobs: the expert, the shipped policy, or a policy server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from policy.runtime import has_policy, policy_version
from policy.server import ServerConfig
from policy.sources import job_runner, parse_source
from robot.jobs import JobSpec, Task
from robot.sim.config import default_fasteners
from tests.policy.helpers import ServerThread

TOKEN = "a-long-enough-secret-token"


def _spec(task: Task, seed: int = 7) -> JobSpec:
    return JobSpec(
        job_key=f"ST:0:{seed}",
        station_id="ST",
        robot_id="R1",
        part_id="P",
        program_no=1,
        task=task,
        fasteners=default_fasteners(task),
        takt_s=76.0,
        seed=seed,
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("auto", "auto"),
        ("expert", "expert"),
        ("tcp://127.0.0.1:8765", "remote"),
        ("tcp://gpu-box:9", "remote"),
        ("ws://127.0.0.1:8000", "openpi"),
        ("wss://gpu-box.plant:443/pi05", "openpi"),
    ],
)
def test_sources_that_parse(text: str, kind: str) -> None:
    src = parse_source(text)
    assert src.kind == kind
    if kind == "openpi":
        assert src.url == text and src.port in (8000, 443)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "local",
        "tcp://host",
        "tcp://:80",
        "http://h:1",
        "tcp://h:x",
        "tcp://h:1/path",
        "ws://host",
        "ws://h:1?token=secret",
        "wss://user:pw@h:1",
    ],
)
def test_bad_sources_are_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"auto, expert, tcp://HOST:PORT .*ws://HOST:PORT"):
        parse_source(text)


def test_expert_source_records_the_expert() -> None:
    out = job_runner("expert")(_spec(Task.SCREWING))
    assert out.policy_version == "expert" and out.fasteners


def test_auto_uses_the_shipped_checkpoint_and_records_its_version() -> None:
    import torch

    assert has_policy(Task.NUT_INSTALL), "the nut installation checkpoint ships in the repo"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = job_runner("auto")
        out = run(_spec(Task.NUT_INSTALL))
        # Workers sharing a host's cores each keep to one torch thread.
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert out.policy_version == policy_version(Task.NUT_INSTALL) != "expert"
    # A simulated cycle time is recorded (the simulator's clock, not wall time).
    assert len(out.fasteners) == 6 and out.cycle_time_ms > 0
    assert run(_spec(Task.NUT_INSTALL)) == out  # same job, same policy: the same outcome


def test_auto_falls_back_to_the_expert_where_no_checkpoint_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERN_POLICY_DIR", str(tmp_path))
    assert job_runner("auto")(_spec(Task.NUT_INSTALL)).policy_version == "expert"


def test_auto_without_torch_runs_the_expert_and_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what a missing package raises
    with caplog.at_level(logging.WARNING, logger="policy.sources"):
        out = job_runner("auto")(_spec(Task.SCREWING))
    assert out.policy_version == "expert" and out.fasteners
    assert "pip install -e '.[policy]'" in caplog.text and "screwing" in caplog.text


def test_remote_source_drives_the_job_through_a_policy_server() -> None:
    served = ServerThread(ServerConfig(port=0))
    try:
        out = job_runner(f"tcp://127.0.0.1:{served.port}")(_spec(Task.MATERIAL_HANDLING))
    finally:
        served.stop()
    assert out.policy_version == "wave-1"
    assert served.policy.calls, "the server computed the chunks"


def test_openpi_source_drives_the_job_through_a_websocket_server() -> None:
    served = ServerThread(ServerConfig(port=0, token=TOKEN), openpi=True)
    try:
        run = job_runner(f"ws://127.0.0.1:{served.port}", token=TOKEN)
        out = run(_spec(Task.MATERIAL_HANDLING))
        calls = list(served.policy.calls)
        assert run(_spec(Task.MATERIAL_HANDLING)) == out
        assert served.policy.calls == calls  # each job's reset reached the served policy
    finally:
        served.stop()
    assert out.policy_version == "wave-1"
    assert calls and any(k > 0 for _, k in calls), "chunks were asked with committed prefixes"
    assert served.server.stats.unauthorized == 0
