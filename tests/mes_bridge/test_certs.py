"""Application instance certificates, trust lists and the ``certs`` commands."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from typer.testing import CliRunner

from mes_bridge.certs import TrustList, create_certificate, load_certificate, load_private_key
from mes_bridge.cli import certs_app
from mes_bridge.errors import CertificateError, UntrustedCertificate

URI = "urn:plant-a:cell-03:bridge"


def test_a_created_certificate_carries_what_opc_ua_peers_check(tmp_path: Path) -> None:
    files = create_certificate(
        tmp_path, URI, ["cell03.plant.local", "10.1.2.3", "::1"], key_password="pw", days=30
    )
    cert = load_certificate(files.certificate)
    assert files.certificate.read_bytes() == cert.public_bytes(serialization.Encoding.DER)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [URI]
    assert san.get_values_for_type(x509.DNSName) == ["cell03.plant.local"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("::1"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    assert usage.key_encipherment and usage.data_encipherment and usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.issuer == cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=30) < lifetime <= dt.timedelta(days=30, hours=1)
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in files.private_key.read_bytes()
    key = load_private_key(files.private_key, "pw")
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert files.info.application_uris == (URI,) and len(files.info.thumbprint) == 40


def test_an_existing_certificate_is_never_replaced_by_accident(tmp_path: Path) -> None:
    first = create_certificate(tmp_path, URI, ["h"])
    before = first.certificate.read_bytes()
    with pytest.raises(CertificateError, match="already exist; refusing to replace"):
        create_certificate(tmp_path, URI, ["h"])
    assert first.certificate.read_bytes() == before
    again = create_certificate(tmp_path, URI, ["h"], overwrite=True)
    assert again.certificate.read_bytes() != before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("not-a-uri", ["h"]), "must be a URI"),
        ((URI, []), "at least one host"),
        ((URI, ["bad host"]), "not a host name or IP address"),
    ],
)
def test_bad_certificate_arguments_are_refused(tmp_path: Path, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        create_certificate(tmp_path, *args)
    assert list(tmp_path.iterdir()) == []  # nothing half written


def _ca_and_leaf(tmp_path: Path) -> tuple[x509.Certificate, x509.Certificate]:
    """A plant CA and a PLC certificate it issued."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=9)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Plant CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PLC 1")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:plc1")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca, leaf


def test_a_trust_list_pins_certificates_and_trusts_what_its_cas_issued(tmp_path: Path) -> None:
    _, leaf = _ca_and_leaf(tmp_path)
    own = create_certificate(tmp_path / "own", URI, ["h"])
    (tmp_path / "own.der").write_bytes(own.certificate.read_bytes())
    stranger = load_certificate(create_certificate(tmp_path / "x", URI, ["h"]).certificate)
    trust = TrustList.load(tmp_path)
    assert len(trust.certificates) == 2
    assert trust.check(leaf, application_uri="urn:plc1").subject == "CN=PLC 1"
    assert trust.check(load_certificate(own.certificate), application_uri=URI)
    with pytest.raises(UntrustedCertificate, match="does not carry the application URI"):
        trust.check(leaf, application_uri="urn:plc2")
    with pytest.raises(UntrustedCertificate, match="not on the trust list"):
        trust.check(stranger)  # same subject and URI as a pinned one, other key
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    with pytest.raises(UntrustedCertificate, match="is not valid now"):
        trust.check(leaf, now=later)
    with pytest.raises(CertificateError, match="no such file or folder"):
        TrustList.load(tmp_path / "missing")


def test_the_certs_commands_create_show_and_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    app = certs_app()
    monkeypatch.setenv("TEST_KEY_PW", "pw")
    made = runner.invoke(
        app,
        [
            "create",
            str(tmp_path),
            "--uri",
            URI,
            "--host",
            "cell03",
            "--host",
            "10.1.2.3",
            "--password-env",
            "TEST_KEY_PW",
        ],
    )
    assert made.exit_code == 0, made.output
    assert f"application URI: {URI}" in made.output and "10.1.2.3" in made.output
    info_line = next(line for line in made.output.splitlines() if "thumbprint" in line)
    load_private_key(tmp_path / "bridge.key.pem", "pw")
    shown = runner.invoke(app, ["show", str(tmp_path / "bridge.der")])
    assert shown.exit_code == 0 and info_line in shown.output
    again = runner.invoke(app, ["create", str(tmp_path), "--uri", URI])
    assert again.exit_code == 2 and "refusing to replace" in again.output
    missing_pw = runner.invoke(app, ["create", str(tmp_path / "b"), "--password-env", "NOPE_X"])
    assert missing_pw.exit_code == 2 and "NOPE_X is not set" in missing_pw.output
    bad = runner.invoke(app, ["show", str(tmp_path / "bridge.key.pem")])
    assert bad.exit_code == 2 and "private key, not a certificate" in bad.output
