"""`lifecert connectors list | check | run` as an operator uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sdk.process import InstanceSpec, write_config
from lifecert_dev.stack import StackStatus


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecert.cli", "connectors", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_list_shows_every_installed_connector() -> None:
    done = cli("list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["kind"]: row for row in json.loads(done.stdout)["connectors"]}
    assert rows["community-office"]["role"] == "source"
    assert rows["community-office"]["problem"] == ""


@pytest.mark.stack
def test_check_reports_a_missing_partner_and_never_prints_secrets(
    stack: StackStatus, tmp_path: Path
) -> None:
    config = tmp_path / "connectors.toml"
    write_config(config, bootstrap=stack.kafka_bootstrap, topic_prefix="cli-check-absent.",
                 instances={
                     "offices": InstanceSpec("community-office",
                                             {"log_file": str(tmp_path / "missing.csv")}),
                     "master": InstanceSpec("pension-master", {
                         "dsn": "postgresql://sync@127.0.0.1:1/pension",
                         "password": {"env": "MASTER_PW"}}),
                 })
    done = cli("check", "offices", "--config", str(config), env={"MASTER_PW": "hunter2"})
    assert done.returncode == 1
    assert "cli-check-absent.lifecert.events does not exist" in done.stdout
    assert f"the office log {tmp_path / 'missing.csv'} is not there" in done.stdout
    done = cli("check", "master", "--config", str(config), env={"MASTER_PW": "hunter2"})
    assert done.returncode == 1
    assert "hunter2" not in done.stdout + done.stderr
    assert "password=***" in done.stdout
    assert "Connection refused" in done.stdout


def test_an_unknown_setting_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "connectors.toml"
    config.write_text("[connectors.a]\nkind = \"community-office\"\nlog_file = \"/x\"\n"
                      "logfile = \"/y\"\n")
    done = cli("run", "a", "--config", str(config))
    assert done.returncode == 2
    assert "unknown setting(s) ['logfile'] (known: log_file)" in done.stderr


def test_run_refuses_an_unknown_instance_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "connectors.toml"
    config.write_text("[connectors.a]\nkind = \"community-office\"\nlog_file = \"/x\"\n")
    done = cli("run", "b", "--config", str(config))
    assert done.returncode == 2
    assert "no connector instance named 'b'" in done.stderr
