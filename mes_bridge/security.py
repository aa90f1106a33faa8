"""OPC UA security of the bridge's client side: policy, mode, certificate, trust, login.

``SecurityConfig`` is what a line config states for one PLC endpoint, e.g.::

    security:
      policy: Basic256Sha256            # or Aes128Sha256RsaOaep, Aes256Sha256RsaPss
      mode: SignAndEncrypt              # or Sign
      certificate: /etc/intern/pki/own/bridge.der
      private_key: /etc/intern/pki/own/bridge.key.pem
      trusted_server_certificates: /etc/intern/pki/trusted   # folder (or one file)
      username: cell01                  # optional, with password
      password: ...

``ClientSecurity.prepare`` loads and checks the files once (``CertificateError`` naming
the file); ``apply`` runs before every (re)connect: it asks the PLC for its endpoints,
refuses a server certificate that is not on the trust list *before* any secure channel
is opened (``UntrustedCertificate``), then sets the policy, mode and login on the client.
``explain`` turns the PLC's refusals (our certificate, our login) into a
``PlcSecurityError`` a person can act on; such errors are never retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from mes_bridge.certs import (
    TrustList,
    certificate_info,
    check_key_pair,
    describe,
    load_certificate,
    load_private_key,
)
from mes_bridge.errors import CertificateError, PlcSecurityError

Policy = Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"]
Mode = Literal["None", "Sign", "SignAndEncrypt"]
PLAIN_APPLICATION_URI = "urn:intern-cells:bridge"

_S = ua.StatusCodes
# The PLC refused our certificate or the security settings we asked for.
CERTIFICATE_REFUSED = frozenset(
    {
        _S.BadCertificateUntrusted,
        _S.BadCertificateInvalid,
        _S.BadCertificateUriInvalid,
        _S.BadCertificateTimeInvalid,
        _S.BadCertificateIssuerTimeInvalid,
        _S.BadCertificateRevoked,
        _S.BadCertificateIssuerRevoked,
        _S.BadCertificateRevocationUnknown,
        _S.BadCertificateUseNotAllowed,
        _S.BadCertificateHostNameInvalid,
        _S.BadSecurityChecksFailed,
        _S.BadSecurityPolicyRejected,
        _S.BadSecurityModeRejected,
    }
)
# The PLC refused the user identity (anonymous, or user name and password).
LOGIN_REFUSED = frozenset(
    {
        _S.BadUserAccessDenied,
        _S.BadIdentityTokenInvalid,
        _S.BadIdentityTokenRejected,
        _S.BadUserSignatureInvalid,
    }
)


class SecurityConfig(BaseModel):
    """How the bridge secures and authenticates its connection to one PLC endpoint.

    ``policy``/``mode`` both "None" is plain mode (the simulator, tests). Otherwise the
    bridge needs its application instance certificate and key, and a trust list of PLC
    server certificates (a folder of certificate files, or one file). ``application_uri``
    defaults to the URI in the certificate; if given it must be in the certificate.
    A user name and password are refused in plain mode: they would cross the network in
    clear text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Policy = "None"
    mode: Mode = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: SecretStr | None = None
    trusted_server_certificates: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    application_uri: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SecurityConfig:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "security policy and mode must both be 'None' or neither "
                f"(got policy {self.policy}, mode {self.mode})"
            )
        if self.secure:
            missing = [
                name
                for name in ("certificate", "private_key", "trusted_server_certificates")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"security mode {self.mode} needs " + ", ".join(f"'{m}'" for m in missing)
                )
        else:
            given = [
                name
                for name in (
                    "certificate",
                    "private_key",
                    "trusted_server_certificates",
                    "private_key_password",
                )
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} given but policy and mode are 'None': "
                    "the connection would not be secured; set policy and mode"
                )
            if self.username is not None:
                raise ValueError(
                    "a user name and password need mode Sign or SignAndEncrypt: "
                    "in plain mode the password crosses the network in clear text"
                )
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def secure(self) -> bool:
        return self.mode != "None"


