"""The demo's web pages (lifecert_dev.web_demo.prepare): on a database with a campaign's
statuses, it makes a staff login and retirees to try, and the real server answers both."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from lifecert.dbroles import dsn_as
from lifecert_dev.api_sandbox import Sandbox
from lifecert_dev.stack import StackStatus
from lifecert_dev.web_demo import prepare
from lifecert_dev.web_harness import start_web

pytestmark = pytest.mark.stack


def test_prepare_gives_a_login_and_retirees_to_try(stack: StackStatus, tmp_path: Path) -> None:
    with Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap, tmp_path) as box:
        box.seed_statuses([
            {"retiree_id": "D-1", "status": "CERTIFIED", "residence": "FOSHAN",
             "district": "Nanhai", "completed_by": "COUNTER",
             "completed_at": "2017-05-02T09:30:00+08:00"},
            {"retiree_id": "D-2", "status": "SUSPENDED", "residence": "FOSHAN",
             "district": "Nanhai"},
        ], holds=[("D-2", "2017-07")])
        demo = prepare(box.db_name, "127.0.0.1:8080", owner_dsn=dsn_as(box.dsn, "owner"),
                       pki_dir=box.pki.root)
        assert [(rid, status) for rid, _, status in demo.retirees] == [
            ("D-1", "CERTIFIED"), ("D-2", "SUSPENDED")]
        text = demo.describe()
        assert "http://127.0.0.1:8080/staff" in text and demo.password in text
        assert f"--database {box.db_name}" in text
        server = start_web(dsn_as(box.dsn, "web"), box.pki.root,
                           tmp_path / "web.log")
        try:
            for rid, factor, status in demo.retirees:
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
            form = (f"csrf={csrf.group(1)}&username={demo.username}&"
                    f"password={urllib.parse.quote(demo.password)}").encode()
            with opener.open(server.url + "/staff/login", data=form, timeout=20) as response:
                assert response.url.endswith("/staff") and b"<svg" in response.read()
        finally:
            server.stop()
