"""Certificates against the real server process: revocation checked on every call and
picked up without a restart, certificates issued from a partner's CSR (the hub never
holds the partner's key), and a server that runs without the CA key (docs/pki.md).

The revocations and issues go through the ``lifecert pki`` command, as an operator runs
it; each test uses agencies of its own, so the session's server serves the others as
before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lifecert.api.client import secure_channel
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.pki import serial_hex
from lifecert_dev.api_sandbox import PROJECT_ROOT, Sandbox, SandboxError, ServerProcess

pytestmark = pytest.mark.stack

ROLE = "ASSISTING_AGENCY"


def lifecert_pki(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lifecert")), "pki", *args,
         "--pki-dir", str(box.pki.root)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("LIFECERT_PKI_DIR",
                                                               "LIFECERT_CA_DIR")},
    )


def submit(channel: grpc.Channel) -> px.SubmitBatchReply:
    """A call that passes the gate (one malformed item: the reply says MALFORMED)."""
    return px_grpc.PartnerExchangeStub(channel).SubmitBatch(
        px.SubmitBatchRequest(items=[px.SubmitItem()]), timeout=20)


def refused(channel: grpc.Channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        submit(channel)
    return info.value


def audit_rows(box: Sandbox, agency: str, count: int) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 20
    while True:  # the audit writer batches its rows
        rows = box.query("SELECT outcome, detail FROM api_audit WHERE agency = %s ORDER BY id",
                         (agency,))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def serial_of(cert: Path) -> str:
    return serial_hex(x509.load_pem_x509_certificate(cert.read_bytes()).serial_number)


def test_a_revoked_certificate_is_refused_on_its_next_call(box: Sandbox,
                                                          server: ServerProcess) -> None:
    with server.channel("REVOKE-ME", ROLE) as channel, \
            server.channel("REVOKE-NOT-ME", ROLE) as other:
        assert submit(channel).results[0].reason_code == "MALFORMED"
        serial = serial_of(box.certificate("REVOKE-ME")[0])
        done = lifecert_pki(box, "revoke", "--serial", serial)
        assert done.returncode == 0, done.stderr
        assert f"revoked {serial} REVOKE-ME ({ROLE})" in done.stdout
        # The same connection, the very next call: no restart, no reconnect.
        error = refused(channel)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (f"client certificate of agency REVOKE-ME (role {ROLE}), serial {serial}, "
                "was revoked on") in error.details()
        assert "ask the hub's operators for a new certificate" in error.details()
        assert submit(other).results[0].reason_code == "MALFORMED"  # others unaffected
    rows = audit_rows(box, "REVOKE-ME", 2)
    assert rows[0][0] == "OK"
    assert rows[-1][0] == "UNAUTHENTICATED" and f"serial {serial}" in rows[-1][1]


def test_revoking_an_agency_revokes_every_certificate_it_holds(
        box: Sandbox, server: ServerProcess, tmp_path: Path) -> None:
    with server.channel("REVOKE-AGENCY", ROLE) as first:
        assert submit(first).results[0].reason_code == "MALFORMED"
        # A second certificate of the same agency, from a CSR.
        key, csr = partner_request(tmp_path)
        issued = lifecert_pki(box, "issue", "REVOKE-AGENCY", "--role", ROLE, "--csr", str(csr),
                              "--out", str(tmp_path / "second.crt"))
        assert issued.returncode == 0, issued.stderr
        with secure_channel(server.target, ca=box.pki.ca_cert, cert=tmp_path / "second.crt",
                            key=key) as second:
            assert submit(second).results[0].reason_code == "MALFORMED"
            done = lifecert_pki(box, "revoke", "--agency", "REVOKE-AGENCY")
            assert done.returncode == 0, done.stderr
            assert done.stdout.count("REVOKE-AGENCY") == 2
            for channel in (first, second):
                error = refused(channel)
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "REVOKE-AGENCY" in error.details() and "revoked" in error.details()
    unknown = lifecert_pki(box, "revoke", "--agency", "NEVER-ISSUED")
    assert unknown.returncode == 1
    assert "issued no certificate to agency 'NEVER-ISSUED'" in unknown.stderr


def partner_request(folder: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                    | None = None) -> tuple[Path, Path]:
    """What the partner does on its side: a key that never leaves it, and a CSR whose
    subject claims more than it should (the hub ignores it)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    key_path = folder / "partner.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HUB-ADMIN"),
                                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                                                       "STAFF")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, hashes.SHA256()))
    csr_path = folder / "partner.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path


def files_under(*folders: Path) -> set[Path]:
    return {p for folder in folders for p in folder.rglob("*") if p.is_file()}


