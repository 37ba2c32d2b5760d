"""CA, server and client certificates with the ``cryptography`` package (see the package
docstring). Private keys are written with mode 0600 and never overwritten silently.

Two folders (see docs/pki.md): the server's PKI folder holds only what a running server
needs (its key and certificate, the CA certificate, the CRL); the CA folder holds the CA's
private key, a copy of every certificate it issued and the CRL it signs. The CA folder
belongs on an offline machine; ``init``, ``issue`` and ``revoke`` are run there."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lifecert.endpoints import project_data_dir
from lifecert.events import bounds
from lifecert.pki.roles import ROLES

PKI_DIR_ENV = "LIFECERT_PKI_DIR"
CA_DIR_ENV = "LIFECERT_CA_DIR"
# An agency id: letters, digits, dot, dash, underscore (it names files and appears in
# the certificate's subject and URI); the same as the agency id of events.
AGENCY_PATTERN = bounds.AGENCY_ID
URI_PREFIX = "urn:lifecert:agency:"

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 397
CRL_DAYS = 400  # the CRL's nextUpdate; `lifecert pki revoke` re-signs it sooner
# Keys accepted in a certificate signing request: the curves of 128 bits of security or
# more (the hub's own keys are P-256), RSA of 3072 bits or more (the same level).
CSR_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 3072
MAX_CSR_BYTES = 64 * 1024


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
    """Where the server's certificates (``root``) and the CA (``ca_root``, by default the
    folder ``<root>-ca`` beside it) live."""

    root: Path
    ca_root: Path | None = None

    @classmethod
    def default(cls, explicit: Path | None = None, ca_dir: Path | None = None) -> PkiPaths:
        """``explicit``, else ``$LIFECERT_PKI_DIR``, else ``data/pki`` of the project; the
        CA folder ``ca_dir``, else ``$LIFECERT_CA_DIR``, else ``data/pki-ca``."""
        if explicit is not None:
            root = explicit.expanduser().resolve()
        elif os.environ.get(PKI_DIR_ENV):
            root = Path(os.environ[PKI_DIR_ENV]).expanduser().resolve()
        else:
            root = project_data_dir("pki")
        if ca_dir is None and os.environ.get(CA_DIR_ENV):
            ca_dir = Path(os.environ[CA_DIR_ENV])
        return cls(root, ca_dir.expanduser().resolve() if ca_dir is not None else None)

    # -- the server's folder: what a running server reads ---------------------------------
    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def crl(self) -> Path:
        return self.root / "ca.crl"

    @property
    def misplaced_ca_key(self) -> Path:
        """Where ``pki init`` put the CA key before the CA had a folder of its own."""
        return self.root / "ca.key"

    # -- the CA's folder: offline -------------------------------------------------------
    @property
    def ca_dir(self) -> Path:
        return self.ca_root if self.ca_root is not None else \
            self.root.with_name(self.root.name + "-ca")

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def ca_own_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_crl(self) -> Path:
        return self.ca_dir / "ca.crl"

    @property
    def issued(self) -> Path:
        """A copy of every certificate the CA signed, ``<serial in hex>.crt``."""
        return self.ca_dir / "issued"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def clients(self) -> Path:
        """Keys and certificates made by ``issue`` without a CSR (tests, a demo): the hub
        then held the agency's key, so production uses ``issue_for_csr``."""
        return self.ca_dir / "clients"

    def client_key(self, agency: str) -> Path:
        return self.clients / f"{agency}.key"

    def client_cert(self, agency: str) -> Path:
        return self.clients / f"{agency}.crt"


