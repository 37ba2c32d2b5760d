"""The ASGI application of ``lifecert web serve`` (Starlette): routes, security headers,
cookies and CSRF. The status answer is lifecert/api/statusanswer.py's (the gRPC status
query's own code); the dashboard's figures are lifecert/web/dashboard.py's."""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from lifecert.api import db, lockouts
from lifecert.api import statusanswer as sa
from lifecert.api.secondfactor import subject_ref
from lifecert.web import dashboard, words
from lifecert.web.web_config import ROLE, WebConfig

HERE = Path(__file__).parent
SESSION_COOKIE = "lc_session"
PRE_COOKIE = "lc_pre"  # the login form's CSRF token (double submit), before any session
MAX_FORM_BYTES = 4096

# No script but the package's own files, no style but its style sheet, nothing framed.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
HTTP_OF = {sa.INVALID: 400, sa.NO_MATCH: 404, sa.LOCKED: 429, sa.BUDGET_SPENT: 429,
           sa.UNAVAILABLE: 503}

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class SecurityHeaders:
    """Adds :data:`HEADERS` to every HTTP response (static files too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


class Web:
    """The application's state: the pools, the audit writer, the templates."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.globals.update(status_words=words.STATUS, channel=words.channel,
                                      fen=dashboard.fen, local_time=dashboard.local_time)
        self.reader: db.AsyncReader | None = None
        self.api_db: db.Database | None = None
        self.read_db: db.Database | None = None
        self.audit: db.AuditWriter | None = None
        self.asker = sa.Asker(config.agency, config.rules, config.policy,
                              config.second_factor_key)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.reader = db.AsyncReader(self.config.dsn, size=4, prepare=[db.STATUS_PREPARE])
        await self.reader.open()
        self.api_db = db.Database(self.config.dsn, 4)
        self.read_db = db.Database(self.config.dsn, 2)
        self.audit = db.AuditWriter(self.config.dsn)
        try:
            yield
        finally:
            self.audit.close()
            self.read_db.close()
            self.api_db.close()
            self.reader.close()

    # ------------------------------------------------------------------ helpers

    def page(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code)

    def secure(self, request: Request) -> bool:
        return self.config.secure_cookies or request.url.scheme == "https"

    def audit_row(self, method: str, outcome: str, *, role: str | None, peer: str | None,
                  retiree_id: str | None = None, detail: str | None = None,
                  started: float | None = None) -> None:
        assert self.audit is not None
        self.audit.write(db.AuditRow(
            at=datetime.now(UTC), agency=self.config.agency, role=role, peer=peer,
            method=method, outcome=outcome, detail=detail,
            subject=subject_ref(self.config.second_factor_key, retiree_id) if retiree_id
            else None,
            duration_ms=(time.perf_counter() - started) * 1000 if started else None,
        ))

    # ------------------------------------------------------------------ the status

    async def status_of(self, request: Request, retiree_id: str, factor: str,
                        cycle: str = "") -> sa.StatusAnswer:
        """The shared status answer for the visitor at ``request``'s address; audited."""
        assert self.reader is not None
        started = time.perf_counter()
        rid: str | None = None
        try:
            rid, normalized = sa.parse(retiree_id, factor)
            address = lockouts.client_address(request.client.host if request.client
                                              else "127.0.0.1")
            found = await sa.answer(self.reader, self.asker, rid, normalized, address, cycle)
        except sa.StatusRefused as refused:
            self.audit_row("web.GetStatus", refused.kind, role=ROLE, peer=None,
                           retiree_id=rid, detail=refused.detail, started=started)
            raise
        self.audit_row("web.GetStatus", "OK", role=ROLE, peer=None, retiree_id=rid,
                       detail=found.status or "NO_STATUS", started=started)
        return found

    async def status_page(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page("status.html")
        form = await _form(request)
        retiree_id, factor = form.get("retiree_id", ""), form.get("second_factor", "")
        try:
            found = await self.status_of(request, retiree_id, factor)
        except sa.StatusRefused as refused:
            return self.page("status.html", HTTP_OF[refused.kind],
                             refusal=words.REFUSAL[refused.kind], retiree_id=retiree_id[:40])
        return self.page("status.html", answer=found)

    async def status_json(self, request: Request) -> Response:
        raw = await _body(request, MAX_FORM_BYTES)
        if raw is None:
            return _problem(413, sa.INVALID, f"the body is over {MAX_FORM_BYTES} bytes: send "
                            "one JSON object with retiree_id and second_factor")
        try:
            body = json.loads(raw)
        except ValueError:
            return _problem(400, sa.INVALID, "the body must be one JSON object with "
                            "retiree_id and second_factor")
        if not (isinstance(body, dict) and isinstance(body.get("retiree_id"), str)
                and isinstance(body.get("second_factor"), str)
                and isinstance(body.get("cycle", ""), str)):
            return _problem(400, sa.INVALID, "the body must be one JSON object with the "
                            "strings retiree_id and second_factor (and optionally cycle)")
        try:
            found = await self.status_of(request, body["retiree_id"], body["second_factor"],
                                         body.get("cycle", ""))
        except sa.StatusRefused as refused:
            return _problem(HTTP_OF[refused.kind], refused.kind, refused.message)
        return JSONResponse(status_json(found))

    async def healthz(self, _request: Request) -> Response:
        assert self.api_db is not None
        try:
            await self.api_db.run(_ping)
        except Exception as exc:
            return PlainTextResponse(f"database unavailable: {type(exc).__name__}\n", 503)
        return PlainTextResponse("ok\n")


def _ping(conn: db.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")


def _problem(code: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message}, status_code=code)


def status_json(found: sa.StatusAnswer) -> dict[str, Any]:
    """The status as the portal's JSON (``/api/v1/status``)."""
    zh, en = words.STATUS.get(found.status, words.STATUS[None])
    return {
        "retiree_id": found.retiree_id,
        "cycle": found.cycle,
        "status": found.status,
        "status_text": {"zh": zh, "en": en},
        "channel": found.channel,
        "completed_on": found.completed_on,
        "open_hold_month": found.hold_month,
        "next_step": {"code": found.step.code, "zh": found.step.zh, "en": found.step.en},
    }


async def _body(request: Request, limit: int) -> bytes | None:
    """The request's body, read no further than ``limit`` bytes (None past it): an
    unauthenticated client cannot make the server hold a large body."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body


async def _form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST, as text fields; refused past MAX_FORM_BYTES."""
    body = await _body(request, MAX_FORM_BYTES)
    if body is None:
        return {}
    from urllib.parse import parse_qsl

    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return {}


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def new_token() -> str:
    return secrets.token_urlsafe(24)


__all__ = ["Web", "status_json"]
