"""The demo's web pages (lifecert_dev.web_demo.prepare, printed at the end of `lifecert
demo` by its web_pages): on a database with a campaign's statuses, it makes a staff login
and retirees to try, and the real server, started as `lifecert web serve` with no options
resolves it on the local stack, answers both."""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from pathlib import Path

import psycopg2.extensions
import pytest

from lifecert.commands import web as web_command
from lifecert.dbroles import dsn_as
from lifecert.endpoints import DSN_ENV
from lifecert_dev.api_sandbox import Sandbox
from lifecert_dev.commands.demo import web_pages
from lifecert_dev.stack import StackStatus
from lifecert_dev.web_demo import STAFF_USER, DemoWeb
from lifecert_dev.web_harness import start_web

pytestmark = pytest.mark.stack


def test_the_demo_ends_with_the_pages_and_serve_needs_no_options(
        stack: StackStatus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap, tmp_path) as box:
        box.seed_statuses([
            {"retiree_id": "D-1", "status": "CERTIFIED", "residence": "FOSHAN",
             "district": "Nanhai", "completed_by": "COUNTER",
             "completed_at": "2017-05-02T09:30:00+08:00"},
            {"retiree_id": "D-2", "status": "SUSPENDED", "residence": "FOSHAN",
             "district": "Nanhai"},
        ], holds=[("D-2", "2017-07")])
        text = web_pages(dsn_as(box.dsn, "owner"), box.db_name, box.pki.root)
        login = re.search(rf"/staff +login {STAFF_USER} / (\S+)", text)
        assert login is not None, text
        assert "status page (retirees): http://127.0.0.1:8080/\n" in text
        assert f"lifecert web serve --database {box.db_name}\n" in text
        tried = re.findall(r"try retiree (\S+) with the 4 characters (\S+) \((\S+)\)", text)
        assert [(rid, status) for rid, _, status in tried] == [
            ("D-1", "CERTIFIED"), ("D-2", "SUSPENDED")]
        # the demo's own database needs no option at all
        assert "start them with  lifecert web serve\n" in DemoWeb(
            "127.0.0.1:8080", web_command.DEMO_DATABASE, STAFF_USER, "pw").describe()
        # `lifecert web serve` with no options: the local stack's demo database (here the
        # sandbox's, in its place) as lifecert_web; without one, the stack's own database
        monkeypatch.delenv(DSN_ENV, raising=False)
        no_options = argparse.Namespace(dsn=None, database=None)
        monkeypatch.setattr(web_command, "DEMO_DATABASE", f"{box.db_name}_absent")
        fallback = psycopg2.extensions.parse_dsn(web_command._dsn(no_options))
        assert fallback["dbname"] == stack.config.pg_database
        monkeypatch.setattr(web_command, "DEMO_DATABASE", box.db_name)
        dsn = web_command._dsn(no_options)
        assert psycopg2.extensions.parse_dsn(dsn)["user"] == "lifecert_web"
        server = start_web(dsn, box.pki.root, tmp_path / "web.log")
        try:
            for rid, factor, status in tried:
                req = urllib.request.Request(
                    server.url + "/api/v1/status", headers={"Content-Type": "application/json"},
                    data=json.dumps({"retiree_id": rid, "second_factor": factor}).encode())
                with urllib.request.urlopen(req, timeout=20) as response:
                    assert json.loads(response.read())["status"] == status
            jar = urllib.request.HTTPCookieProcessor()
            opener = urllib.request.build_opener(jar)
            page = opener.open(server.url + "/staff/login", timeout=20).read().decode()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf is not None
            form = (f"csrf={csrf.group(1)}&username={STAFF_USER}&"
                    f"password={urllib.parse.quote(login.group(1))}").encode()
            with opener.open(server.url + "/staff/login", data=form, timeout=20) as response:
                assert response.url.endswith("/staff") and b"<svg" in response.read()
        finally:
            server.stop()