# ------------------------------------------------------------------------ helpers


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _private_dir(path: Path) -> None:
    """``path`` as a folder only its owner may enter (0700), made if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


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


def _write_public(path: Path, data: bytes) -> None:
    """Write atomically (a server re-reading the file never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    temp.write_bytes(data)
    os.replace(temp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write_public(path, cert.public_bytes(serialization.Encoding.PEM))


def serial_hex(serial: int) -> str:
    """A serial number as ``openssl x509 -serial`` prints it (upper-case hexadecimal)."""
    return f"{serial:X}"


def _record(paths: PkiPaths, cert: x509.Certificate) -> None:
    """Keep a copy of every certificate signed (``revoke --agency`` finds them here)."""
    _write_cert(paths.issued / f"{serial_hex(cert.serial_number)}.crt", cert)


def _load_ca(paths: PkiPaths) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    if not paths.ca_key.exists() and paths.misplaced_ca_key.exists():
        raise PkiError(
            f"the CA key is in the server's folder ({paths.misplaced_ca_key}); run "
            f"`lifecert pki init` once to move it to the CA folder {paths.ca_dir}"
        )
    if not paths.ca_key.exists() or not paths.ca_own_cert.exists():
        raise PkiError(
            f"no CA in {paths.ca_dir}; create it with `lifecert pki init` "
            f"(or point --ca-dir / {CA_DIR_ENV} at it, e.g. the offline CA's USB stick)"
        )
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{paths.ca_key} is not an EC private key")
    cert = x509.load_pem_x509_certificate(paths.ca_own_cert.read_bytes())
    return key, cert


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: CertificatePublicKeyTypes, days: int
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
    """Create the CA (in the CA folder, 0700) and the server's certificate (for
    ``hosts``, in the server's folder, with the CA certificate and an empty CRL). An
    existing CA is kept (only the server certificate is renewed) unless ``force``; a CA
    key left in the server's folder by an older version is moved to the CA folder.
    Returns the files written."""
    written: list[Path] = []
    _private_dir(paths.ca_dir)
    if paths.misplaced_ca_key.exists():
        if paths.ca_key.exists():
            raise PkiError(
                f"a CA key is both in the server's folder ({paths.misplaced_ca_key}) and in "
                f"the CA folder ({paths.ca_key}); keep the right one in the CA folder and "
                f"delete the other"
            )
        os.replace(paths.misplaced_ca_key, paths.ca_key)
        if not paths.ca_own_cert.exists() and paths.ca_cert.exists():
            _write_public(paths.ca_own_cert, paths.ca_cert.read_bytes())
        written.append(paths.ca_key)
    if force or not (paths.ca_key.exists() and paths.ca_own_cert.exists()):
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
        _write_cert(paths.ca_own_cert, cert)
        written += [paths.ca_key, paths.ca_own_cert]
        paths.ca_crl.unlink(missing_ok=True)  # the old CA's list means nothing now
    _write_public(paths.ca_cert, paths.ca_own_cert.read_bytes())
    written.append(paths.ca_cert)
    if not paths.ca_crl.exists():
        _sign_crl(paths, [], 1)
    _write_public(paths.crl, paths.ca_crl.read_bytes())
    written += [paths.ca_crl, paths.crl]
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
    _record(paths, cert)
    return [paths.server_key, paths.server_cert]


def _check_request(agency: str, role: str, days: int) -> None:
    if not AGENCY_PATTERN.fullmatch(agency):
        raise PkiError(
            f"agency id {agency!r} is not valid: use letters, digits, '.', '-' or '_' "
            "(at most 64, starting with a letter or digit)"
        )
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if days < 1:
        raise PkiError("a certificate is valid for at least one day")


def _client_certificate(
    paths: PkiPaths, agency: str, role: str, public_key: CertificatePublicKeyTypes, days: int
) -> x509.Certificate:
    """Sign a client certificate for ``public_key`` naming ``agency`` and ``role`` (the
    hub's words, whatever a request said), and record it."""
    ca_key, ca_cert = _load_ca(paths)
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{agency} ({role})"),
    ])
    cert = (
        _leaf_usage(_base(subject, ca_cert.subject, public_key, days))
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
    _record(paths, cert)
    return cert


def issue(
    paths: PkiPaths,
    agency: str,
    *,
    role: str,
    days: int = CLIENT_DAYS,
    force: bool = False,
    out_dir: Path | None = None,
) -> Issued:
    """Issue ``agency``'s client key and certificate for ``role`` (a role of the
    authorization matrix). The hub makes the key, so it held the agency's secret: for
    tests and demos; partners send a CSR (:func:`issue_for_csr`). Refuses to overwrite an
    existing one unless ``force``."""
    _check_request(agency, role, days)
    _load_ca(paths)
    folder = out_dir or paths.clients
    key_path, cert_path = folder / f"{agency}.key", folder / f"{agency}.crt"
    if not force and (key_path.exists() or cert_path.exists()):
        raise PkiError(
            f"{cert_path} exists already; pass --force to issue a new key and certificate"
        )
    if out_dir is None:
        _private_dir(folder)
    key = _new_key()
    cert = _client_certificate(paths, agency, role, key.public_key(), days)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return Issued(key_path, cert_path, Identity(agency, role), cert.not_valid_after_utc)


def check_csr_key(public_key: object) -> str:
    """Describe an acceptable CSR key (``"EC secp256r1"``, ``"RSA 3072"``); raise
    :class:`PkiError` saying what is wrong with any other."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve not in CSR_CURVES:
            raise PkiError(f"the request's EC key is on curve {curve}; use one of "
                           f"{', '.join(CSR_CURVES)} (P-256 recommended)")
        return f"EC {curve}"
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < MIN_RSA_BITS:
            raise PkiError(f"the request's RSA key has {bits} bits, fewer than "
                           f"{MIN_RSA_BITS}; make a new key of {MIN_RSA_BITS} bits or more, or "
                           f"an EC P-256 key")
        if public_key.public_numbers().e != 65537:
            raise PkiError("the request's RSA key has a public exponent other than 65537; "
                           "make a new key with the usual exponent")
        return f"RSA {bits}"
    raise PkiError(f"the request's key is a {type(public_key).__name__.removeprefix('_')}; "
                   f"only EC ({', '.join(CSR_CURVES)}) and RSA ({MIN_RSA_BITS}+ bits) keys "
                   f"are accepted")


def load_csr(data: bytes, where: str = "the request") -> x509.CertificateSigningRequest:
    """A certificate signing request (PEM or DER) whose signature proves its maker holds
    the key; :class:`PkiError` otherwise."""
    if len(data) > MAX_CSR_BYTES:
        raise PkiError(f"{where} has {len(data):,} bytes; a CSR is a few KiB at most")
    try:
        csr = (x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----")
               else x509.load_der_x509_csr(data))
    except ValueError as exc:
        raise PkiError(f"{where} is not a certificate signing request (PEM or DER): "
                       f"{exc}") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"{where}: its signature cannot be checked ({exc})") from None
    if not valid:
        raise PkiError(f"{where}: its signature does not match its key (made for another "
                       f"key, or damaged); make the request again")
    return csr


def issue_for_csr(
    paths: PkiPaths, agency: str, csr_pem: bytes, *, role: str, days: int = CLIENT_DAYS,
    where: str = "the request",
) -> x509.Certificate:
    """Sign the agency's certificate signing request: the key stays with the agency. The
    request's key is checked (:func:`check_csr_key`); its subject and any extension it
    asks for are ignored: the certificate names ``agency`` and ``role`` as the hub says."""
    _check_request(agency, role, days)
    csr = load_csr(csr_pem, where)
    public_key = csr.public_key()
    check_csr_key(public_key)
    return _client_certificate(paths, agency, role, public_key, days)


# ------------------------------------------------------------------------ revocation


@dataclass(frozen=True)
class Revoked:
    serial: int
    agency: str | None  # from the CA's copy of the certificate, when it has one
    role: str | None


def _sign_crl(paths: PkiPaths, entries: Sequence[x509.RevokedCertificate], number: int) -> None:
    ca_key, ca_cert = _load_ca(paths)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    _write_public(paths.ca_crl, crl.public_bytes(serialization.Encoding.PEM))


def load_crl(path: Path, ca_cert: x509.Certificate) -> x509.CertificateRevocationList:
    """The CRL at ``path`` if the CA signed it; :class:`PkiError` otherwise."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read the CRL {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PkiError(f"{path} is not a CRL (PEM): {exc}") from None
    public_key = ca_cert.public_key()
    if crl.issuer != ca_cert.subject or \
            not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)) or \
            not crl.is_signature_valid(public_key):
        raise PkiError(f"the CRL {path} is not signed by the CA "
                       f"{ca_cert.subject.rfc4514_string()}")
    return crl


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def parse_serial(text: str) -> int:
    """A serial as openssl prints it (hex, with or without ``0x`` or colons)."""
    cleaned = text.strip().removeprefix("0x").removeprefix("0X").replace(":", "")
    if not re.fullmatch(r"[0-9A-Fa-f]{1,40}", cleaned):
        raise PkiError(f"serial {text!r} is not a certificate serial number in hexadecimal "
                       f"(as `openssl x509 -noout -serial` prints it)")
    return int(cleaned, 16)


