import pickle
import socket
import struct
import time

import msgpack
import numpy as np
import pytest
from pydantic import ValidationError

from policy.base import PolicyConnectionError, PolicyError, PolicyInputError
from policy.client import RemotePolicy
from policy.server import ServerConfig
from policy.wire import NDARRAY_EXT, frame, frame_length, observation_message, unpack
from robot.schema import ACTION_DIM
from tests.policy.helpers import ServerThread, WavePolicy, make_obs

TOKEN = "a-long-enough-secret-token"


@pytest.fixture
def served():
    st = ServerThread(ServerConfig(port=0))
    yield st
    st.stop()


def raw_call(port: int, data: bytes) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        header = s.recv(4, socket.MSG_WAITALL)
        n = frame_length(header)
        return unpack(s.recv(n, socket.MSG_WAITALL))


def test_the_client_takes_the_served_policys_run_settings_or_refuses_bad_ones(served):
    with RemotePolicy("127.0.0.1", served.port, timeout_s=30) as remote:
        # The policy names none: the executor's defaults.
        assert remote.replan_age is None and remote.join_ticks is None
    own = ServerThread(ServerConfig(port=0), WavePolicy(replan_age=11, join_ticks=6))
    bad = ServerThread(ServerConfig(port=0), WavePolicy(replan_age=99))
    bad_join = ServerThread(ServerConfig(port=0), WavePolicy(join_ticks=-2))
    try:
        with RemotePolicy("127.0.0.1", own.port, timeout_s=30) as remote:
            assert remote.replan_age == 11 and remote.join_ticks == 6
        with pytest.raises(PolicyConnectionError, match="replan_age 99 is not a whole number"):
            RemotePolicy("127.0.0.1", bad.port, timeout_s=30).connect()
        with pytest.raises(PolicyConnectionError, match="join_ticks -2 is not a whole number"):
            RemotePolicy("127.0.0.1", bad_join.port, timeout_s=30).connect()
    finally:
        own.stop()
        bad.stop()
        bad_join.stop()


def test_remote_policy_returns_what_the_served_policy_computes(served):
    obs = make_obs(step=7)
    prefix = np.full((3, ACTION_DIM), 0.001, dtype=np.float32)
    with RemotePolicy("127.0.0.1", served.port, timeout_s=30) as remote:
        assert remote.version == "wave-1" and remote.horizon == 30
        chunk = remote.infer(obs, prefix)
        remote.reset()
    expected = WavePolicy().infer(obs, prefix)
    np.testing.assert_array_equal(chunk, expected)
    assert set(remote.last_timing) >= {"model_ms", "total_ms", "rtt_ms"}
    assert served.policy.calls == []  # reset reached the served policy


def test_pickled_payload_gets_a_clear_refusal(served):
    body = pickle.dumps({"op": "infer", "obs": make_obs()})
    framed = raw_call(served.port, struct.pack(">I", len(body)) + body)
    assert framed["ok"] is False and framed["error"]["code"] == "pickle_refused"
    bare = raw_call(served.port, body)
    assert bare["error"]["code"] == "pickle_refused"
    assert "never unpickles" in bare["error"]["message"]
    assert served.policy.calls == []


def test_object_dtype_payload_is_refused(served):
    fake = msgpack.ExtType(NDARRAY_EXT, msgpack.packb(["|O", [1], b"\x00" * 8]))
    body = msgpack.packb({"op": "infer", "prefix": fake})
    reply = raw_call(served.port, struct.pack(">I", len(body)) + body)
    assert reply["error"]["code"] == "bad_dtype"
    assert served.policy.calls == []


def test_bad_observation_is_answered_with_what_is_wrong_and_server_keeps_serving(served):
    obs = make_obs()
    obs.images["head"] = obs.images["head"][:32]
    with RemotePolicy("127.0.0.1", served.port, timeout_s=30) as remote:
        with pytest.raises(PolicyInputError, match="head"):
            remote.infer(obs)
        assert remote.infer(make_obs()).shape == (30, ACTION_DIM)


