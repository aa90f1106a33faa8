"""Application instance certificates and trust lists for OPC UA security.

An OPC UA application proves who it is with an X.509 v3 *application instance
certificate* whose subjectAltName carries its application URI (the URI it announces in
its ApplicationDescription) and the host names and addresses it runs under. A peer is
accepted only if its certificate is on a *trust list*: a folder of certificates, each
either the peer's own (a self-signed PLC or bridge: pinned exactly) or a CA certificate
that issued it (a plant PKI).

``create_certificate`` writes a self-signed certificate (DER, the encoding OPC UA uses
on the wire and PLC engineering tools import) and its RSA key (PEM, PKCS#8, optionally
encrypted; readable by the owner only). It never overwrites a file unless asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mes_bridge.errors import CertificateError, UntrustedCertificate

CERT_SUFFIXES = (".der", ".pem", ".crt", ".cer")
# Basic256Sha256 and the RSA-OAEP/PSS policies take RSA keys of 2048 to 4096 bits.
KEY_SIZES = (2048, 3072, 4096)


@dataclass(frozen=True)
class CertificateInfo:
    """What a person checks before trusting a certificate."""

    subject: str
    issuer: str
    application_uris: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    thumbprint: str  # SHA-1 of the DER bytes, hex: what OPC UA tools and PLCs display
    sha256: str
    self_signed: bool
    is_ca: bool


@dataclass(frozen=True)
class CertificateFiles:
    """The files ``create_certificate`` wrote and the certificate's identity."""

    certificate: Path
    private_key: Path
    info: CertificateInfo


def create_certificate(
    out_dir: Path,
    application_uri: str,
    hostnames: Sequence[str],
    *,
    name: str = "intern-cells bridge",
    organization: str = "intern-cells",
    days: int = 730,
    key_size: int = 2048,
    key_password: str | None = None,
    stem: str = "bridge",
    overwrite: bool = False,
) -> CertificateFiles:
    """Write ``<stem>.der`` (certificate) and ``<stem>.key.pem`` (key) into ``out_dir``.

    The certificate is self-signed, valid from one hour ago (clocks on a plant network
    drift) for ``days`` days, with subjectAltName = the application URI plus every entry
    of ``hostnames`` (each a DNS name or an IP address, told apart by parsing), key usage
    as OPC UA requires (signature, non-repudiation, key and data encipherment, and
    certificate signing because it signs itself) and both server and client
    authentication as extended key usage, so one certificate serves a client or a server.

    Raises ``ValueError`` for bad arguments and ``CertificateError`` if a target file
    exists and ``overwrite`` is False (a certificate the PLC already trusts is never
    replaced by accident).
    """
    _check_arguments(application_uri, hostnames, key_size=key_size, days=days)
    alt_names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    alt_names.extend(_host_name(h) for h in hostnames)
    out_dir = Path(out_dir)
    cert_path, key_path = out_dir / f"{stem}.der", out_dir / f"{stem}.key.pem"
    existing = [str(p) for p in (cert_path, key_path) if p.exists()]
    if existing and not overwrite:
        raise CertificateError(
            f"{', '.join(existing)} already exist; refusing to replace a certificate a PLC "
            "may already trust (pass overwrite=True / --force, then update the trust lists)"
        )

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, _first_dns(hostnames)),
        ]
    )
    cert = _self_signed(key, subject, alt_names, days)
    key_pem = _key_pem(key, key_password)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(key_path, key_pem, mode=0o600, overwrite=overwrite)
    _write(
        cert_path, cert.public_bytes(serialization.Encoding.DER), mode=0o644, overwrite=overwrite
    )
    return CertificateFiles(cert_path, key_path, certificate_info(cert))


def _check_arguments(
    application_uri: str, hostnames: Sequence[str], *, key_size: int, days: int
) -> None:
    """``ValueError`` naming the first argument of ``create_certificate`` that cannot be used."""
    if not application_uri or ":" not in application_uri:
        raise ValueError(
            f"application URI must be a URI such as 'urn:plant:cell:bridge', "
            f"got {application_uri!r}"
        )
    if not hostnames:
        raise ValueError("give at least one host name or IP address the application runs on")
    if key_size not in KEY_SIZES:
        raise ValueError(f"key size must be one of {KEY_SIZES}, got {key_size}")
    if not 1 <= days <= 20 * 366:
        raise ValueError(f"days must be between 1 and {20 * 366}, got {days}")


