import pickle
import socket
import struct

import msgpack
import numpy as np
import pytest
from pydantic import ValidationError

from policy.base import PolicyError, PolicyInputError
from policy.client import RemotePolicy
from policy.server import ServerConfig
from policy.wire import NDARRAY_EXT, frame, frame_length, unpack
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
