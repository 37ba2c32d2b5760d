"""The PKI's folders, certificate signing requests and the deny list (CRL), without a
server (the server's side: tests/api/test_api_pki.py)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from lifecert.pki import (
    DenyList,
    Identity,
    PkiError,
    PkiPaths,
    identity_of,
    init,
    issue,
    issue_for_csr,
    parse_serial,
    revoke,
)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def csr_of(key: object, subject: str = "HUB-ADMIN") -> bytes:
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject)]))
               .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey)  # type: ignore[arg-type]
                     else hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def test_the_ca_key_lives_apart_from_the_server_folder(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    assert sorted(p.name for p in paths.root.iterdir()) == \
        ["ca.crl", "ca.crt", "server.crt", "server.key"]
    assert paths.ca_key.parent == tmp_path / "pki-ca"
    assert stat.S_IMODE(paths.ca_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    issued = issue(paths, "MO-SSF", role="MACAU_SSF")  # a key made here stays in the CA's
    assert issued.key.is_relative_to(paths.ca_dir)
    assert stat.S_IMODE(paths.clients.stat().st_mode) == 0o700


def test_init_moves_a_ca_key_left_in_the_server_folder(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    key = paths.ca_key.read_bytes()
    # The layout of older versions: the CA key and certificate beside the server's.
    os.replace(paths.ca_key, paths.misplaced_ca_key)
    paths.ca_own_cert.unlink()
    with pytest.raises(PkiError, match="run `lifecert pki init` once to move it"):
        issue(paths, "MO-SSF", role="MACAU_SSF")
    written = init(paths)
    assert paths.ca_key in written and not paths.misplaced_ca_key.exists()
    assert paths.ca_key.read_bytes() == key
    assert paths.ca_own_cert.read_bytes() == paths.ca_cert.read_bytes()
    issue(paths, "MO-SSF", role="MACAU_SSF")


def test_a_csr_names_what_the_hub_says_and_weak_or_forged_ones_are_refused(
        tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    cert = issue_for_csr(paths, "MO-SSF", csr_of(ec.generate_private_key(ec.SECP384R1())),
                         role="MACAU_SSF")
    assert identity_of(pem(cert)) == Identity("MO-SSF", "MACAU_SSF")
    rsa_ok = issue_for_csr(paths, "MO-SSF", csr_of(rsa.generate_private_key(65537, 3072)),
                           role="MACAU_SSF")
    assert rsa_ok.public_key().key_size == 3072  # type: ignore[union-attr]
    refusals = [
        (csr_of(rsa.generate_private_key(65537, 1024)), "RSA key has 1024 bits"),
        (csr_of(ec.generate_private_key(ec.SECP256K1())), "curve secp256k1"),
        (csr_of(ed25519.Ed25519PrivateKey.generate()), "key is a Ed25519PublicKey"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nnonsense\n", "not a certificate signing"),
        (b"\x00" * 70_000, "a CSR is a few KiB at most"),
    ]
    good = csr_of(ec.generate_private_key(ec.SECP256R1()))
    # A request changed after it was signed: its signature no longer proves anything.
    der = x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER)
    forged = der.replace(b"HUB-ADMIN", b"HUB-ADMIX")
    refusals.append((forged, "signature does not match its key"))
    before = sorted(paths.issued.iterdir())
    for request, expected in refusals:
        with pytest.raises(PkiError, match=expected):
            issue_for_csr(paths, "MO-SSF", request, role="MACAU_SSF")
    assert sorted(paths.issued.iterdir()) == before
    with pytest.raises(PkiError, match="unknown role"):
        issue_for_csr(paths, "MO-SSF", good, role="ROOT")


def test_revoke_by_serial_and_by_agency(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    first = issue(paths, "MO-SSF", role="MACAU_SSF")
    second = issue_for_csr(paths, "MO-SSF", csr_of(ec.generate_private_key(ec.SECP256R1())),
                           role="MACAU_SSF")
    bystander = issue(paths, "FS-PORTAL", role="PORTAL")
    deny = DenyList(paths.crl, paths.ca_cert)
    deny.load()
    certs = {"first": first.cert.read_bytes(), "second": pem(second),
             "bystander": bystander.cert.read_bytes()}
    assert {name: deny.refusal(c) for name, c in certs.items()} == dict.fromkeys(certs)
    revoked = revoke(paths, agency="MO-SSF")
    assert {r.agency for r in revoked} == {"MO-SSF"} and len(revoked) == 2
    for name in ("first", "second"):
        assert "of agency MO-SSF (role MACAU_SSF)" in (deny.refusal(certs[name]) or "")
    assert deny.refusal(certs["bystander"]) is None
    assert revoke(paths, agency="MO-SSF") == []  # listed once
    serial = f"{x509.load_pem_x509_certificate(certs['bystander']).serial_number:X}"
    assert [r.agency for r in revoke(paths, serials=[parse_serial(serial.lower())])] == \
        ["FS-PORTAL"]
    assert deny.refusal(certs["bystander"]) is not None
    for bad in ("", "xyz", "12 34", "1" * 41):
        with pytest.raises(PkiError, match="not a certificate serial"):
            parse_serial(bad)
    with pytest.raises(PkiError, match="issued no certificate to agency 'NOBODY'"):
        revoke(paths, agency="NOBODY")


def test_the_deny_list_never_shrinks_by_a_bad_file(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    victim = issue(paths, "MO-SSF", role="MACAU_SSF").cert.read_bytes()
    empty_crl = paths.crl.read_bytes()  # CRL number 1
    revoke(paths, agency="MO-SSF")
    deny = DenyList(paths.crl, paths.ca_cert)
    deny.load()
    assert deny.refusal(victim) is not None

    # An older CRL, signed by the CA but without the revocation: not installed.
    paths.crl.write_bytes(empty_crl)
    assert deny.refusal(victim) is not None
    # A CRL signed by another CA with the same name, and a damaged file: not installed.
    rogue = PkiPaths(tmp_path / "rogue")
    init(rogue)
    for _ in range(3):
        revoke(rogue, serials=[1])  # a higher CRL number than ours
    paths.crl.write_bytes(rogue.crl.read_bytes())
    assert deny.refusal(victim) is not None
    paths.crl.write_bytes(b"garbage")
    assert deny.refusal(victim) is not None
    paths.crl.unlink()  # gone
    assert deny.refusal(victim) is not None
    # A server cannot start on a CRL it cannot check, nor without one.
    paths.crl.write_bytes(b"garbage")
    with pytest.raises(PkiError, match="is not a CRL"):
        DenyList(paths.crl, paths.ca_cert).load()
    paths.crl.unlink()
    with pytest.raises(PkiError, match=r"no CRL at .*does not start without.*lifecert pki init"):
        DenyList(paths.crl, paths.ca_cert).load()


def test_a_crl_past_its_next_update_is_refused(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    init(paths)
    victim = issue(paths, "MO-SSF", role="MACAU_SSF").cert.read_bytes()
    revoke(paths, agency="MO-SSF")  # number 2
    deny = DenyList(paths.crl, paths.ca_cert)
    deny.load()
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    stale = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
             .last_update(now - dt.timedelta(days=10)).next_update(now - dt.timedelta(days=1))
             .add_extension(x509.CRLNumber(9), critical=False)
             .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    paths.crl.write_bytes(stale.public_bytes(serialization.Encoding.PEM))
    # While running: not installed (it would drop the revocation), the list stays.
    assert deny.refusal(victim) is not None and "CRL number 2" in (deny.refusal(victim) or "")
    with pytest.raises(PkiError, match=r"due to be replaced on .* \(nextUpdate\).*lifecert "
                       "pki revoke"):
        DenyList(paths.crl, paths.ca_cert).load()