def issued_certificates(paths: PkiPaths) -> list[x509.Certificate]:
    """Every certificate the CA recorded, and those in the clients folders (the one
    ``issue`` writes, and ``PKI_DIR/clients`` where it wrote before the CA had a folder)."""
    found: dict[int, x509.Certificate] = {}
    for folder in (paths.issued, paths.clients, paths.root / "clients"):
        for path in sorted(folder.glob("*.crt")) if folder.is_dir() else []:
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
            except ValueError:
                continue
            found.setdefault(cert.serial_number, cert)
    return list(found.values())


def revoke(
    paths: PkiPaths, *, serials: Sequence[int] = (), agency: str | None = None,
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
) -> list[Revoked]:
    """Add certificates to the CA's CRL (by serial, and/or every certificate the CA
    issued to ``agency``), sign it with a higher CRL number and install it in the
    server's folder when that folder exists. Returns the newly revoked ones (a serial
    already revoked is not repeated)."""
    _, ca_cert = _load_ca(paths)
    if not serials and agency is None:
        raise PkiError("name what to revoke: a serial, or an agency")
    known = {c.serial_number: c for c in issued_certificates(paths)}
    wanted: list[int] = list(serials)
    if agency is not None:
        mine = [s for s, c in known.items() if _agency_of(c) == agency]
        if not mine:
            raise PkiError(f"the CA has issued no certificate to agency {agency!r} (looked "
                           f"in {paths.issued}); check the id, or revoke by serial")
        wanted += sorted(mine)
    if paths.ca_crl.exists():
        current = load_crl(paths.ca_crl, ca_cert)
        entries, number = list(current), crl_number(current)
    else:
        entries, number = [], 0
    listed = {e.serial_number for e in entries}
    now = _now()
    added: list[Revoked] = []
    for serial in dict.fromkeys(wanted):
        if serial in listed:
            continue
        if serial == ca_cert.serial_number:
            raise PkiError("that serial is the CA's own certificate; to retire the CA make a "
                           "new one (`lifecert pki init --force`)")
        entries.append(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now)
            .add_extension(x509.CRLReason(reason), critical=False).build()
        )
        cert = known.get(serial)
        identity = _identity_or_none(cert)
        added.append(Revoked(serial, identity.agency if identity else None,
                             identity.role if identity else None))
    _sign_crl(paths, entries, number + 1)
    if paths.root.is_dir():
        _write_public(paths.crl, paths.ca_crl.read_bytes())
    return added


def _identity_or_none(cert: x509.Certificate | None) -> Identity | None:
    if cert is None:
        return None
    try:
        return identity_of(cert.public_bytes(serialization.Encoding.PEM))
    except PkiError:
        return None


def _agency_of(cert: x509.Certificate) -> str | None:
    identity = _identity_or_none(cert)
    return identity.agency if identity else None


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