class ClientSecurity:
    """A ``SecurityConfig`` with its files loaded and checked; applied at every connect."""

    def __init__(self, config: SecurityConfig) -> None:
        """Load certificate, key and trust list; ``CertificateError`` names a bad file."""
        self.config = config
        self.certificate_der: bytes | None = None
        self._key_der: bytes | None = None
        self.trust: TrustList | None = None
        self.application_uri = config.application_uri or PLAIN_APPLICATION_URI
        if not config.secure:
            return
        assert config.certificate and config.private_key and config.trusted_server_certificates
        cert = load_certificate(config.certificate)
        password = config.private_key_password
        key = load_private_key(
            config.private_key, password.get_secret_value() if password else None
        )
        check_key_pair(cert, key, f"certificate {config.certificate}")
        info = certificate_info(cert)
        if not info.application_uris:
            raise CertificateError(
                f"certificate {config.certificate} has no application URI "
                "in its subjectAltName; OPC UA peers refuse it"
            )
        if (
            config.application_uri is not None
            and config.application_uri not in info.application_uris
        ):
            raise CertificateError(
                f"certificate {config.certificate} is for {', '.join(info.application_uris)}, "
                f"not the configured application URI {config.application_uri!r}"
            )
        self.application_uri = config.application_uri or info.application_uris[0]
        self.certificate_der = cert.public_bytes(serialization.Encoding.DER)
        self._description = describe(info)
        # Kept decrypted in memory, as the OPC UA stack needs it for every secure channel.
        self._key_der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.trust = TrustList.load(config.trusted_server_certificates)

    async def apply(self, client: Client, endpoint: str) -> None:
        """Set application URI, security and login on a new, unconnected client.

        Raises ``PlcSecurityError`` (no endpoint with the policy and mode),
        ``UntrustedCertificate`` (server certificate not trusted), or the client's own
        errors if the PLC cannot be reached.
        """
        cfg = self.config
        client.application_uri = self.application_uri
        if cfg.secure:
            assert self.trust is not None and self.certificate_der and self._key_der
            policy = getattr(security_policies, f"SecurityPolicy{cfg.policy}")
            mode = getattr(ua.MessageSecurityMode, cfg.mode)
            offered = await client.connect_and_get_server_endpoints()
            chosen = [
                ep
                for ep in offered
                if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode
            ]
            if not chosen:
                have = sorted(
                    {
                        f"{ep.SecurityPolicyUri.rsplit('#', 1)[-1]}/{ep.SecurityMode.name}"
                        for ep in offered
                    }
                )
                raise PlcSecurityError(
                    f"PLC at {endpoint} offers no endpoint with {cfg.policy}/{cfg.mode}; "
                    f"it offers {', '.join(have)}"
                )
            server_cert = uacrypto.x509_from_der(chosen[0].ServerCertificate)
            if server_cert is None:
                raise PlcSecurityError(
                    f"PLC at {endpoint} sent no server certificate for {cfg.policy}/{cfg.mode}"
                )
            self.trust.check(
                server_cert, application_uri=chosen[0].Server.ApplicationUri, role="PLC server"
            )
            await client.set_security(
                policy,
                certificate=uacrypto.CertProperties(self.certificate_der, "der"),
                private_key=uacrypto.CertProperties(self._key_der, "der"),
                server_certificate=uacrypto.CertProperties(
                    server_cert.public_bytes(serialization.Encoding.DER), "der"
                ),
                mode=mode,
            )
        if cfg.username is not None and cfg.password is not None:
            client.set_user(cfg.username)
            client.set_password(cfg.password.get_secret_value())

    def explain(self, exc: BaseException, endpoint: str) -> PlcSecurityError | None:
        """A ``PlcSecurityError`` if ``exc`` is the PLC refusing us, else None."""
        if type(exc) is ua.UaError and str(exc).startswith("No matching endpoints"):
            # asyncua's own check of the endpoints a session offers (plain mode only: in
            # secure mode ``apply`` has already picked a matching endpoint).
            return PlcSecurityError(
                f"PLC at {endpoint} offers no unsecured endpoint: "
                "configure a security policy and mode for it"
            )
        code = getattr(exc, "code", None)
        if not isinstance(exc, ua.UaStatusCodeError) or code is None:
            return None
        name = ua.StatusCode(code).name
        if code in CERTIFICATE_REFUSED:
            if not self.config.secure:
                return PlcSecurityError(
                    f"PLC at {endpoint} refused the connection ({name}): "
                    "it probably requires a secure policy and mode"
                )
            return PlcSecurityError(
                f"PLC at {endpoint} refused the bridge's certificate ({name}): add "
                f"{self.config.certificate} ({self._description}) to the PLC's trusted "
                "client certificates"
            )
        if code in LOGIN_REFUSED:
            if self.config.username is None:
                return PlcSecurityError(
                    f"PLC at {endpoint} refused an anonymous login "
                    f"({name}): configure a user name and password"
                )
            return PlcSecurityError(
                f"PLC at {endpoint} refused the login of user {self.config.username!r} "
                f"({name}): check the user name and password"
            )
        return None
