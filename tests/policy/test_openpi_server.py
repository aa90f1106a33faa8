"""The openpi websocket endpoint, spoken to by the real openpi-client package and by our
own client (``OpenpiPolicy``), on a real server in this process."""

import asyncio
import datetime
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.asyncio.server import serve
from websockets.exceptions import InvalidStatus

from policy.base import PolicyConnectionError, PolicyInputError
from policy.openpi_client import OpenpiPolicy
from policy.openpi_codec import packb, unpackb
from policy.openpi_schema import IMAGE_KEYS, request_message
from policy.server import ServerConfig
from robot.schema import ACTION_DIM
from tests.policy.helpers import ServerThread, WavePolicy, make_obs

# openpi-client 0.1.2 opens its connection the way websockets 17 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

TOKEN = "a-long-enough-secret-token"
PLAIN = frozenset()  # what a client sends a server that lists no extensions


@pytest.fixture
def served() -> Iterator[ServerThread]:
    st = ServerThread(ServerConfig(port=0, token=TOKEN), openpi=True)
    yield st
    st.stop()


def test_the_openpi_client_reads_metadata_and_gets_action_chunks(served: ServerThread) -> None:
    client = WebsocketClientPolicy("127.0.0.1", served.port, api_key=TOKEN)
    meta = client.get_server_metadata()
    assert meta["version"] == "wave-1" and meta["action_dim"] == ACTION_DIM
    assert meta["horizon"] == 30 and set(meta["image_keys"]) == set(IMAGE_KEYS)
    obs = make_obs(step=4)
    for _ in range(3):
        reply = client.infer(request_message(obs, None, PLAIN))
        assert reply["actions"].shape == (30, ACTION_DIM)
        assert reply["actions"].dtype == np.float32
        assert reply["server_timing"]["infer_ms"] >= 0
    assert "prev_total_ms" in reply["server_timing"]
    assert served.policy.calls == [(0, 0)] * 3  # no step sent: the observation's step is 0


def test_the_served_policys_run_settings_reach_both_clients() -> None:
    wave = WavePolicy(replan_age=11, join_ticks=6)
    st = ServerThread(ServerConfig(port=0, token=TOKEN), wave, openpi=True)
    try:
        meta = WebsocketClientPolicy("127.0.0.1", st.port, api_key=TOKEN).get_server_metadata()
        assert meta["replan_age"] == 11 and meta["join_ticks"] == 6
        with OpenpiPolicy(f"ws://127.0.0.1:{st.port}", token=TOKEN, timeout_s=30) as remote:
            assert remote.replan_age == 11 and remote.join_ticks == 6
    finally:
        st.stop()


def test_a_bad_observation_gets_a_message_and_the_connection_stays(served: ServerThread) -> None:
    client = WebsocketClientPolicy("127.0.0.1", served.port, api_key=TOKEN)
    msg = request_message(make_obs(), None, PLAIN)
    msg["observation/head_image"] = msg["observation/head_image"][:32]
    with pytest.raises(RuntimeError, match="observation/head_image"):
        client.infer(msg)
    with pytest.raises(RuntimeError, match="missing keys \\['observation/state'\\]"):
        client.infer({k: v for k, v in msg.items() if k != "observation/state"})
    good = request_message(make_obs(), None, PLAIN)
    assert client.infer(good)["actions"].shape == (30, ACTION_DIM)
    assert served.server.stats.errors == 2


