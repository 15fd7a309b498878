"""TLS for the API when it listens off loopback: a self-signed certificate, made on first
start, that clients pin (the CLI reads it from the data directory, as lnd's ``tls.cert``).

The certificate is its own trust anchor (CA:true, like lnd's), names the listening address,
``localhost``, ``127.0.0.1`` and the host's name, and lasts ten years; its key is ECDSA P-256
in a 0600 file. Nothing here is downloaded or shared: the operator copies ``api.cert`` to
the machine of a remote client.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..config import NodeConfig, write_secret
from .files import PRIVATE_FILE, tighten

log = logging.getLogger("chenilles.node")
VALIDITY = datetime.timedelta(days=3650)


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    addresses = {"127.0.0.1", "::1"}
    try:
        addresses.add(str(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        names.append(x509.DNSName(hostname))
    names.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses))
    return names


def create_certificate(cert_path: Path, key_path: Path, host: str) -> None:
    """A fresh key and self-signed certificate for ``host`` (the key written 0600 first)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chenilles node API")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    write_secret(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    tmp = cert_path.with_name(cert_path.name + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, cert_path)


def server_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The API's TLS context, the certificate made on first start; ``None`` without TLS."""
    if not config.api_uses_tls:
        return None
    cert, key = config.cert_path, config.key_path
    if not (cert.exists() and key.exists()):
        create_certificate(cert, key, config.api_host)
        log.info("created the API's TLS certificate %s (clients pin this file)", cert)
    tighten(key, PRIVATE_FILE)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
