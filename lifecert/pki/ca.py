"""CA, server and client certificates with the ``cryptography`` package (see the package
docstring). Private keys are written with mode 0600 and never overwritten silently."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lifecert.events import bounds

PKI_DIR_ENV = "LIFECERT_PKI_DIR"
# An agency id: letters, digits, dot, dash, underscore (it names files and appears in
# the certificate's subject and URI); the same as the agency id of events.
AGENCY_PATTERN = bounds.AGENCY_ID
URI_PREFIX = "urn:lifecert:agency:"

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 397


class PkiError(RuntimeError):
    """The PKI operation cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Identity:
    agency: str
    role: str


@dataclass(frozen=True)
class Issued:
    key: Path
    cert: Path
    identity: Identity
    not_after: dt.datetime


@dataclass(frozen=True)
class PkiPaths:
    """Where the CA and the certificates it issued live."""

    root: Path

    @classmethod
    def default(cls, explicit: Path | None = None) -> PkiPaths:
        """``explicit``, else ``$LIFECERT_PKI_DIR``, else ``data/pki`` of the project."""
        if explicit is not None:
            return cls(explicit.expanduser().resolve())
        if os.environ.get(PKI_DIR_ENV):
            return cls(Path(os.environ[PKI_DIR_ENV]).expanduser().resolve())
        from lifecert.stack.config import find_project_root

        here = Path.cwd().resolve()
        return cls((find_project_root(here) or here) / "data" / "pki")

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    def client_key(self, agency: str) -> Path:
        return self.clients / f"{agency}.key"

    def client_cert(self, agency: str) -> Path:
        return self.clients / f"{agency}.crt"


# ------------------------------------------------------------------------ helpers


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_ca(paths: PkiPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not paths.ca_key.exists() or not paths.ca_cert.exists():
        raise PkiError(
            f"no CA in {paths.root}; create it with `lifecert pki init` "
            f"(or point --pki-dir / {PKI_DIR_ENV} at it)"
        )
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{paths.ca_key} is not an EC private key")
    cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    return key, cert


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    )


def _leaf_usage(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False,
        ),
        critical=True,
    )


def _general_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


# ------------------------------------------------------------------------ operations


def init(
    paths: PkiPaths,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    name: str = "lifecert partner CA",
    force: bool = False,
) -> list[Path]:
    """Create the CA and the server's certificate (for ``hosts``). An existing CA is kept
    (only the server certificate is renewed) unless ``force``; returns the files
    written."""
    written: list[Path] = []
    if force or not (paths.ca_key.exists() and paths.ca_cert.exists()):
        key = _new_key()
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lifecert"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ])
        cert = (
            _base(subject, subject, key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_encipherment=False, content_commitment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(paths.ca_key, key)
        _write_cert(paths.ca_cert, cert)
        written += [paths.ca_key, paths.ca_cert]
    written += issue_server(paths, hosts)
    return written


def issue_server(paths: PkiPaths, hosts: Sequence[str]) -> list[Path]:
    """(Re)issue the server's certificate for ``hosts`` (DNS names or IP addresses)."""
    if not hosts:
        raise PkiError("the server certificate needs at least one host name or address")
    ca_key, ca_cert = _load_ca(paths)
    key = _new_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lifecert"),
        x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
    ])
    cert = (
        _leaf_usage(_base(subject, ca_cert.subject, key.public_key(), SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_general_names(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(paths.server_key, key)
    _write_cert(paths.server_cert, cert)
    return [paths.server_key, paths.server_cert]


def issue(
    paths: PkiPaths,
    agency: str,
    *,
    role: str,
    days: int = CLIENT_DAYS,
    force: bool = False,
    out_dir: Path | None = None,
) -> Issued:
    """Issue ``agency``'s client certificate for ``role`` (a role of the authorization
    matrix). Refuses to overwrite an existing one unless ``force``."""
    from lifecert.api.authz import ROLES  # the matrix is the one list of roles

    if not AGENCY_PATTERN.fullmatch(agency):
        raise PkiError(
            f"agency id {agency!r} is not valid: use letters, digits, '.', '-' or '_' "
            "(at most 64, starting with a letter or digit)"
        )
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if days < 1:
        raise PkiError("a certificate is valid for at least one day")
    ca_key, ca_cert = _load_ca(paths)
    folder = out_dir or paths.clients
    key_path, cert_path = folder / f"{agency}.key", folder / f"{agency}.crt"
    if not force and (key_path.exists() or cert_path.exists()):
        raise PkiError(
            f"{cert_path} exists already; pass --force to issue a new key and certificate"
        )
    key = _new_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{agency} ({role})"),
    ])
    cert = (
        _leaf_usage(_base(subject, ca_cert.subject, key.public_key(), days))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"{URI_PREFIX}{agency}:role:{role}")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return Issued(key_path, cert_path, Identity(agency, role), cert.not_valid_after_utc)


@lru_cache(maxsize=1024)
def identity_of(cert_pem: bytes) -> Identity:
    """Agency and role named by a client certificate (already verified by TLS against
    the CA). Raises :class:`PkiError` when it names none or names them inconsistently."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    subject = cert.subject
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    units = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(orgs) != 1 or len(units) != 1:
        raise PkiError("the client certificate does not name one agency (O) and one role (OU)")
    identity = Identity(str(orgs[0].value), str(units[0].value))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    expected = f"{URI_PREFIX}{identity.agency}:role:{identity.role}"
    lifecert_uris = [u for u in uris if u.startswith(URI_PREFIX)]
    if lifecert_uris and lifecert_uris != [expected]:
        raise PkiError("the client certificate's subject and its lifecert URI disagree")
    if not AGENCY_PATTERN.fullmatch(identity.agency):
        raise PkiError("the client certificate's agency id is not valid")
    return identity