def test_an_object_array_is_refused_before_the_policy_sees_it(served: ServerThread) -> None:
    from websockets.sync.client import connect

    evil = {b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with connect(f"ws://127.0.0.1:{served.port}", additional_headers=headers) as ws:
        unpackb(ws.recv(timeout=10))
        msg = request_message(make_obs(), None, PLAIN) | {"observation/state": evil}
        ws.send(_pack_raw(msg))
        assert str(ws.recv(timeout=10)).startswith("bad_dtype")
    assert served.policy.calls == []


def _pack_raw(msg: dict) -> bytes:
    """Pack with openpi's encoding but without any dtype check (a hostile sender)."""
    import msgpack
    from openpi_client import msgpack_numpy

    return msgpack.packb(msg, default=msgpack_numpy.pack_array, use_bin_type=True)


def test_the_token_is_checked_in_the_handshake(served: ServerThread) -> None:
    for key in (None, "wrong-token-of-some-length"):
        with pytest.raises(InvalidStatus) as err:
            WebsocketClientPolicy("127.0.0.1", served.port, api_key=key)
        assert err.value.response.status_code == 401
        assert b"Authorization: Bearer" in (err.value.response.body or b"")
    with pytest.raises(PolicyConnectionError, match="INTERN_POLICY_TOKEN"):
        OpenpiPolicy(f"ws://127.0.0.1:{served.port}", token="wrong-token-of-some-length").connect()
    with OpenpiPolicy(f"ws://127.0.0.1:{served.port}", token=TOKEN) as ok:  # Bearer
        assert ok.infer(make_obs()).shape == (30, ACTION_DIM)
    assert served.server.stats.unauthorized == 3
    with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/healthz", timeout=10) as r:
        assert r.status == 200 and r.read() == b"OK\n"


def test_a_connection_over_the_cap_is_refused_and_the_others_keep_working() -> None:
    st = ServerThread(ServerConfig(port=0, max_connections=2), openpi=True)
    try:
        first = WebsocketClientPolicy("127.0.0.1", st.port)
        idle = socket.create_connection(("127.0.0.1", st.port))  # holds the second place
        with pytest.raises(InvalidStatus) as err:
            WebsocketClientPolicy("127.0.0.1", st.port)
        assert err.value.response.status_code == 503
        assert b"at most 2" in (err.value.response.body or b"")
        with pytest.raises(HTTPError) as http_err:
            urllib.request.urlopen(f"http://127.0.0.1:{st.port}/healthz", timeout=10)
        assert http_err.value.code == 503
        http_err.value.close()
        assert first.infer(request_message(make_obs(), None, PLAIN))["actions"].shape[0] == 30
        idle.close()
        _wait_for(lambda: st.server.gate.open == 1)
        second = WebsocketClientPolicy("127.0.0.1", st.port)
        assert second.infer(request_message(make_obs(), None, PLAIN))["actions"].shape[0] == 30
    finally:
        st.stop()
    assert st.server.stats.refused_connections == 2


def _wait_for(cond, timeout_s: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        done.wait(0.05)
    raise AssertionError("condition not reached")


def test_our_client_uses_the_step_prefix_and_reset_extensions(served: ServerThread) -> None:
    obs = make_obs(step=12)
    prefix = np.full((4, ACTION_DIM), 0.002, dtype=np.float32)
    with OpenpiPolicy(f"ws://127.0.0.1:{served.port}", token=TOKEN, timeout_s=30) as remote:
        assert remote.version == "wave-1" and remote.horizon == 30 and remote.max_prefix == 30
        assert remote.replan_age is None and remote.join_ticks is None
        chunk = remote.infer(obs, prefix)
        assert served.policy.calls == [(12, 4)]
        remote.reset()
        assert served.policy.calls == []  # reset reached the served policy
        with pytest.raises(PolicyInputError, match="observation/state"):
            remote.infer(_bad_state(obs))
    np.testing.assert_array_equal(chunk, WavePolicy().infer(obs, prefix))
    assert set(remote.last_timing) >= {"infer_ms", "rtt_ms"}


def _bad_state(obs):
    from dataclasses import replace

    return replace(obs, state=np.full(16, np.nan, dtype=np.float32))


class _ForeignServer:
    """A minimal server of openpi's kind that knows none of our extensions: empty
    metadata, a fixed chunk of 50 rows (as pi0's), whatever it is sent."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[dict] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handler(ws) -> None:
            await ws.send(packb({}))
            async for data in ws:
                self.received.append(unpackb(data))
                await ws.send(packb({"actions": np.ones((50, ACTION_DIM), dtype=np.float32)}))

        async def main() -> None:
            self.done = asyncio.Event()
            async with serve(handler, "127.0.0.1", 0, ssl=tls) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await self.done.wait()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),))
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)
        self.loop.close()


def test_with_a_server_that_knows_no_extensions_the_prefix_is_kept_by_the_client() -> None:
    foreign = _ForeignServer()
    try:
        with OpenpiPolicy(f"ws://127.0.0.1:{foreign.port}", timeout_s=10) as remote:
            assert remote.version == f"openpi@127.0.0.1:{foreign.port}"
            prefix = np.full((3, ACTION_DIM), 0.5, dtype=np.float32)
            chunk = remote.infer(make_obs(step=9), prefix)
            remote.reset()  # the protocol has none: nothing is sent
    finally:
        foreign.stop()
    assert chunk.shape == (50, ACTION_DIM)
    np.testing.assert_array_equal(chunk[:3], prefix)
    assert (chunk[3:] == 1).all()
    assert len(foreign.received) == 1
    assert set(foreign.received[0]) == {*IMAGE_KEYS, "observation/state", "prompt"}


def _tls_for_localhost(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for localhost, and its PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = folder / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = folder / "key.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem, key_pem)
    return ctx, pem


def test_wss_checks_the_servers_certificate(tmp_path: Path, monkeypatch) -> None:
    tls, pem = _tls_for_localhost(tmp_path)
    foreign = _ForeignServer(tls)
    try:
        url = f"wss://localhost:{foreign.port}"
        with pytest.raises(PolicyConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            OpenpiPolicy(url, timeout_s=10).connect()
        monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # now the certificate is trusted
        with OpenpiPolicy(url, timeout_s=10) as remote:
            assert remote.infer(make_obs()).shape == (50, ACTION_DIM)
    finally:
        foreign.stop()
