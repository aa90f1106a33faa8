"""OPC UA security on loopback: every policy and mode, trust lists both ways, logins.

The simulator here offers no unsecured endpoint, so a handshake that completes ran
signed (and encrypted) for real.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from mes_bridge.certs import CertificateFiles, create_certificate
from mes_bridge.cli import certs_app
from mes_bridge.errors import CertificateError, PlcSecurityError, UntrustedCertificate
from mes_bridge.plcsim import SimSecurity
from mes_bridge.plcsim.server import SECURE_ENDPOINTS
from mes_bridge.session import PlcSession, SecurityConfig

from .conftest import RUN_TIMEOUT_S, serve, stations

HOSTS = ["localhost", "127.0.0.1", socket.gethostname()]
PLC_URI = "urn:test:line-plc"
BRIDGE_URI = "urn:test:cell:bridge"
KEY_PASSWORD = "key-secret"


@dataclass(frozen=True)
class Pki:
    plc: CertificateFiles
    bridge: CertificateFiles
    stranger: CertificateFiles
    plc_trusts: Path  # the PLC's trusted client certificates
    bridge_trusts: Path  # the bridge's trusted PLC server certificates


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    plc = create_certificate(root / "plc", PLC_URI, HOSTS, name="line PLC", stem="plc")
    bridge = create_certificate(root / "bridge", BRIDGE_URI, HOSTS, key_password=KEY_PASSWORD)
    stranger = create_certificate(root / "stranger", "urn:test:someone:else", HOSTS)
    (root / "plc-trusts").mkdir()
    shutil.copy(bridge.certificate, root / "plc-trusts")
    (root / "bridge-trusts").mkdir()
    shutil.copy(plc.certificate, root / "bridge-trusts")
    return Pki(plc, bridge, stranger, root / "plc-trusts", root / "bridge-trusts")


def plc_security(pki: Pki, **kw: Any) -> SimSecurity:
    base: dict[str, Any] = dict(
        certificate=pki.plc.certificate,
        private_key=pki.plc.private_key,
        trusted_clients=pki.plc_trusts,
        users={"cell01": "s3cret"},
    )
    return SimSecurity(**(base | kw))


def bridge_security(
    pki: Pki, policy: str = "Basic256Sha256", mode: str = "SignAndEncrypt", **kw: Any
) -> SecurityConfig:
    base: dict[str, Any] = dict(
        policy=policy,
        mode=mode,
        certificate=pki.bridge.certificate,
        private_key=pki.bridge.private_key,
        private_key_password=KEY_PASSWORD,
        trusted_server_certificates=pki.bridge_trusts,
        username="cell01",
        password="s3cret",
    )
    return SecurityConfig(**(base | kw))


async def test_every_policy_and_mode_carries_the_handshake_and_survives_a_restart(
    make_sim, pki: Pki
) -> None:
    st = stations("ST10", parts=None)
    sim = await make_sim(st, security=plc_security(pki))
    tags = {"ST10": st["ST10"].tags}
    done = []
    for name in SECURE_ENDPOINTS:
        policy, mode = name.split("_")
        main = name == "Basic256Sha256_SignAndEncrypt"  # the plant default: more jobs
        restarted: list[int] = []

        async def restart_once(
            step: str, job: Any, main: bool = main, restarted: list[int] = restarted
        ) -> None:
            if main and step == "accepted" and not restarted:
                restarted.append(job.job_seq)
                await sim.restart()  # mid-job: the secure session must come back

        async with PlcSession(
            sim.url, tags, security=bridge_security(pki, policy, mode), reconnect_max_delay_s=0.5
        ) as plc:
            done += await asyncio.wait_for(
                serve(plc.station("ST10"), 3 if main else 1, restart_once), RUN_TIMEOUT_S
            )
            if main:
                assert plc.generation >= 2 and restarted
    assert [j.job_seq for j, _ in done] == list(range(1, len(SECURE_ENDPOINTS) + 3))
    latched = sim.completed("ST10")
    assert [(r.job_seq, r.result, r.error_code) for r in latched] == [
        (j.job_seq, r.result, r.error_code) for j, r in done
    ]


async def test_an_untrusted_plc_certificate_is_refused_before_any_login(
    make_sim, pki: Pki, tmp_path: Path
) -> None:
    st = stations("ST10", parts=0)
    sim = await make_sim(st, security=plc_security(pki))
    shutil.copy(pki.stranger.certificate, tmp_path)  # a trust list without the PLC in it
    cfg = bridge_security(pki, trusted_server_certificates=tmp_path)
    with pytest.raises(UntrustedCertificate) as err:
        async with PlcSession(
            sim.url, {"ST10": st["ST10"].tags}, security=cfg, connect_deadline_s=RUN_TIMEOUT_S
        ):
            pass
    message = str(err.value)
    assert "PLC server certificate" in message and pki.plc.info.thumbprint in message
    assert f"not on the trust list {tmp_path}" in message
    # The commissioning engineer fetches the PLC's certificate, checks the thumbprint
    # against the PLC's display, puts it on the trust list, and the bridge connects.
    fetched = await asyncio.to_thread(
        CliRunner().invoke, certs_app(), ["fetch", sim.url, str(tmp_path / "plc.der")]
    )
    assert fetched.exit_code == 0, fetched.output
    assert pki.plc.info.thumbprint in fetched.output
    assert (tmp_path / "plc.der").read_bytes() == pki.plc.certificate.read_bytes()
    async with PlcSession(sim.url, {"ST10": st["ST10"].tags}, security=cfg) as plc:
        assert plc.connected


async def test_the_plc_refusing_our_certificate_or_login_is_a_clear_error(
    make_sim, pki: Pki
) -> None:
    st = stations("ST10", parts=0)
    sim = await make_sim(st, security=plc_security(pki))
    tags = {"ST10": st["ST10"].tags}
    stranger = bridge_security(
        pki,
        certificate=pki.stranger.certificate,
        private_key=pki.stranger.private_key,
        private_key_password=None,
    )
    with pytest.raises(
        PlcSecurityError,
        match=(
            r"refused the bridge's certificate \(BadCertificateUntrusted\): add "
            rf".*stranger.*{pki.stranger.info.thumbprint}.*trusted client certificates"
        ),
    ):
        async with PlcSession(sim.url, tags, security=stranger, connect_deadline_s=RUN_TIMEOUT_S):
            pass
    with pytest.raises(
        PlcSecurityError,
        match=(
            r"refused the login of user 'cell01' \(BadUserAccessDenied\): check the user "
            "name and password"
        ),
    ):
        async with PlcSession(
            sim.url,
            tags,
            security=bridge_security(pki, password="wrong"),
            connect_deadline_s=RUN_TIMEOUT_S,
        ):
            pass
    with pytest.raises(PlcSecurityError, match="offers no unsecured endpoint"):
        async with PlcSession(sim.url, tags, connect_deadline_s=RUN_TIMEOUT_S):
            pass
    anonymous = bridge_security(pki, username=None, password=None)
    with pytest.raises(PlcSecurityError, match="refused an anonymous login"):
        async with PlcSession(sim.url, tags, security=anonymous, connect_deadline_s=RUN_TIMEOUT_S):
            pass
    narrow = await make_sim(
        st, security=plc_security(pki, endpoints=("Basic256Sha256_SignAndEncrypt",))
    )
    with pytest.raises(
        PlcSecurityError,
        match=(
            r"offers no endpoint with Aes256Sha256RsaPss/Sign; it offers "
            r"Basic256Sha256/SignAndEncrypt"
        ),
    ):
        async with PlcSession(
            narrow.url,
            tags,
            connect_deadline_s=RUN_TIMEOUT_S,
            security=bridge_security(pki, "Aes256Sha256RsaPss", "Sign"),
        ):
            pass


def test_security_settings_are_checked_when_the_session_is_built(pki: Pki, tmp_path: Path) -> None:
    tags = stations("ST10")["ST10"].tags
    url = "opc.tcp://127.0.0.1:4840"
    with pytest.raises(ValidationError, match="needs 'trusted_server_certificates'"):
        bridge_security(pki, trusted_server_certificates=None)
    with pytest.raises(ValidationError, match="must both be 'None' or neither"):
        SecurityConfig(mode="Sign")
    with pytest.raises(ValidationError, match="password crosses the network in clear text"):
        SecurityConfig(username="cell01", password="x")
    with pytest.raises(ValidationError, match="given but policy and mode are 'None'"):
        SecurityConfig(certificate=pki.bridge.certificate)
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        PlcSession(
            url,
            {"ST10": tags},
            security=bridge_security(
                pki, private_key=pki.stranger.private_key, private_key_password=None
            ),
        )
    with pytest.raises(CertificateError, match="wrong password"):
        PlcSession(
            url, {"ST10": tags}, security=bridge_security(pki, private_key_password="not-it")
        )
    with pytest.raises(CertificateError, match=rf"is for {BRIDGE_URI}, not the configured "):
        PlcSession(url, {"ST10": tags}, security=bridge_security(pki, application_uri="urn:other"))
    with pytest.raises(CertificateError, match="no certificate files"):
        PlcSession(
            url, {"ST10": tags}, security=bridge_security(pki, trusted_server_certificates=tmp_path)
        )
    with pytest.raises(CertificateError, match="private key, not a certificate"):
        PlcSession(
            url,
            {"ST10": tags},
            security=bridge_security(pki, trusted_server_certificates=pki.bridge.private_key),
        )
