"""``certs`` commands: the bridge's application instance certificate and PLC certificates.

``certs_app()`` builds the typer sub-app; the main command line mounts it (``intern
certs``). Importing this module has no side effects. Errors are printed for a person and
end with exit code 2.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from mes_bridge.certs import (
    CertificateFiles,
    CertificateInfo,
    certificate_info,
    create_certificate,
    load_certificate,
)
from mes_bridge.errors import BridgeError

DEFAULT_URI = "urn:{host}:intern-cells:bridge"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _show(info: CertificateInfo) -> None:
    typer.echo(f"subject:         {info.subject}")
    typer.echo(f"issuer:          {info.issuer}" + (" (self-signed)" if info.self_signed else ""))
    typer.echo(f"application URI: {', '.join(info.application_uris) or '(none)'}")
    typer.echo(f"DNS names:       {', '.join(info.dns_names) or '(none)'}")
    typer.echo(f"IP addresses:    {', '.join(info.ip_addresses) or '(none)'}")
    typer.echo(
        f"valid:           {info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M} UTC"
    )
    typer.echo(f"thumbprint:      {info.thumbprint} (SHA-1)")
    typer.echo(f"SHA-256:         {info.sha256}")


def create(
    out_dir: Annotated[Path, typer.Argument(help="Folder for <stem>.der and <stem>.key.pem.")],
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri",
            help="Application URI (default: urn:<this host>:intern-cells:bridge); "
            "the bridge announces it and the PLC checks it against the certificate.",
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host",
            help="Host name or IP address the bridge runs under; repeat for more "
            "(default: this host's name and its addresses).",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Common name of the subject.")] = "intern-cells bridge",
    organization: Annotated[
        str, typer.Option(help="Organization of the subject.")
    ] = "intern-cells",
    days: Annotated[int, typer.Option(min=1, help="Validity in days.")] = 730,
    key_size: Annotated[int, typer.Option(help="RSA key size: 2048, 3072 or 4096.")] = 2048,
    stem: Annotated[str, typer.Option(help="File name stem.")] = "bridge",
    password_env: Annotated[
        str | None,
        typer.Option(help="Encrypt the key with the password in this environment variable."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace existing files (PLCs that trusted the old certificate "
            "must be given the new one).",
        ),
    ] = False,
) -> None:
    """Create the bridge's self-signed application instance certificate and key."""
    hostname = socket.gethostname()
    hosts = host or _local_names(hostname)
    password = None if password_env is None else _password_from(password_env)
    try:
        files = create_certificate(
            out_dir,
            uri or DEFAULT_URI.format(host=hostname),
            hosts,
            name=name,
            organization=organization,
            days=days,
            key_size=key_size,
            key_password=password,
            stem=stem,
            overwrite=force,
        )
    except (ValueError, BridgeError, OSError) as exc:
        raise _fail(str(exc)) from None
    _show_created(files)


def _password_from(variable: str) -> str:
    """The key's password from the environment; a secret never comes from the command line."""
    password = os.environ.get(variable)
    if not password:
        raise _fail(f"environment variable {variable} is not set or empty")
    return password


def _show_created(files: CertificateFiles) -> None:
    typer.echo(f"certificate: {files.certificate}")
    typer.echo(f"private key: {files.private_key} (keep it on this machine only)")
    _show(files.info)
    typer.echo("Give the certificate file to the PLC's list of trusted client certificates.")


def show(path: Annotated[Path, typer.Argument(help="Certificate file (DER or PEM).")]) -> None:
    """Show a certificate's identity, validity and thumbprints."""
    try:
        _show(certificate_info(load_certificate(path)))
    except BridgeError as exc:
        raise _fail(str(exc)) from None


def fetch(
    endpoint: Annotated[str, typer.Argument(help="The PLC's opc.tcp:// endpoint.")],
    out: Annotated[Path, typer.Argument(help="File to write the PLC's certificate to.")],
    timeout: Annotated[float, typer.Option(min=0.5, help="Seconds to wait for the PLC.")] = 10.0,
) -> None:
    """Save the certificate a PLC presents, to be checked and put on the trust list.

    Compare the thumbprint printed here with the one the PLC's engineering tool shows
    before moving the file into the trust list: this download is not authenticated.
    """
    if out.exists():
        raise _fail(f"{out} already exists")
    try:
        der = asyncio.run(_server_certificate(endpoint, timeout))
    except (OSError, TimeoutError, ValueError) as exc:
        raise _fail(f"cannot get the certificate of {endpoint}: {exc!r}") from None
    if der is None:
        raise _fail(f"{endpoint} offers no secure endpoint, hence no certificate")
    out.write_bytes(der)
    typer.echo(f"saved {out}")
    _show(certificate_info(load_certificate(out)))


async def _server_certificate(endpoint: str, timeout: float) -> bytes | None:
    # asyncua is imported here, not at the top: the main command line mounts these
    # commands and must start without loading the OPC UA stack.
    from asyncua import Client
    from asyncua.crypto import uacrypto

    client = Client(endpoint, timeout=timeout)
    endpoints = await asyncio.wait_for(client.connect_and_get_server_endpoints(), timeout)
    for ep in endpoints:
        cert = uacrypto.x509_from_der(ep.ServerCertificate) if ep.ServerCertificate else None
        if cert is not None:
            return uacrypto.der_from_x509(cert)
    return None


def _local_names(hostname: str) -> list[str]:
    names = [hostname, "localhost"]
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        addresses = set()
    return names + sorted(a for a in addresses | {"127.0.0.1"} if isinstance(a, str))


def certs_app() -> typer.Typer:
    """A new typer app with ``create``, ``show`` and ``fetch``."""
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help="OPC UA certificates of the bridge and of PLCs.",
    )
    app.command("create")(create)
    app.command("show")(show)
    app.command("fetch")(fetch)
    return app
