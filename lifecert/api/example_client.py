"""A partner's client of the lifecert API, as an example to copy (docs/partners.md). It uses
only the installed ``lifecert`` package (its generated gRPC code ships in the wheel) and
grpcio: ``pip install 'lifecert[api]'``, then:

    python -m lifecert.api.example_client --target localhost:50051 \\
        --ca ca.crt --cert MO-SSF.crt --key MO-SSF.key submit SBX-MO-001
    ... status SBX-MO-001 --second-factor 0001
    ... feed --from-start          # the whole feed again, from its beginning
    ... feed --ack                 # what is new since the last acknowledged cursor

When a call fails with UNAVAILABLE, the client makes one plain TLS handshake with the same
files and says what it found (an expired certificate, a certificate from another CA, a
server name the server's certificate does not carry), which gRPC reports only as
"UNAVAILABLE ... Socket closed" or "failed to connect to all addresses".
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography.exceptions import InvalidSignature

from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.api.protos import status_query_pb2 as sq
from lifecert.api.protos import status_query_pb2_grpc as sq_grpc


def channel(args: argparse.Namespace) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.ca.read_bytes(),
        private_key=args.key.read_bytes(),
        certificate_chain=args.cert.read_bytes(),
    )
    options = ([("grpc.ssl_target_name_override", args.server_name)]
               if args.server_name else [])
    return grpc.secure_channel(args.target, credentials, options=options)


def submit(args: argparse.Namespace, ch: grpc.Channel) -> None:
    performed = datetime.fromisoformat(args.performed_at)
    item = px.SubmitItem(certification=px.Certification(
        certification_id=args.certification_id or f"EX-{args.retiree_id}",
        retiree_id=args.retiree_id,
        channel=args.channel,  # the enum value's name
        performed_at=performed,
    ))
    response = px_grpc.PartnerExchangeStub(ch).SubmitBatch(
        px.SubmitBatchRequest(items=[item]), timeout=args.timeout)
    for result in response.results:
        print("submit:", px.ItemResult.Outcome.Name(result.outcome), result.event_id,
              result.reason_code, result.reason)


def status(args: argparse.Namespace, ch: grpc.Channel) -> None:
    answer = sq_grpc.StatusQueryStub(ch).GetStatus(
        sq.GetStatusRequest(retiree_id=args.retiree_id, second_factor=args.second_factor),
        timeout=args.timeout)
    print("status:", sq.CertificationStatus.Name(answer.status), answer.completed_on)
    print(answer.next_step.en)
    print(answer.next_step.zh)


def feed(args: argparse.Namespace, ch: grpc.Channel) -> None:
    stub = px_grpc.PartnerExchangeStub(ch)
    request = px.SubscribeRequest(from_start=args.from_start, types=args.type or [])
    for message in stub.Subscribe(request, timeout=args.timeout):
        if message.HasField("checkpoint"):
            print("checkpoint: everything so far delivered")
            if args.ack:
                stub.Acknowledge(px.AcknowledgeRequest(cursor=message.cursor),
                                 timeout=args.timeout)
            return
        event = message.event
        print("event:", event.type, event.retiree_id, event.interchange_json)


def diagnose(args: argparse.Namespace) -> str:
    """One TLS handshake with the client's files, as gRPC makes it: what failed, in words."""
    host, _, port = args.target.rpartition(":")
    context = ssl.create_default_context(cafile=str(args.ca))
    context.set_alpn_protocols(["h2"])
    try:
        context.load_cert_chain(str(args.cert), str(args.key))
    except (OSError, ssl.SSLError) as exc:
        return f"cannot use the certificate {args.cert} with the key {args.key}: {exc}"
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=args.server_name or host) as tls:
            # TLS 1.3: the server judges the client's certificate after the client's side
            # of the handshake; its verdict arrives as an alert on the first read.
            tls.settimeout(5)
            try:
                first = tls.recv(1)
            except TimeoutError:
                first = b"?"
            if not first:  # closed without a word: it refused the certificate
                return f"the server closed the connection: {_own_certificate(args)}"
            return "the TLS handshake succeeds: the failure is elsewhere (network, server)"
    except ssl.SSLCertVerificationError as exc:
        return f"the server's certificate is not accepted: {exc.verify_message} ({_hint(exc)})"
    except ssl.SSLError as exc:
        return f"the server refused your certificate: {exc.reason} ({_hint(exc)})"
    except OSError as exc:
        return f"no connection to {args.target}: {exc}"
    return "the TLS handshake succeeds: the failure is elsewhere"


