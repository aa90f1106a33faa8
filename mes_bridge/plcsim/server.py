"""The PLC simulator's OPC UA server: address space, security, restarts, raw values.

Kept apart from the simulated PLC program (``mes_bridge.plcsim.program``): this module
knows asyncua's server, the program only knows tags and values. The server is built once
(building the standard address space costs seconds of CPU) and stopped and started for
PLC restarts; a stop drops every client session and subscription, as a PLC that
restarts does.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from mes_bridge.certs import (
    TrustList,
    certificate_info,
    check_key_pair,
    load_certificate,
    load_private_key,
)
from mes_bridge.errors import CertificateError, UntrustedCertificate

log = logging.getLogger(__name__)

SECURE_ENDPOINTS = (
    "Basic256Sha256_Sign",
    "Basic256Sha256_SignAndEncrypt",
    "Aes128Sha256RsaOaep_Sign",
    "Aes128Sha256RsaOaep_SignAndEncrypt",
    "Aes256Sha256RsaPss_Sign",
    "Aes256Sha256RsaPss_SignAndEncrypt",
)


class SimSecurity(BaseModel):
    """Security of the simulated PLC, as a plant PLC would be set up.

    ``endpoints`` are ``<policy>_<mode>`` names (``SECURE_ENDPOINTS``); ``allow_plain``
    also offers an unsecured endpoint. ``trusted_clients`` (folder or file) is the list of
    client certificates accepted; None accepts any client certificate (demos only).
    ``users`` maps user names to passwords; if given, only those users may log in,
    otherwise logins are anonymous.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: Path
    private_key: Path
    private_key_password: SecretStr | None = None
    endpoints: tuple[str, ...] = Field(default=SECURE_ENDPOINTS, min_length=1)
    allow_plain: bool = False
    trusted_clients: Path | None = None
    users: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("endpoints")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in names if n not in SECURE_ENDPOINTS]
        if bad:
            raise ValueError(f"unknown endpoints {bad}; choose from {SECURE_ENDPOINTS}")
        return names


class _Users(UserManager):
    """asyncua user manager: a fixed table of user names and passwords."""

    def __init__(self, users: Mapping[str, SecretStr]) -> None:
        self._users = {name: pw.get_secret_value().encode() for name, pw in users.items()}

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        expected = self._users.get(username or "")
        given = (password or "").encode()
        if expected is None or not hmac.compare_digest(expected, given):
            log.warning("PLC simulator: login refused for user %r", username)
            return None
        return User(role=UserRole.User, name=username)


class SimServer:
    """An asyncua server on a fixed URL that can be stopped, killed and started again."""

    def __init__(
        self,
        url: str,
        name: str,
        security: SimSecurity | None,
        on_write: Callable[[ServerItemCallback, object], None],
    ) -> None:
        self.url = url
        self._name = name
        self._security = security
        self._on_write = on_write
        self.server: Server | None = None
        self.running = False
        self.certificate: x509.Certificate | None = None

    async def build(self, namespaces: list[str]) -> Server:
        """Create the server with its security and namespaces; nodes are added by the caller."""
        server = Server()
        await server.init()
        server.disable_clock()  # no server clock task: it would not survive a stop/start
        server.set_server_name(self._name)
        if self._security is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await self._secure(server, self._security)
        for uri in namespaces:
            await server.register_namespace(uri)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        self.server = server
        return server

    async def _secure(self, server: Server, sec: SimSecurity) -> None:
        cert = load_certificate(sec.certificate)
        password = sec.private_key_password
        key = load_private_key(sec.private_key, password.get_secret_value() if password else None)
        check_key_pair(cert, key, f"certificate {sec.certificate}")
        uris = certificate_info(cert).application_uris
        if not uris:
            raise CertificateError(f"certificate {sec.certificate} has no application URI")
        self.certificate = cert
        await server.set_application_uri(uris[0])
        await server.load_certificate(cert.public_bytes(serialization.Encoding.DER), "der")
        await server.load_private_key(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            None,
            "der",
        )
        types = [ua.SecurityPolicyType[n] for n in sec.endpoints]
        if sec.allow_plain:
            types.insert(0, ua.SecurityPolicyType.NoSecurity)
        server.set_security_policy(types)
        if sec.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
            server.iserver.set_user_manager(_Users(sec.users))
        else:
            server.set_identity_tokens([ua.AnonymousIdentityToken])
        if sec.trusted_clients is not None:
            trust = TrustList.load(sec.trusted_clients)

            async def validate(cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
                try:
                    trust.check(cert, application_uri=app.ApplicationUri, role="client")
                except UntrustedCertificate as exc:
                    log.warning("PLC simulator refused a client: %s", exc)
                    raise ServiceError(ua.StatusCodes.BadCertificateUntrusted) from None

            server.set_certificate_validator(validate)

    async def start(self) -> int:
        """Start listening; returns the port (useful when the URL asked for port 0)."""
        assert self.server is not None
        server = self.server
        # asyncua adds endpoints and security policy handlers on every start: forget the
        # previous start's, or each restart would announce every endpoint once more.
        server.iserver.endpoints.clear()
        server._policies.clear()
        server.set_endpoint(self.url)
        await server.start()
        self.running = True
        assert server.bserver is not None
        return int(server.bserver.port)

    async def stop(self, *, abort: bool = False) -> None:
        """Stop listening and forget every client session (and its subscriptions).

        ``abort`` resets connections (RST) as a PLC losing power does; otherwise they are
        closed in order. asyncua keeps sessions with subscriptions alive after their
        connection is gone so that a client may resume them; a restarted PLC does not.
        """
        server = self.server
        if server is None or not self.running:
            return
        self.running = False
        if abort:
            self.drop_connections()
        sessions = list(server.iserver._external_sessions.values())
        for session in sessions:
            with contextlib.suppress(Exception):  # best effort: it is being thrown away
                await session.close_session(delete_subs=True)
        await server.stop()

    def drop_connections(self) -> int:
        """Reset every client connection now (a cut cable); the server keeps listening."""
        if self.server is None:
            return 0
        transports = list(self.server.iserver.asyncio_transports)
        for transport in transports:
            transport.abort()
        return len(transports)

    async def store(self, nodeid: ua.NodeId, variant: ua.Variant) -> None:
        """Set a variable's value as the PLC program does, of any type, and notify monitors.

        asyncua's server-side write refuses a value whose type differs from the node's;
        a PLC program with a wrong cast or a corrupted DB does not, and the bridge must
        cope, so the value is stored directly and the data-change callbacks are called.
        """
        assert self.server is not None
        node = self.server.iserver.aspace.get(nodeid)
        if node is None:
            raise KeyError(f"no node {nodeid} in the simulator")
        attval = node.attributes[ua.AttributeIds.Value]
        dv = ua.DataValue(variant)
        attval.value = dv
        attval.value_callback = None
        for handle, callback in list(attval.datachange_callbacks.items()):
            await callback(handle, dv)

    async def set_writable(self, nodeid: ua.NodeId, writable: bool) -> None:
        """Let clients write the node or not (a PLC program download can change this)."""
        assert self.server is not None
        await self.server.get_node(nodeid).set_writable(writable)
