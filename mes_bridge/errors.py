"""Typed errors of the OPC UA bridge, each with a message a person can act on."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class TagMapError(BridgeError):
    """A tag map that does not fit the PLC: bad node id, missing node, wrong data type.

    Raised at connect time; the message names the station, the tag and the node.
    """


class PlcConnectionError(BridgeError):
    """The PLC could not be reached, or the connection was lost past the reconnect deadline."""


class PlcWriteError(BridgeError):
    """The PLC refused a write (bad status); the message names station, tag, node and status."""


class CertificateError(BridgeError):
    """A certificate or key file that cannot be used; the message names the file and why."""


class PlcSecurityError(BridgeError):
    """The secure connection was refused: an untrusted certificate (either side), a login
    the PLC rejected, or no endpoint with the configured policy and mode.

    Never retried: a person has to change a trust list, a certificate or a password.
    """


class UntrustedCertificate(PlcSecurityError):
    """A peer's certificate is not on the trust list (or is expired, or names another
    application URI); the message names its subject, URI and thumbprint."""


class HandshakeError(BridgeError):
    """The cell asked for a handshake step that does not fit the station's state."""


class JobNotCurrent(HandshakeError):
    """The job is no longer the PLC's current job (a newer JobSeq or a counter reset)."""
