"""A small JSON-over-HTTPS client for the provincial system: one keep-alive connection,
an optional bearer token, and every transport failure turned into
:class:`~connectors.sdk.errors.PartnerUnavailable` (the runner retries those).

The server's certificate must chain to the one CA pinned by ``ca_file`` (the system's
trust store is not consulted) and name the URL's host. Plain ``http://`` is refused
unless ``allow_plain_http`` says otherwise (a test's stand-in, never a partner): the
bearer token and the retirees' records would cross the network in the clear."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from connectors.sdk.errors import PartnerUnavailable
from lifecert.events.interchange import loads


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    data: Any  # the decoded JSON body, None when the body is not JSON
    text: str  # the body as text (for messages; never holds the token)

    def message(self) -> str:
        """The partner's own explanation of a refusal, else the start of the body."""
        if isinstance(self.data, dict) and isinstance(self.data.get("message"), str):
            field = self.data.get("field")
            return f"{self.data['message']}" + (f" (field {field})" if field else "")
        return self.text[:200] or "(empty body)"


class ProvinceClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0, *,
                 ca_file: Path | str | None = None, allow_plain_http: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"expected an https://HOST:PORT URL, got {url!r}")
        if parts.scheme == "http" and not allow_plain_http:
            raise ValueError(f"{url!r} is plain HTTP: the token and the records would travel "
                             "in the clear; use the province's https:// URL with its CA in "
                             "ca_file")
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = tls_context(ca_file)
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None
        self._used = False  # the connection has served a request (it may have gone stale)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._used = None, False

    def get(self, path: str, query: dict[str, Any] | None = None) -> Response:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        return self.request("GET", path + (f"?{urlencode(query)}" if query else ""))

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Response:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return self.request("POST", path, data,
                            {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """One request; a keep-alive connection the server dropped while idle is retried
        once on a new connection (the partner's endpoints are idempotent)."""
        for attempt in (1, 2):
            reused = self._used
            try:
                return self._once(method, path, body, headers or {})
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                # a TLS server that drops the idle connection without close_notify shows
                # as SSLEOFError on the next request (seen with the SSF simulator's 60 s
                # keep-alive timeout)
                if attempt == 1 and reused and isinstance(
                        exc, http.client.RemoteDisconnected | ConnectionResetError
                        | BrokenPipeError | ssl.SSLEOFError):
                    continue
                raise PartnerUnavailable(
                    f"{method} {self.base}{path.split('?')[0]}: {_describe(exc)}") from None
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Response:
        if self._conn is None:
            if self._tls is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._tls)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
        self._conn.request(method, self._prefix + path, body=body,
                           headers={**self._headers, **headers})
        self._used = True
        answer = self._conn.getresponse()
        raw = answer.read()
        if answer.will_close:
            self.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            data = loads(text) if text else None
        except ValueError:  # not JSON, or nested too deeply
            data = None
        return Response(answer.status, data, text)


def tls_context(ca_file: Path | str | None) -> ssl.SSLContext:
    """A client context trusting only the CA certificate(s) in ``ca_file``, checking the
    host name, TLS 1.2 at least; ``ValueError`` saying what is wrong with the file."""
    if ca_file is None or str(ca_file) == "":
        raise ValueError("an https:// URL needs the CA that certifies the province's server "
                         "(setting ca_file: a PEM file)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except FileNotFoundError:
        raise ValueError(f"ca_file {str(ca_file)!r} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"ca_file {str(ca_file)!r} holds no PEM CA certificate: "
                         f"{exc}") from None
    return context


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the server's certificate was refused ({exc.verify_message}): it is not "
                "from the pinned CA (ca_file) or does not name this host")
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}); is this the province's https:// port?"
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror}); check the url setting"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the service running?)"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"
