"""Client-side helpers: a mutual-TLS channel from an agency's key and certificate.

    from lifecert.api.client import secure_channel
    from lifecert.api.protos import status_query_pb2 as sq, status_query_pb2_grpc as sq_grpc

    with secure_channel("127.0.0.1:50051", ca="data/pki/ca.crt",
                        cert="data/pki-ca/clients/PORTAL.crt",
                        key="data/pki-ca/clients/PORTAL.key") as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        # The portal names the address of the visitor behind each status query.
        print(stub.GetStatus(sq.GetStatusRequest(retiree_id="FS...", second_factor="1234"),
                             metadata=[("lifecert-client-address", "203.0.113.7")]))

Any gRPC client in any language works the same way: the CA certificate as trusted root,
the agency's key and certificate as client identity.
"""

from __future__ import annotations

from pathlib import Path

import grpc


def client_credentials(
    ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )


def secure_channel(
    target: str, *, ca: str | Path, cert: str | Path | None = None,
    key: str | Path | None = None, server_name: str | None = None,
) -> grpc.Channel:
    """A blocking channel; ``server_name`` overrides the name checked against the
    server's certificate (e.g. "localhost" when connecting to an IP address it lacks)."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(target, client_credentials(ca, cert, key), options=options)


def aio_secure_channel(
    target: str, *, ca: str | Path, cert: str | Path | None = None,
    key: str | Path | None = None, server_name: str | None = None,
) -> grpc.aio.Channel:
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.aio.secure_channel(target, client_credentials(ca, cert, key), options=options)
