"""``lifecert web serve`` over HTTP (the real process, the stack's PostgreSQL): the status
JSON and page answer as the gRPC status query does, refuse a wrong second factor with the
one NOT_FOUND and lock the guesser out (the same lockout tables); the staff pages need a
login, a CSRF token on every POST, and audit every view of a retiree."""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from lifecert.web.app import CSP
from tests.web.conftest import CITY, DISTRICT, LOCKED, PROJECT_ROOT, RIGHT, WebProcess

pytestmark = pytest.mark.stack


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def request(web: WebProcess, path: str, *, data: bytes | None = None,
            json_body: Any = None, opener: urllib.request.OpenerDirector | None = None,
            ) -> tuple[int, dict[str, str], str]:
    headers = {}
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(web.url + path, data=data, headers=headers)
    opener = opener or urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def status(web: WebProcess, retiree_id: str, factor: str) -> tuple[int, dict[str, Any]]:
    code, _, body = request(web, "/api/v1/status",
                            json_body={"retiree_id": retiree_id, "second_factor": factor})
    return code, json.loads(body)


def test_healthz_and_security_headers(web: WebProcess) -> None:
    code, headers, body = request(web, "/healthz")
    assert (code, body) == (200, "ok\n")
    code, headers, body = request(web, "/")
    assert code == 200
    assert headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert '<html lang="zh-CN">' in body and 'lang="en"' in body
    assert "<script" not in body  # the status page has no script at all


def test_status_json_with_the_right_factor(web: WebProcess) -> None:
    code, body = status(web, "FS-1", RIGHT["FS-1"].lower())
    assert code == 200, body
    assert body["status"] == "CERTIFIED" and body["channel"] == "FACE_APP"
    assert body["completed_on"] == "2017-06-12"
    assert body["next_step"]["code"] == "NOTHING_TO_DO"
    assert body["status_text"] == {"zh": "已完成认证", "en": "Certified"}
    code, body = status(web, "SU-1", RIGHT["SU-1"])
    assert code == 200 and body["status"] == "SUSPENDED"
    assert body["open_hold_month"] == "2017-07"
    assert "2017-07" in body["next_step"]["zh"] and "paid back" in body["next_step"]["en"]


def test_wrong_factor_and_unknown_id_read_alike(web: WebProcess) -> None:
    wrong = status(web, "FS-2", "9999")
    unknown = status(web, "NOBODY-1", "9999")
    assert wrong[0] == unknown[0] == 404
    assert wrong[1] == unknown[1] == {
        "error": "NOT_FOUND", "message": "no retiree matches this retiree id and second factor"}


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"retiree_id": "FS-1"}', b'{"retiree_id": 1, "second_factor": "1"}',
    b'{"retiree_id": "FS-1", "second_factor": "12"}',
    b'{"retiree_id": "", "second_factor": "1234"}',
])
def test_status_json_refuses_bad_input(web: WebProcess, body: bytes) -> None:
    req = urllib.request.Request(web.url + "/api/v1/status", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=20)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"] == "INVALID"


def test_status_json_refuses_a_body_over_its_limit_before_reading_it_all(
        web: WebProcess) -> None:
    body = b'{"retiree_id": "FS-1", "second_factor": "1234", "pad": "' + b"x" * 20_000 + b'"}'
    req = urllib.request.Request(web.url + "/api/v1/status", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=20)
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["error"] == "INVALID"


def test_wrong_factors_lock_the_guesser_out(web: WebProcess) -> None:
    """Five wrong factors (the API's default) lock this retiree id for this address: the
    right factor is then refused too, in the tables the gRPC status query uses."""
    for _ in range(5):
        assert status(web, "LOCK-1", "0000")[0] == 404
    code, body = status(web, "LOCK-1", RIGHT["LOCK-1"])
    assert code == 429 and body["error"] == "LOCKED", body
    rows = web.box.query("SELECT agency, failures, client <> '' FROM api_second_factor_lockouts")
    assert ("lifecert-web", 5, True) in rows
    # another retiree from the same address is not locked
    assert status(web, "LOCK-2", RIGHT["LOCK-2"])[0] == 200


