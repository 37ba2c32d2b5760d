"""The partner sandbox end to end (docs/partners.md's walk-through), on the real broker and
PostgreSQL: ``lifecert sandbox``'s PartnerSandbox with its real API server, worker,
projections and scheduler as processes, driven by the installed example client
(``python -m lifecert.api.example_client``) as a partner runs it.

Also: the scheduler fires the deadline in every partition of the events topic with no
event arriving; the three TLS failures (expired certificate, foreign CA, wrong host name)
as gRPC reports them and as the example client tells them apart.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.events import codec
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN
from lifecert.pipeline.topics import EVENTS
from lifecert.pki import PkiPaths, init, issue
from lifecert_dev.commands.sandbox import describe
from lifecert_dev.sandbox import PartnerSandbox, SandboxInfo, free_port, sandbox_retirees
from lifecert_dev.stack import StackStatus

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def sandbox(stack: StackStatus, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[PartnerSandbox, SandboxInfo]]:
    name = f"t{uuid.uuid4().hex[:8]}"
    info = SandboxInfo(
        name=name, role="MACAU_SSF", agency="MO-SSF", date="2017-05-02",
        prefix=f"sbx-{name}.", database=f"lifecert_sbx_{name}",
        bootstrap=stack.kafka_bootstrap, admin_dsn=stack.postgres_dsn, port=free_port(),
    )
    box = PartnerSandbox(tmp_path_factory.mktemp("sandboxes") / name)
    box.create(info, sandbox_retirees("MACAU_SSF", "MO-SSF", 3))
    try:
        yield box, info
    finally:
        box.delete()


def client(box: PartnerSandbox, info: SandboxInfo, *args: str,
           target: str | None = None, ca: Path | None = None, cert: Path | None = None,
           key: Path | None = None) -> subprocess.CompletedProcess[str]:
    own_cert, own_key = box.client_files(info.agency)
    argv = [sys.executable, "-m", "lifecert.api.example_client",
            "--target", target or info.target, "--ca", str(ca or box.pki.ca_cert),
            "--cert", str(cert or own_cert), "--key", str(key or own_key), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")


def status_of(box: PartnerSandbox, info: SandboxInfo, rid: str, factor: str) -> str:
    return client(box, info, "status", rid, "--second-factor", factor).stdout


def eventually(check: object, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if result or time.monotonic() > deadline:
            return str(result)
        time.sleep(0.5)


def test_a_submission_is_judged_on_the_sandbox_date_and_the_feed_reads_again(
    sandbox: tuple[PartnerSandbox, SandboxInfo],
) -> None:
    box, info = sandbox
    # The campaign clock shows 2 May 2017, 09:00: a certification of 08:30 is on time.
    done = client(box, info, "submit", "SBX-MO-001", "--performed-at",
                  "2017-05-02T08:30:00+08:00")
    assert done.returncode == 0, done.stderr
    assert "submit: ACCEPTED" in done.stdout
    again = client(box, info, "submit", "SBX-MO-001", "--performed-at",
                   "2017-05-02T08:30:00+08:00")
    assert "submit: DUPLICATE" in again.stdout
    # With the wall clock (2026), 2017-05-02 would be far past the deadline; here the
    # status says certified on 2 May 2017, not "suspended".
    seen = eventually(lambda: "CERTIFIED 2017-05-02" in status_of(box, info, "SBX-MO-001",
                                                                  "0001"))
    assert seen == "True", status_of(box, info, "SBX-MO-001", "0001")
    # A time after the sandbox's "now" (plus 10 minutes) is refused as in the future.
    future = client(box, info, "submit", "SBX-MO-002", "--certification-id", "F1",
                    "--performed-at", "2017-05-03T09:00:00+08:00")
    assert "MALFORMED performed_at is in the future" in future.stdout

    # The role's channel list: a channel it may not report refuses the whole batch.
    refused = client(box, info, "submit", "SBX-MO-002", "--channel", "COUNTER",
                     "--performed-at", "2017-05-02T08:30:00+08:00")
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr and "channel COUNTER" in refused.stderr
    # A channel the rules do not count for this retiree: accepted, never certified. (Until
    # issue 18 item 1's rejection event lands, GetStatus is where the partner sees it.)
    gov = client(box, info, "submit", "SBX-MO-GOV", "--performed-at",
                 "2017-05-02T08:40:00+08:00")
    assert "submit: ACCEPTED" in gov.stdout
    time.sleep(3)
    assert "NOT_CERTIFIED" in status_of(box, info, "SBX-MO-GOV", "9999")

    first = client(box, info, "feed", "--ack")
    assert "event: RetireeStatus SBX-MO-001" in first.stdout, first.stderr
    after_ack = client(box, info, "feed")
    assert "event:" not in after_ack.stdout and "checkpoint" in after_ack.stdout
    from_start = client(box, info, "feed", "--from-start")
    assert from_start.stdout.count("event:") >= first.stdout.count("event:")
    assert "event: RetireeStatus SBX-MO-002" in from_start.stdout


def test_from_start_with_a_cursor_is_refused(
    sandbox: tuple[PartnerSandbox, SandboxInfo],
) -> None:
    box, info = sandbox
    cert, key = box.client_files(info.agency)
    credentials = grpc.ssl_channel_credentials(
        box.pki.ca_cert.read_bytes(), key.read_bytes(), cert.read_bytes())
    with grpc.secure_channel(info.target, credentials) as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            next(iter(stub.Subscribe(px.SubscribeRequest(from_start=True, cursor="x"),
                                     timeout=20)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "either a cursor or from_start" in (caught.value.details() or "")


# ----------------------------------------------------------------------------- TLS


def _expired_copy(box: PartnerSandbox, agency: str, out: Path) -> tuple[Path, Path]:
    """A certificate of the sandbox's CA for ``agency`` that expired yesterday."""
    ca_key = serialization.load_pem_private_key(
        (box.root / "pki-ca" / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(box.pki.ca_cert.read_bytes())
    good_cert, _ = box.client_files(agency)
    good = x509.load_pem_x509_certificate(good_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(good.subject)
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=30))
               .not_valid_after(now - dt.timedelta(days=1)))
    for extension in good.extensions:
        if extension.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    (out / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "expired.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return out / "expired.crt", out / "expired.key"


def _refusals(log: Path, since: int) -> list[str]:
    """The refused TLS handshakes the server logged after character ``since``."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in log.read_text(errors="replace")[since:].splitlines()
                 if "Handshake failed" in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_tls_failures_are_told_apart(
    sandbox: tuple[PartnerSandbox, SandboxInfo], tmp_path: Path,
) -> None:
    box, info = sandbox
    # A foreign CA: another bureau's PKI, its client certificate and its CA certificate.
    other = PkiPaths(tmp_path / "other" / "pki", tmp_path / "other" / "pki-ca")
    init(other, hosts=["localhost"])
    foreign = issue(other, "MO-SSF", role="MACAU_SSF")
    server_log = box.root / "logs" / "api.log"
    logged = len(server_log.read_text(errors="replace"))
    seen = client(box, info, "feed", cert=foreign.cert, key=foreign.key)
    assert seen.returncode == 1
    assert "error: UNAVAILABLE" in seen.stderr
    assert "Socket closed" in seen.stderr  # all grpc says
    assert "the server closed the connection" in seen.stderr
    assert "was issued by another CA" in seen.stderr, seen.stderr
    # The bureau's side: the server's log names the refusal and its reason (gRPC's core
    # logs it; lifecert/api/server.py, TLS_REFUSALS_HIDDEN).
    refusals = _refusals(server_log, logged)
    assert any("unable to get local issuer certificate" in r for r in refusals), refusals
    # The partner trusts that other CA too: now the server's certificate is refused.
    seen = client(box, info, "feed", ca=other.ca_cert, cert=foreign.cert, key=foreign.key)
    assert "error: UNAVAILABLE" in seen.stderr
    assert "the server's certificate is not accepted" in seen.stderr
    assert "issued by another CA" in seen.stderr, seen.stderr

    expired_cert, expired_key = _expired_copy(box, info.agency, tmp_path / "expired")
    logged = len(server_log.read_text(errors="replace"))
    seen = client(box, info, "feed", cert=expired_cert, key=expired_key)
    assert "error: UNAVAILABLE" in seen.stderr
    assert "has expired" in seen.stderr, seen.stderr
    refusals = _refusals(server_log, logged)
    assert any("certificate has expired" in r for r in refusals), refusals

    # The server's CA is the partner's trust anchor; a host name its certificate lacks.
    seen = client(box, info, "--server-name", "api.wrong.example", "feed")
    assert "error: UNAVAILABLE" in seen.stderr
    assert "api.wrong.example" in seen.stderr or "Peer name" in seen.stderr, seen.stderr
    assert "connect by a name the server's certificate carries" in seen.stderr, seen.stderr


# ----------------------------------------------------------------------------- clock


def test_the_scheduler_fires_the_deadline_in_every_partition(
    sandbox: tuple[PartnerSandbox, SandboxInfo],
) -> None:
    """Set the sandbox's clock past the deadline (reset --date): with no event arriving,
    the scheduler writes the deadline's ClockTick into every partition of the events
    topic and the worker suspends every retiree left uncertified, whatever partition."""
    box, info = sandbox
    box.reset("2017-06-25")
    consumer = broker_clients.consumer(info.bootstrap, component=ADMIN)
    topic = box.run(info).topics[EVENTS].name
    try:
        partitions = broker_clients.partitions_of(consumer, topic)
        deadline = time.monotonic() + 90
        fired: set[int] = set()
        while time.monotonic() < deadline and fired != set(partitions):
            for record in broker_clients.read_to_end(consumer, topic):
                event = codec.decode(record.value)
                if event["type"] == "ClockTick" and event["moment"] == "DEADLINE":
                    fired.add(record.partition)
            time.sleep(1)
    finally:
        consumer.close()
    assert fired == set(partitions) and len(partitions) > 1
    for rid, factor in (("SBX-MO-001", "0001"), ("SBX-MO-002", "0002"),
                        ("SBX-MO-003", "0003"), ("SBX-MO-GOV", "9999")):
        shown = eventually(lambda r=rid, f=factor: "SUSPENDED" in status_of(box, info, r, f))
        assert shown == "True", (rid, status_of(box, info, rid, factor))


def test_the_printed_try_line_runs_from_any_folder(
    sandbox: tuple[PartnerSandbox, SandboxInfo],
) -> None:
    """`sandbox create` ends with a `try:` line a partner's engineer copies: its
    interpreter must be lifecert's (a bare `python` outside the venv has no lifecert), and
    the client's help must read as a whole sentence (the walk-through found both)."""
    box, info = sandbox
    line = next(x for x in describe(box, info).splitlines() if x.strip().startswith("try:"))
    argv = shlex.split(line.strip().removeprefix("try:"))
    assert argv[1:3] == ["-m", "lifecert.api.example_client"], line
    helped = subprocess.run([*argv[:3], "--help"], capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert helped.returncode == 0 and "submit" in helped.stdout, helped.stderr
    about = " ".join(helped.stdout.split("positional arguments")[0].split())
    assert about.endswith("``pip install 'lifecert[api]'``."), about