def test_a_certificate_issued_from_a_csr_works_and_the_hub_never_held_the_key(
        box: Sandbox, server: ServerProcess, tmp_path: Path) -> None:
    key, csr = partner_request(tmp_path)
    before = files_under(box.pki.root, box.pki.ca_dir)
    out = tmp_path / "FROM-CSR.crt"
    done = lifecert_pki(box, "issue", "FROM-CSR", "--role", ROLE, "--csr", str(csr),
                        "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = files_under(box.pki.root, box.pki.ca_dir) - before
    # The hub wrote one file: its record of the certificate; no key, anywhere.
    assert [p.relative_to(box.pki.ca_dir) for p in written] == \
        [Path("issued") / f"{serial_of(out)}.crt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["FROM-CSR.crt", "partner.csr", "partner.key"]
    assert b"PRIVATE KEY" not in out.read_bytes()
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.subject.rfc4514_string() == f"CN=FROM-CSR ({ROLE}),OU={ROLE},O=FROM-CSR"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with secure_channel(server.target, ca=box.pki.ca_cert, cert=out, key=key) as channel:
        assert submit(channel).results[0].reason_code == "MALFORMED"
    assert audit_rows(box, "FROM-CSR", 1)[0][0] == "OK"


@pytest.mark.parametrize(("key", "expected"), [
    (lambda: rsa.generate_private_key(65537, 2048), "RSA key has 2048 bits, fewer than 3072"),
    (lambda: ec.generate_private_key(ec.SECP256K1()), "EC key is on curve secp256k1"),
])
def test_a_csr_with_a_weak_key_is_refused(box: Sandbox, tmp_path: Path, key: object,
                                          expected: str) -> None:
    _, csr = partner_request(tmp_path, key())  # type: ignore[operator]
    before = files_under(box.pki.ca_dir)
    out = tmp_path / "WEAK.crt"
    done = lifecert_pki(box, "issue", "WEAK-KEY", "--role", ROLE, "--csr", str(csr),
                        "--out", str(out))
    assert done.returncode == 1
    assert expected in done.stderr
    assert not out.exists() and files_under(box.pki.ca_dir) == before


def test_the_server_runs_without_the_ca_key_and_refuses_one_beside_it(
        box: Sandbox, server: ServerProcess, tmp_path: Path) -> None:
    ca_dir = box.pki.ca_dir
    away = ca_dir.with_name(ca_dir.name + ".offline")
    cert, key = (Path(shutil.copy(p, tmp_path)) for p in box.certificate("NO-CA-KEY", ROLE))
    ca_dir.rename(away)  # the CA folder is on the offline machine
    try:
        assert not any(p.name == "ca.key" for p in box.pki.root.rglob("*"))
        alone = box.start_server(verbose=False)
        try:
            with secure_channel(alone.target, ca=box.pki.ca_cert, cert=cert,
                                key=key) as channel:
                assert submit(channel).results[0].reason_code == "MALFORMED"
        finally:
            alone.stop()
    finally:
        away.rename(ca_dir)
    misplaced = box.pki.root / "ca.key"
    shutil.copy(box.pki.ca_key, misplaced)
    try:
        with pytest.raises(SandboxError, match=r"CA's private key .* is in the server's PKI "
                           "folder"):
            box.start_server(verbose=False)
    finally:
        misplaced.unlink()


def test_no_crl_or_an_older_one_copied_back_stops_the_start(box: Sandbox,
                                                          server: ServerProcess) -> None:
    # The session's server put the current CRL's number in force (recorded in PostgreSQL).
    current = box.pki.crl.read_bytes()
    away = box.pki.crl.with_name("ca.crl.away")
    box.pki.crl.rename(away)
    try:
        with pytest.raises(SandboxError, match=r"no CRL at .*ca\.crl.*lifecert pki init"):
            box.start_server(verbose=False)
    finally:
        away.rename(box.pki.crl)
    # A revocation signs the next number; a server starting on it records it.
    box.certificate("CRL-ROLLBACK", ROLE)
    assert lifecert_pki(box, "revoke", "--agency", "CRL-ROLLBACK").returncode == 0
    newer = box.pki.crl.read_bytes()
    started = box.start_server(verbose=False)
    started.stop()
    [(number,)] = box.query("SELECT crl_number FROM api_crl_numbers")
    # The older list copied back before a restart (it would un-revoke CRL-ROLLBACK).
    box.pki.crl.write_bytes(current)
    try:
        with pytest.raises(SandboxError, match=rf"has number {int(number) - 1}, older than "
                           rf"number {int(number)} put in force before"):
            box.start_server(verbose=False)
    finally:
        box.pki.crl.write_bytes(newer)
    box.start_server(verbose=False).stop()