def test_token_is_required_off_loopback_and_checked_when_set():
    with pytest.raises(ValidationError, match="token"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", token=TOKEN).token == TOKEN
    st = ServerThread(ServerConfig(port=0, token=TOKEN))
    try:
        with pytest.raises(PolicyError, match="unauthorized"):
            RemotePolicy("127.0.0.1", st.port, token="wrong-token-of-some-length").connect()
        with RemotePolicy("127.0.0.1", st.port, token=TOKEN, timeout_s=30) as ok:
            assert ok.infer(make_obs()).shape == (30, ACTION_DIM)
    finally:
        st.stop()


def test_oversize_frame_is_refused_without_reading_it(served):
    reply = raw_call(served.port, struct.pack(">I", 2**31) + b"x")
    assert reply["error"]["code"] == "too_large"


def test_client_without_server_raises_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from policy.base import PolicyConnectionError

    with pytest.raises(PolicyConnectionError, match=str(port)):
        RemotePolicy("127.0.0.1", port, timeout_s=5).connect()
    assert frame({"op": "hello"})  # the codec still works after the failure


def _raw_frames(port: int, *messages: dict) -> list[dict]:
    """Send ``messages`` on one connection, one reply each (until the server closes)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        for msg in messages:
            s.sendall(frame(msg))
            header = s.recv(4, socket.MSG_WAITALL)
            if len(header) < 4:
                break
            replies.append(unpack(s.recv(frame_length(header), socket.MSG_WAITALL)))
    return replies


def test_with_a_token_the_first_frame_must_be_a_small_hello_carrying_it():
    st = ServerThread(ServerConfig(port=0, token=TOKEN))
    try:
        # A large first frame is refused from its header: its body is never read.
        with socket.create_connection(("127.0.0.1", st.port), timeout=30) as s:
            s.sendall(struct.pack(">I", 8 * 1024 * 1024) + b"\x00" * 1024)
            reply = unpack(s.recv(frame_length(s.recv(4, socket.MSG_WAITALL)), socket.MSG_WAITALL))
        assert (
            reply["error"]["code"] == "unauthorized" and "at most 4096" in reply["error"]["message"]
        )
        # An infer first, even with the right token in it, is refused; the connection closes.
        infer = {"op": "infer", "token": TOKEN, "obs": observation_message(make_obs())}
        replies = _raw_frames(st.port, {"op": "reset", "token": TOKEN}, infer)
        assert [r["error"]["code"] for r in replies] == ["unauthorized"]
        assert "hello" in replies[0]["error"]["message"]
        # A hello with the token opens the connection for everything after it.
        hello, chunk = _raw_frames(
            st.port, {"op": "hello", "token": TOKEN}, infer | {"token": None}
        )
        assert hello["ok"] and chunk["actions"].shape == (30, ACTION_DIM)
    finally:
        st.stop()
    assert st.server.stats.unauthorized == 2
    assert st.policy.calls == [(0, 0)]


def test_the_client_says_hello_again_on_a_fresh_connection():
    st = ServerThread(ServerConfig(port=0, token=TOKEN))
    try:
        with RemotePolicy("127.0.0.1", st.port, token=TOKEN, timeout_s=30) as remote:
            assert remote._sock is not None
            remote._sock.close()  # the line drops between two calls
            assert remote.infer(make_obs()).shape == (30, ACTION_DIM)
    finally:
        st.stop()
    assert st.server.stats.unauthorized == 0


def test_a_connection_over_the_cap_is_told_so_and_the_others_keep_working():
    st = ServerThread(ServerConfig(port=0, max_connections=2))
    try:
        with RemotePolicy("127.0.0.1", st.port, timeout_s=30) as first:
            idle = socket.create_connection(("127.0.0.1", st.port))
            with pytest.raises(PolicyError, match=r"too_many_connections.*at most 2"):
                RemotePolicy("127.0.0.1", st.port, timeout_s=30).connect()
            assert first.infer(make_obs()).shape == (30, ACTION_DIM)
            idle.close()
            deadline = time.monotonic() + 10
            while st.server.gate.open > 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            with RemotePolicy("127.0.0.1", st.port, timeout_s=30) as second:
                assert second.infer(make_obs()).shape == (30, ACTION_DIM)
    finally:
        st.stop()
    assert st.server.stats.refused_connections == 1