def _self_signed(
    key: rsa.RSAPrivateKey, subject: x509.Name, alt_names: list[x509.GeneralName], days: int
) -> x509.Certificate:
    """The application instance certificate as ``create_certificate`` describes it."""
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _key_pem(key: rsa.RSAPrivateKey, password: str | None) -> bytes:
    """The key as PEM, PKCS#8, encrypted with ``password`` if one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate from a PEM or DER file; ``CertificateError`` naming the file if not."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"certificate {path}: cannot read it ({exc.strerror})") from None
    if b"PRIVATE KEY-----" in data:
        raise CertificateError(
            f"certificate {path}: this is a private key, not a certificate "
            "(keys never belong in a trust list)"
        )
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(
            f"certificate {path}: not a PEM or DER X.509 certificate ({exc})"
        ) from None


def load_private_key(path: Path, password: str | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM or DER file; ``CertificateError`` naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"private key {path}: cannot read it ({exc.strerror})") from None
    secret = password.encode() if password else None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, secret)
        else:
            key = serialization.load_der_private_key(data, secret)
    except TypeError as exc:  # a password given for a plain key, or missing for an encrypted one
        raise CertificateError(f"private key {path}: {exc}") from None
    except ValueError as exc:
        raise CertificateError(
            f"private key {path}: cannot load it (wrong password, or not a PEM/DER key): {exc}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(
            f"private key {path}: OPC UA security policies need an RSA key, "
            f"this is {type(key).__name__}"
        )
    return key


def check_key_pair(cert: x509.Certificate, key: rsa.RSAPrivateKey, where: str) -> None:
    """``CertificateError`` unless ``key`` is the private half of ``cert``'s public key."""
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise CertificateError(f"{where}: the private key does not belong to the certificate")


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    """Identity, validity and fingerprints of ``cert``."""
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        uris, dns, ips = (), (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        application_uris=uris,
        dns_names=dns,
        ip_addresses=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        thumbprint=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        sha256=hashlib.sha256(der).hexdigest().upper(),
        self_signed=cert.issuer == cert.subject,
        is_ca=is_ca,
    )


def describe(info: CertificateInfo) -> str:
    """One line a person can compare with what the PLC's engineering tool shows."""
    uri = ", ".join(info.application_uris) or "(no application URI)"
    return f"{info.subject}, URI {uri}, thumbprint {info.thumbprint}"


class TrustList:
    """The certificates a peer may present, from a folder or a single file.

    A peer certificate is trusted if it is byte for byte one of the list (a pinned,
    usually self-signed certificate), or if a CA certificate of the list issued it
    directly (checked by signature). In both cases it must be inside its validity period
    and, when the peer names its application URI, carry that URI in its subjectAltName.
    """

    def __init__(self, certificates: Iterable[x509.Certificate], source: str) -> None:
        self.certificates = tuple(certificates)
        self.source = source
        self._pinned = {c.public_bytes(serialization.Encoding.DER) for c in self.certificates}
        self._cas = [c for c in self.certificates if certificate_info(c).is_ca]

    @classmethod
    def load(cls, location: Path) -> TrustList:
        """Every ``*.der``/``*.pem``/``*.crt``/``*.cer`` in a folder, or one file.

        Raises ``CertificateError`` for a missing location, an unreadable file or an
        empty folder (an empty trust list would refuse every peer: surely a mistake).
        """
        location = Path(location)
        if location.is_dir():
            files = sorted(
                p for p in location.iterdir() if p.is_file() and p.suffix.lower() in CERT_SUFFIXES
            )
            if not files:
                raise CertificateError(
                    f"trust list {location}: no certificate files "
                    f"({', '.join(CERT_SUFFIXES)}) in the folder"
                )
        elif location.is_file():
            files = [location]
        else:
            raise CertificateError(f"trust list {location}: no such file or folder")
        return cls((load_certificate(f) for f in files), str(location))

    def check(
        self,
        cert: x509.Certificate,
        *,
        application_uri: str | None = None,
        role: str = "peer",
        now: dt.datetime | None = None,
    ) -> CertificateInfo:
        """Return the certificate's info if trusted; raise ``UntrustedCertificate`` if not.

        ``role`` words the message ("PLC server", "client").
        """
        info = certificate_info(cert)
        now = now or dt.datetime.now(dt.UTC)
        who = f"{role} certificate {describe(info)}"
        if not info.not_before <= now <= info.not_after:
            raise UntrustedCertificate(
                f"{who} is not valid now (valid {info.not_before:%Y-%m-%d %H:%M} to "
                f"{info.not_after:%Y-%m-%d %H:%M} UTC)"
            )
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in self._pinned and not any(_issued_by(cert, ca) for ca in self._cas):
            raise UntrustedCertificate(
                f"{who} is not on the trust list {self.source}; if it really is the "
                f"{role}'s, compare the thumbprint with the {role}'s own display and put the "
                f"certificate file into that list"
            )
        if application_uri is not None and application_uri not in info.application_uris:
            raise UntrustedCertificate(
                f"{who} does not carry the application URI {application_uri!r} the {role} "
                "announces; the certificate belongs to another application"
            )
        return info


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _host_name(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or any(c.isspace() for c in text) or "/" in text:
        raise ValueError(f"not a host name or IP address: {text!r}")
    return x509.DNSName(text)


def _first_dns(hostnames: Sequence[str]) -> str:
    for h in hostnames:
        try:
            ipaddress.ip_address(h)
        except ValueError:
            return h
    return hostnames[0]


def _write(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # an existing file keeps its old mode through O_TRUNC
