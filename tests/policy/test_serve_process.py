"""``intern policy serve`` as its users run it: a subprocess serving the shipped nut
installation checkpoint, reached by the real openpi-client, by a robot worker process,
and by a flood of connections that never authenticate.

Memory bound stated and checked here: 40 connections that each start a 16 MiB frame (or
an oversized websocket handshake) and send 8 MiB of it without a token raise the
server's resident memory by less than ``FLOOD_RSS_BOUND_MIB``; the server reads none of
it into a buffer (before the limits, the same flood took a server from 359 MB to 972 MB).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from policy.base import PolicyError
from policy.client import RemotePolicy
from policy.openpi_schema import request_message
from policy.runtime import policy_version
from robot.jobs import JobSpec, Task
from robot.schema import ACTION_DIM
from tests.policy.helpers import ServeProcess, make_obs

pytestmark = [
    pytest.mark.slow,
    # openpi-client 0.1.2 opens its connection the way websockets 17 deprecates.
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]

TOKEN = "plant-policy-token-0123456789"
FLOOD = 40
FLOOD_RSS_BOUND_MIB = 16
HALF_FRAME = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def openpi_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The openpi endpoint, its token read from a file."""
    folder = tmp_path_factory.mktemp("openpi-serve")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    served = ServeProcess(
        folder / "serve.log", "--protocol", "openpi", "--token-file", str(token_file)
    )
    yield served
    served.stop()


@pytest.fixture(scope="module")
def tcp_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """Our own wire, its token read from the environment."""
    folder = tmp_path_factory.mktemp("tcp-serve")
    served = ServeProcess(folder / "serve.log", env={"INTERN_POLICY_TOKEN": TOKEN})
    yield served
    served.stop()


def test_the_openpi_client_gets_chunks_of_the_shipped_policy(openpi_served: ServeProcess) -> None:
    assert openpi_served.url.startswith("ws://") and "token required" in openpi_served.banner
    client = WebsocketClientPolicy("127.0.0.1", openpi_served.port, api_key=TOKEN)
    meta = client.get_server_metadata()
    assert meta["version"] == policy_version(Task.NUT_INSTALL)
    horizon = meta["horizon"]
    assert horizon > 0 and meta["action_dim"] == ACTION_DIM
    for step in (0, 5):
        reply = client.infer(request_message(make_obs(step=step), None, frozenset()))
        actions = reply["actions"]
        assert actions.shape == (horizon, ACTION_DIM) and np.isfinite(actions).all()
        assert reply["version"] == meta["version"]


def test_a_token_from_the_environment_works_and_a_wrong_one_does_not(
    tcp_served: ServeProcess,
) -> None:
    with RemotePolicy("127.0.0.1", tcp_served.port, token=TOKEN, timeout_s=60) as remote:
        assert remote.version == policy_version(Task.NUT_INSTALL)
        assert remote.infer(make_obs()).shape == (remote.horizon, ACTION_DIM)
    with pytest.raises(PolicyError, match="unauthorized"):
        RemotePolicy("127.0.0.1", tcp_served.port, token="x" * 20, timeout_s=60).connect()
    with pytest.raises(PolicyError, match="unauthorized"):
        RemotePolicy("127.0.0.1", tcp_served.port, timeout_s=60).connect()


def _half_frame() -> bytes:
    return struct.pack(">I", 16 * 1024 * 1024) + b"\x00" * HALF_FRAME


def _oversized_handshake() -> bytes:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    return head + b"X-Pad: " + b"a" * HALF_FRAME


def _flood(served: ServeProcess, payload: bytes, valid_call: Callable[[], None]) -> tuple[int, int]:
    """Open ``FLOOD`` connections that each send ``payload`` and never authenticate,
    calling ``valid_call`` between them; the server's RSS before and at its highest."""
    before = served.rss_kib()
    peak = before
    held: list[socket.socket] = []
    try:
        for i in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            held.append(s)
            with contextlib.suppress(OSError):  # refused and closed before it all went out
                s.sendall(payload)
            peak = max(peak, served.rss_kib())
            if i % 10 == 9:
                valid_call()
        for _ in range(10):
            peak = max(peak, served.rss_kib())
            time.sleep(0.1)
        valid_call()
    finally:
        for s in held:
            s.close()
    return before, peak


def test_a_flood_of_unauthenticated_half_frames_leaves_memory_bounded(
    tcp_served: ServeProcess,
) -> None:
    with RemotePolicy("127.0.0.1", tcp_served.port, token=TOKEN, timeout_s=60) as remote:
        remote.infer(make_obs())  # warm: the baseline includes one inference

        def valid_call() -> None:
            assert remote.infer(make_obs()).shape[1] == ACTION_DIM

        before, peak = _flood(tcp_served, _half_frame(), valid_call)
    grown_mib = (peak - before) / 1024
    assert grown_mib < FLOOD_RSS_BOUND_MIB, f"RSS {before} -> {peak} kB"


def test_a_flood_of_oversized_handshakes_leaves_memory_bounded(
    openpi_served: ServeProcess,
) -> None:
    client = WebsocketClientPolicy("127.0.0.1", openpi_served.port, api_key=TOKEN)
    client.infer(request_message(make_obs(), None, frozenset()))

    def valid_call() -> None:
        reply = client.infer(request_message(make_obs(), None, frozenset()))
        assert reply["actions"].shape[1] == ACTION_DIM

    before, peak = _flood(openpi_served, _oversized_handshake(), valid_call)
    grown_mib = (peak - before) / 1024
    assert grown_mib < FLOOD_RSS_BOUND_MIB, f"RSS {before} -> {peak} kB"


def test_a_robot_worker_runs_a_job_on_the_openpi_endpoint(
    openpi_served: ServeProcess, redis_url: str, tmp_path: Path
) -> None:
    """``intern worker --policy ws://...`` over a real broker, its token from the
    environment: the job records the served checkpoint's version. The robot has an id of
    its own, so no other worker on the same Redis serves its queue."""
    from cell.config import sample_config_path
    from robot.sim.config import default_fasteners
    from tests.robot.fenced import run_fenced

    robot = f"R-openpi-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "line.yaml"
    sample = sample_config_path().read_text()
    assert "  - id: R1\n" in sample
    config.write_text(sample.replace("  - id: R1\n", f"  - id: {robot}\n", 1))
    spec = JobSpec(
        job_key="ST10:0:openpi",
        station_id="ST10",
        robot_id=robot,
        part_id="P-7",
        program_no=1,
        task=Task.NUT_INSTALL,
        fasteners=default_fasteners(Task.NUT_INSTALL),
        takt_s=76,
        seed=11,
    )
    cmd = [sys.executable, "-m", "cell", "worker", "--robot", robot]
    cmd += ["--config", str(config), "--loglevel", "WARNING"]
    cmd += ["--policy", openpi_served.url]
    env = dict(os.environ, INTERN_REDIS_URL=redis_url, INTERN_POLICY_TOKEN=TOKEN)
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        out = run_fenced(redis_url, spec, 240)
    finally:
        proc.terminate()
        proc.wait(30)
    assert out.job_key == spec.job_key and len(out.fasteners) == 6
    assert out.policy_version == policy_version(Task.NUT_INSTALL)