def _own_certificate(args: argparse.Namespace) -> str:
    """Why the server would refuse the client's certificate, as far as the client's own
    files tell (grpc's server closes the connection without an alert)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(args.cert.read_bytes())
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        return (f"your certificate {args.cert} has expired (on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC): ask for a new one")
    if cert.not_valid_before_utc > now:
        return f"your certificate {args.cert} is not valid yet: check your clock"
    ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return (f"your certificate {args.cert} was issued by another CA, not by this "
                f"server's ({args.ca}): use the certificate issued for this server")
    return ("your certificate looks valid and is issued by the server's CA: it may be "
            "revoked (the server answers UNAUTHENTICATED then) or the server's revocation "
            "list is stale; ask the bureau")


def _hint(exc: ssl.SSLError) -> str:
    text = f"{getattr(exc, 'verify_message', '')} {exc.reason}".lower()
    if "hostname" in text or "ip address mismatch" in text:
        return "connect by a name the server's certificate carries, e.g. localhost"
    if "expired" in text:
        return "your certificate (or the server's) has expired: ask the bureau for a new one"
    if "unknown ca" in text or "unable to get local issuer" in text or "self-signed" in text:
        return ("the certificate was issued by another CA: use the CA certificate and the "
                "client certificate the bureau gave you for this server")
    if "revoked" in text:
        return "the certificate was revoked: ask the bureau for a new one"
    return "see docs/partners.md, Troubleshooting"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lifecert.api.example_client",
                                description=__doc__.split("\n\n")[0].removesuffix(", then:") + ".")
    p.add_argument("--target", default="localhost:50051", help="host:port of the API")
    p.add_argument("--ca", type=Path, required=True, help="the CA certificate (ca.crt)")
    p.add_argument("--cert", type=Path, required=True, help="your client certificate")
    p.add_argument("--key", type=Path, required=True, help="your private key")
    p.add_argument("--server-name", help="the name to expect in the server's certificate "
                   "(default: the host of --target)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = actions.add_parser("submit", help="report one certification")
    s.add_argument("retiree_id")
    s.add_argument("--channel", default="MACAU_SSF", metavar="CHANNEL",
                   choices=[n for n, _ in common_pb2.Channel.items() if n != "CHANNEL_UNSPECIFIED"],
                   help="the channel's name in common.proto (default MACAU_SSF)")
    s.add_argument("--certification-id", help="the idempotency key (default EX-RETIREE)")
    s.add_argument("--performed-at", required=True,
                   help="when the person was seen: ISO time with offset, e.g. "
                   "2017-05-02T09:30:00+08:00")
    s.set_defaults(func=submit)
    q = actions.add_parser("status", help="GetStatus of a retiree")
    q.add_argument("retiree_id")
    q.add_argument("--second-factor", required=True, help="last 4 characters of the ID number")
    q.set_defaults(func=status)
    f = actions.add_parser("feed", help="read the feed up to now (Subscribe)")
    f.add_argument("--from-start", action="store_true", help="from the feed's beginning")
    f.add_argument("--ack", action="store_true", help="acknowledge what was read")
    f.add_argument("--type", action="append", help="only this event type (repeatable)")
    f.set_defaults(func=feed)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with channel(args) as ch:
            args.func(args, ch)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            print(f"TLS check: {diagnose(args)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
