"""The whole ASGI application of ``lifecert web serve``: the routes of the status page
(lifecert/web/app.py) and the staff pages (lifecert/web/staffpages.py), the package's
static files, security headers outermost; and :func:`serve` (uvicorn)."""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.errors
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lifecert.web.app import HERE, ASGIApp, SecurityHeaders, Web
from lifecert.web.staffpages import StaffPages
from lifecert.web.web_config import WebConfig


def build(config: WebConfig) -> ASGIApp:
    """The whole application, security headers outermost."""
    web = Web(config)
    pages = StaffPages(web)
    routes = [
        Route("/", web.status_page, methods=["GET", "POST"]),
        Route("/api/v1/status", web.status_json, methods=["POST"]),
        Route("/healthz", web.healthz),
        Route("/staff", pages.dashboard),
        Route("/staff/panel", pages.panel),
        Route("/staff/login", pages.login, methods=["GET", "POST"]),
        Route("/staff/logout", pages.logout, methods=["POST"]),
        Route("/staff/retiree", pages.retiree, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=web.lifespan,
                    exception_handlers={psycopg2.Error: _database_down})
    return SecurityHeaders(app)




log = logging.getLogger("lifecert.web")


async def _database_down(_request: Request, exc: Exception) -> Response:
    log.error("PostgreSQL: %s", type(exc).__name__)
    return PlainTextResponse("数据库暂不可用，请稍后再试 / The database is unavailable; try again "
                             "shortly\n", 503)


def preflight(config: WebConfig) -> str | None:
    """What keeps the pages from starting, in words (None: nothing): PostgreSQL out of
    reach, or its schema without the API's migrations (the staff tables among them)."""
    from projections.connection import connect

    try:
        conn = connect(config.dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        return f"cannot connect to PostgreSQL as the web's role: {str(exc).strip()}"
    try:
        for table in ("api_web_sessions", "retiree_status"):
            with conn, conn.cursor() as cur:
                cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
    except psycopg2.errors.UndefinedTable:
        return (f"the database has no table {table}: apply the migrations first, as "
                "the schema's owner: lifecert api migrate (with --dsn of the database "
                "served)")
    except psycopg2.Error as exc:
        return (f"PostgreSQL, as the web's role: {str(exc).strip()} (the grants come with "
                "the migrations: lifecert api migrate, as the schema's owner)")
    finally:
        conn.close()
    return None


def serve(config: WebConfig, host: str = "127.0.0.1", port: int = 8080,
          ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
          forwarded_allow_ips: str | None = None) -> None:
    """Serve until interrupted (uvicorn; HTTPS when given a certificate and key)."""
    import uvicorn

    uvicorn.run(build(config), host=host, port=port, ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile, proxy_headers=forwarded_allow_ips is not None,
                forwarded_allow_ips=forwarded_allow_ips, log_level="info",
                # no access log: it would keep every visitor's address (personal data);
                # the audit trail records each status query, keyed
                access_log=False, server_header=False, timeout_keep_alive=30)
