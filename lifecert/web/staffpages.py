"""The staff pages: login and logout, the dashboard (and the panel it refreshes itself
with), a retiree's detail (every view audited in api_audit). Every POST carries the
session's CSRF token (the login form: a double-submit cookie); the session cookie is
HttpOnly, SameSite=Strict, and Secure behind TLS."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lifecert.api import lockouts
from lifecert.events import bounds
from lifecert.web import charts, dashboard, staff
from lifecert.web.app import PRE_COOKIE, SESSION_COOKIE, Web, _form, new_token, same

FORBIDDEN = "此页面需要登录 / Please sign in"


class StaffPages:
    def __init__(self, web: Web) -> None:
        self.web = web

    async def _session(self, request: Request) -> tuple[str, staff.Session] | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token or len(token) > 100:
            return None
        assert self.web.api_db is not None
        found = await self.web.api_db.run(lambda conn: staff.session(conn, token))
        return (token, found) if found else None

    def _to_login(self) -> Response:
        return RedirectResponse("/staff/login", status_code=303)

    def _cookie(self, request: Request, response: Response, name: str, value: str,
                max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/staff", httponly=True,
                            samesite="strict", secure=self.web.secure(request))

    # ------------------------------------------------------------------ login

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            pre = new_token()
            page: Response = self.web.page("login.html", csrf=pre)
            self._cookie(request, page, PRE_COOKIE, pre, 3600)
            return page
        form = await _form(request)
        if not same(form.get("csrf", ""), request.cookies.get(PRE_COOKIE, "")):
            return self.web.page("login.html", 403, csrf=request.cookies.get(PRE_COOKIE, ""),
                                 error="表单已过期，请重试 / The form expired; please try again")
        username, password = form.get("username", "")[:64], form.get("password", "")[:200]
        assert self.web.api_db is not None and self.web.reader is not None
        started = time.perf_counter()
        pre = request.cookies.get(PRE_COOKIE, "")
        who = self._guesser(request, username)
        wait = await staff.locked_for(self.web.reader, who)
        if wait > 0:
            self.web.audit_row("web.Login", "LOCKED", role="STAFF", peer=None, started=started)
            return self.web.page(
                "login.html", 429, csrf=pre,
                error=f"密码错误次数过多，请{lockouts.minutes(wait)}分钟后再试 / Too many wrong "
                f"passwords: try again in {lockouts.minutes(wait)} minutes")
        made = await self.web.api_db.run(lambda conn: staff.login(conn, username, password))
        self.web.audit_row("web.Login", "OK" if made else "REFUSED", role="STAFF",
                           peer=username if made else None, started=started)
        if made is None:
            alert_at = self.web.config.policy.public_budget
            await lockouts.record_failure(self.web.reader, who, self.web.config.policy,
                                          alert_at)
            return self.web.page("login.html", 401, csrf=pre,
                                 error="用户名或密码不正确 / Wrong username or password")
        await lockouts.clear(self.web.reader, who)
        token, _session = made
        response = RedirectResponse("/staff", status_code=303)
        self._cookie(request, response, SESSION_COOKIE, token, staff.SESSION_SECONDS)
        response.delete_cookie(PRE_COOKIE, path="/staff")
        return response

    def _guesser(self, request: Request, username: str) -> lockouts.Caller:
        """The lockout key of wrong passwords: the account (keyed) and the address it is
        tried from (keyed), under the staff pages' own agency name. The status query's
        tables and rules (lifecert/api/lockouts.py): 5 wrong passwords lock the account
        from that address; the address's budget refuses it whatever the accounts; the
        agency-wide count refuses nothing and raises the SecurityAlert."""
        address = lockouts.client_address(request.client.host if request.client
                                          else "127.0.0.1")
        return lockouts.caller(self.web.config.second_factor_key, f"staff\0{username}",
                               staff.LOGIN_AGENCY, address)

    async def logout(self, request: Request) -> Response:
        found = await self._session(request)
        if found is None:
            return self._to_login()
        token, session = found
        form = await _form(request)
        if not same(form.get("csrf", ""), session.csrf):
            return Response("CSRF token missing or wrong\n", 403)
        assert self.web.api_db is not None
        await self.web.api_db.run(lambda conn: staff.logout(conn, token))
        response = self._to_login()
        response.delete_cookie(SESSION_COOKIE, path="/staff")
        return response

    # ------------------------------------------------------------------ dashboard

    async def _board(self, session: staff.Session) -> dict[str, Any]:
        assert self.web.read_db is not None
        district = session.staff.district if session.staff.role == staff.DISTRICT else None
        cycle = self.web.config.cycle
        board = await self.web.read_db.run(lambda conn: dashboard.read(conn, cycle, district))
        assert self.web.api_db is not None
        board.dead_letters = await self.web.api_db.run(dashboard.api_dead_letters)
        return {"board": board, "svg": _charts(board), "session": session,
                "poll": self.web.config.poll_seconds}

    async def dashboard(self, request: Request) -> Response:
        found = await self._session(request)
        if found is None:
            return self._to_login()
        return self.web.page("dashboard.html", **await self._board(found[1]))

    async def panel(self, request: Request) -> Response:
        found = await self._session(request)
        if found is None:
            return Response(FORBIDDEN, 401)
        return self.web.page("panel.html", **await self._board(found[1]))

    # ------------------------------------------------------------------ one retiree

    async def retiree(self, request: Request) -> Response:
        found = await self._session(request)
        if found is None:
            return self._to_login()
        _token, session = found
        if request.method == "GET":
            return self.web.page("retiree.html", session=session)
        form = await _form(request)
        if not same(form.get("csrf", ""), session.csrf):
            return Response("CSRF token missing or wrong\n", 403)
        retiree_id = form.get("retiree_id", "").strip()
        problem = bounds.id_problem("retiree_id", retiree_id)
        if problem is not None:
            return self.web.page("retiree.html", 400, session=session, error=problem)
        assert self.web.read_db is not None
        started = time.perf_counter()
        detail = await self.web.read_db.run(lambda conn: dashboard.retiree(conn, retiree_id))
        district = session.staff.district
        if detail is not None and session.staff.role == staff.DISTRICT \
                and district not in detail.districts:
            detail = None  # another district's retiree reads like an unknown one
        self.web.audit_row("web.RetireeDetail", "OK" if detail else "NOT_FOUND",
                           role=f"STAFF-{session.staff.role}", peer=session.staff.username,
                           retiree_id=retiree_id, started=started)
        if detail is None:
            return self.web.page("retiree.html", 404, session=session,
                                 error="查无此人 / No retiree with this id that you may see")
        return self.web.page("retiree.html", session=session, detail=detail)


def _charts(board: dashboard.Dashboard) -> dict[str, str]:
    counters = board.counters
    if counters is None:
        return {}
    areas = sorted(counters.in_scope)
    progress = [(a, counters.certified[a], counters.in_scope[a]) for a in areas]
    channels = sorted(counters.channels.items(), key=lambda kv: (-kv[1], kv[0]))
    days = sorted(counters.completed_by_day.items())
    return {
        "districts": charts.progress_bars(progress, "认证进度（按区） / Progress by district"),
        "channels": charts.count_bars(channels, "认证渠道 / Certifications by channel"),
        "days": charts.day_columns([(d.isoformat(), n) for d, n in days],
                                   "每日认证 / Certifications per day"),
        "face": charts.progress_bars([("刷脸 / face", board.face, board.face + board.manual)],
                                     "刷脸占比 / Face share"),
    }