def test_status_page_needs_the_second_factor(web: WebProcess) -> None:
    form = urllib.parse.urlencode({"retiree_id": "FS-1", "second_factor": ""}).encode()
    code, _, body = request(web, "/", data=form)
    assert code == 400 and 'id="answer"' not in body and "FACE_APP" not in body
    form = urllib.parse.urlencode({"retiree_id": "FS-1", "second_factor": "9998"}).encode()
    code, _, body = request(web, "/", data=form)
    assert code == 404 and 'id="refusal"' in body and "已完成认证" not in body
    form = urllib.parse.urlencode({"retiree_id": "FS-1",
                                   "second_factor": RIGHT["FS-1"]}).encode()
    code, _, body = request(web, "/", data=form)
    assert code == 200 and 'id="answer"' in body and "已完成认证" in body
    assert "手机App刷脸认证" in body and "2017-06-12" in body


def _staff(web: WebProcess, who: tuple[str, str]) -> tuple[urllib.request.OpenerDirector,
                                                           str]:
    """An opener with a signed-in session, and the session's CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    code, _, page = request(web, "/staff/login", opener=opener)
    assert code == 200
    pre = re.search(r'name="csrf" value="([^"]+)"', page)
    assert pre is not None
    form = urllib.parse.urlencode({"csrf": pre.group(1), "username": who[0],
                                   "password": who[1]}).encode()
    code, headers, _ = request(web, "/staff/login", data=form, opener=opener)
    assert code == 303 and headers["location"] == "/staff"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/staff" in cookie
    code, _, page = request(web, "/staff", opener=opener)
    assert code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    return opener, token.group(1)


def test_staff_pages_need_a_login(web: WebProcess) -> None:
    for path in ("/staff", "/staff/retiree"):
        code, headers, _ = request(web, path)
        assert code == 303 and headers["location"] == "/staff/login"
    assert request(web, "/staff/panel")[0] == 401


def test_login_refuses_a_wrong_password_and_a_missing_csrf(web: WebProcess) -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    _, _, page = request(web, "/staff/login", opener=opener)
    pre = re.search(r'name="csrf" value="([^"]+)"', page)
    assert pre is not None
    form = {"csrf": pre.group(1), "username": CITY[0], "password": "wrong password!"}
    code, _, _ = request(web, "/staff/login", data=urllib.parse.urlencode(form).encode(),
                         opener=opener)
    assert code == 401
    form = {"csrf": "forged", "username": CITY[0], "password": CITY[1]}
    code, _, _ = request(web, "/staff/login", data=urllib.parse.urlencode(form).encode(),
                         opener=opener)
    assert code == 403


def test_wrong_passwords_lock_the_account_from_that_address(web: WebProcess) -> None:
    """Five wrong passwords (the status query's lockout rules and tables) lock the
    account from this address: the right password is then refused too; another account
    is not locked."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    _, _, page = request(web, "/staff/login", opener=opener)
    pre = re.search(r'name="csrf" value="([^"]+)"', page)
    assert pre is not None

    def login(password: str) -> tuple[int, str]:
        form = {"csrf": pre.group(1), "username": LOCKED[0], "password": password}
        code, _, body = request(web, "/staff/login", opener=opener,
                                data=urllib.parse.urlencode(form).encode())
        return code, body

    for _ in range(5):
        assert login("not the password")[0] == 401
    code, body = login(LOCKED[1])
    assert code == 429 and "Too many wrong passwords" in body
    rows = web.box.query("SELECT failures FROM api_second_factor_lockouts "
                         "WHERE agency = 'lifecert-web-staff'")
    assert (5,) in rows  # (another test's wrong password for another account: 1)
    _staff(web, CITY)  # another account from the same address signs in


def test_dashboard_of_the_city_and_of_a_district(web: WebProcess) -> None:
    opener, _ = _staff(web, CITY)
    code, _, page = request(web, "/staff", opener=opener)
    assert code == 200 and page.count("<svg") >= 4
    assert "Chancheng" in page and "Nanhai" in page and "Shunde" in page
    assert '<script src="/static/dashboard.js" defer></script>' in page
    # the connectors panel: lag, last seen, dead letters; the stale one flagged
    connectors = page[page.index('id="connectors"'):]
    connectors = connectors[:connectors.index("</section>")]
    rows = re.findall(r"<tr[^>]*>.*?</tr>", connectors)
    ledger = next(r for r in rows if "ledger" in r)
    master = next(r for r in rows if "master" in r)
    assert 'class="stale"' in ledger and "stale" not in master
    assert '<td class="num">1,234</td>' in master and '<td class="num">2</td>' in master
    assert any("worker" in r and '<td class="num">1</td>' in r for r in rows)
    assert "Pipeline dead-letter topic</span>: 3" in page
    opener, _ = _staff(web, DISTRICT)
    code, _, page = request(web, "/staff/panel", opener=opener)
    assert code == 200 and "Nanhai" in page and "Chancheng" not in page
    assert 'id="connectors"' not in page  # the city's


def test_retiree_detail_needs_csrf_and_is_audited(web: WebProcess) -> None:
    opener, csrf = _staff(web, CITY)
    form = urllib.parse.urlencode({"retiree_id": "SU-1", "csrf": "forged"}).encode()
    assert request(web, "/staff/retiree", data=form, opener=opener)[0] == 403
    form = urllib.parse.urlencode({"retiree_id": "SU-1", "csrf": csrf}).encode()
    code, _, page = request(web, "/staff/retiree", data=form, opener=opener)
    assert code == 200 and "2017-07" in page
    district, dcsrf = _staff(web, DISTRICT)  # SU-1 lives in Chancheng, not Nanhai
    form = urllib.parse.urlencode({"retiree_id": "SU-1", "csrf": dcsrf}).encode()
    assert request(web, "/staff/retiree", data=form, opener=district)[0] == 404
    audited: list[tuple[Any, ...]] = []
    for _ in range(50):
        audited = web.box.query(
            "SELECT peer, outcome FROM api_audit WHERE method = 'web.RetireeDetail' "
            "ORDER BY id")
        if (DISTRICT[0], "NOT_FOUND") in audited:
            break
        time.sleep(0.2)
    assert (CITY[0], "OK") in audited and (DISTRICT[0], "NOT_FOUND") in audited
    # the audit trail holds no retiree id in clear
    assert not web.box.query("SELECT 1 FROM api_audit WHERE subject LIKE 'SU-%%'")


def test_logout_needs_csrf(web: WebProcess) -> None:
    opener, csrf = _staff(web, CITY)
    assert request(web, "/staff/logout", data=b"csrf=forged", opener=opener)[0] == 403
    code, headers, _ = request(web, "/staff/logout", data=f"csrf={csrf}".encode(),
                               opener=opener)
    assert code == 303 and headers["location"] == "/staff/login"
    assert request(web, "/staff", opener=opener)[0] == 303  # the session is gone


def test_assets_ship_in_the_package_and_fetch_nothing_elsewhere() -> None:
    web_dir = PROJECT_ROOT / "lifecert" / "web"
    for path in [*web_dir.glob("templates/*.html"), *web_dir.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        for url in re.findall(r"(?:https?:)?//[\w.-]+", text):
            assert url == "http://www.w3.org" or url.startswith("//"), (path, url)


def test_user_add_refuses_a_short_password(web: WebProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "web", "user", "add", "x.y", "--role", "CITY",
         "--dsn", web.box.dsn], input="short\n", capture_output=True, text=True, timeout=60,
        cwd=PROJECT_ROOT)
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr


def test_serve_refuses_to_start_without_its_database(web: WebProcess) -> None:
    nowhere = "postgresql://lifecert_web@127.0.0.1:1/none?connect_timeout=2"
    result = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "web", "serve", "--listen", "127.0.0.1:0",
         "--dsn", nowhere, "--pki-dir", str(web.box.pki.root)],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL as the web's role" in result.stderr
