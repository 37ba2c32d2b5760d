"""A throwaway certificate authority for the simulators of partner systems that speak TLS
(the Guangdong provincial system): the simulator serves a certificate this CA signed, and
the connector under test pins the CA's certificate (its ``ca_file`` setting), as it would
pin the partner's real CA in production.

    ca = TestCA.create(folder / "ca")                   # ca.pem (+ its key, 0600)
    server = ca.issue_server(folder / "server", ["127.0.0.1", "localhost"])
    server.cert_file, server.key_file, ca.cert_file

A second ``TestCA`` is how tests show that a server certified by anyone else is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAYS = 30


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name,
             key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=_DAYS))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False))


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a pytest test class

    folder: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_file(self) -> Path:
        return self.folder / "ca.pem"

    @classmethod
    def create(cls, folder: Path, name: str = "lifecert test partner CA") -> TestCA:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (_builder(_name(name), _name(name), key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    key_cert_sign=True, crl_sign=True, encipher_only=False,
                    decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        ca = cls(folder, key, cert)
        _write_private(folder / "ca.key", key)
        ca.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    def issue_server(self, folder: Path, hosts: Sequence[str]) -> ServerCertificate:
        """A TLS server certificate for ``hosts`` (IP addresses or DNS names), its key
        (0600) beside it."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (_builder(_name(hosts[0]), self.cert.subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        server = ServerCertificate(folder / "server.pem", folder / "server.key")
        _write_private(server.key_file, key)
        server.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return server

    def issue_client(self, folder: Path, name: str) -> ServerCertificate:
        """A TLS client certificate (mutual TLS) for ``name``, its key (0600) beside it."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (_builder(_name(name), self.cert.subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        client = ServerCertificate(folder / "client.pem", folder / "client.key")
        _write_private(client.key_file, key)
        client.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return client
