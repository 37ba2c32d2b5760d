"""A small JSON-over-HTTP client for the provincial system: one keep-alive connection,
an optional bearer token, and every transport failure turned into
:class:`~connectors.sdk.errors.PartnerUnavailable` (the runner retries those)."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
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
    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://HOST:PORT URL, got {url!r}")
        self.base = f"http://{parts.netloc}{parts.path.rstrip('/')}"
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
                if attempt == 1 and reused and isinstance(
                        exc, http.client.RemoteDisconnected | ConnectionResetError
                        | BrokenPipeError):
                    continue
                raise PartnerUnavailable(
                    f"{method} {self.base}{path.split('?')[0]}: {_describe(exc)}") from None
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Response:
        if self._conn is None:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve ({exc.strerror}); check the url setting"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the service running?)"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"
