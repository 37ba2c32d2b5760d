"""The partners' JSON-over-HTTPS client (connectors/guangdong/client.py, also SSF's) tries a
request again, once, on a new connection when the server dropped the idle keep-alive one:
over TLS without close_notify too (SSLEOFError), as a real TLS server here does."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from connectors.guangdong.client import ProvinceClient
from connectors.sdk.errors import PartnerUnavailable
from lifecert_dev.testkit.tls import TestCA

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          b"Connection: keep-alive\r\n\r\n{}")


def _serve(listener: socket.socket, context: ssl.SSLContext, connections: int,
           served: list[int]) -> None:
    """Each connection answers one request, then is dropped without close_notify."""
    for _ in range(connections):
        raw, _ = listener.accept()
        tls = context.wrap_socket(raw, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        served.append(len(served) + 1)
        tls.sendall(ANSWER)
        tls.shutdown(socket.SHUT_RDWR)  # the TCP connection ends, no TLS close_notify
        tls.close()


@pytest.mark.parametrize("second_drop", [False, True])
def test_an_idle_connection_dropped_by_a_tls_server_is_tried_again_once(
        tmp_path: Path, second_drop: bool) -> None:
    ca = TestCA.create(tmp_path / "ca")
    server = ca.issue_server(tmp_path / "server", ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert_file, server.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    served: list[int] = []
    thread = threading.Thread(target=_serve, args=(listener, context, 1 if second_drop else 2,
                                                   served), daemon=True)
    thread.start()
    client = ProvinceClient(f"https://127.0.0.1:{port}", ca_file=ca.cert_file, timeout=10)
    try:
        assert client.get("/a").status == 200
        if second_drop:  # a server gone for good: the retry fails, and says so
            thread.join(10)
            listener.close()
            assert served == [1]
            with pytest.raises(PartnerUnavailable, match=r"POST https://127\.0\.0\.1"):
                client.post("/b", {"x": 1})
        else:
            assert client.post("/b", {"x": 1}).status == 200, "tried again on a new connection"
            assert served == [1, 2]
    finally:
        client.close()
        listener.close()
