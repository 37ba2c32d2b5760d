"""docker/compose.yaml's lifecert services ask for nothing lifecert does not have.

No Docker engine runs here, so the file is read, not started: every lifecert service's
command line must be a real `lifecert` command (its ``--help`` answers) with options that
command takes, and every environment key must be one the code reads (a ``LIFECERT_*``
name the product code holds as a whole string: the constants it reads the environment
with). A misspelt key would otherwise be silently ignored in production.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML, of the dev extra

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
PRODUCT = ("lifecert", "streams", "projections", "connectors")
KEY = re.compile(r"^LIFECERT_[A-Z0-9_]+$")
IMAGE = "lifecert:local"
# The services the compose file must run (issue 17): workers, projections, the clock, the
# API, a connector, the web pages.
EXPECTED = {"worker": "worker", "projections": "projections run", "clock": "clock run",
            "api": "api serve", "connector": "connectors run", "web": "web serve"}


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _lifecert_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in _compose()["services"].items()
            if spec.get("image") == IMAGE}


@cache
def _keys_read() -> frozenset[str]:
    """Every ``LIFECERT_*`` name the product code holds as a whole string constant."""
    found = set()
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and KEY.match(node.value):
                    found.add(node.value)
    return frozenset(found)


@cache
def _help(words: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lifecert.cli", *words, "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def _command_words(argv: list[str]) -> tuple[str, ...]:
    """The leading words of a command line that name the (sub)command: up to the first
    option, and at most two (`connectors run NAME`: NAME is an argument)."""
    words: list[str] = []
    for word in argv:
        if word.startswith("-") or len(words) == 2:
            break
        words.append(word)
    return tuple(words)


def test_the_compose_file_runs_every_lifecert_service() -> None:
    services = _lifecert_services()
    commands = {" ".join(_command_words(s["command"])) for s in services.values()}
    missing = {role: cmd for role, cmd in EXPECTED.items() if cmd not in commands}
    assert not missing, f"docker/compose.yaml runs no service for {missing}"
    assert sum(1 for s in services.values() if s["command"][0] == "worker") >= 2


@pytest.mark.parametrize("service", sorted(_lifecert_services()))
def test_each_command_line_is_a_lifecert_command(service: str) -> None:
    argv = _lifecert_services()[service]["command"]
    assert isinstance(argv, list) and all(isinstance(w, str) for w in argv), argv
    words = _command_words(argv)
    shown = _help(words)
    assert shown.returncode == 0 and shown.stdout.startswith(
        f"usage: lifecert {' '.join(words)}"), (
        f"{service}: `lifecert {' '.join(words)}` is not a lifecert command:\n"
        f"{shown.stdout[-800:]}{shown.stderr[-800:]}")
    for option in (w.split("=")[0] for w in argv if w.startswith("--")):
        assert re.search(rf"(^|[\s\[,]){re.escape(option)}\b", shown.stdout), (
            f"{service}: `lifecert {' '.join(words)}` takes no option {option}")


@pytest.mark.parametrize("service", sorted(_lifecert_services()))
def test_each_environment_key_is_one_lifecert_reads(service: str) -> None:
    environment = _lifecert_services()[service].get("environment") or {}
    assert isinstance(environment, dict), f"{service}: write the environment as a mapping"
    unknown = sorted(set(environment) - _keys_read())
    assert not unknown, (
        f"{service}: lifecert reads no environment key {', '.join(unknown)} (the product "
        f"code's LIFECERT_* names: {', '.join(sorted(_keys_read()))})")


def test_no_secret_sits_in_a_dsn_or_on_a_command_line() -> None:
    # Passwords come from secret files (passfile=, a credentials JSON) or the operator's
    # .env through ${...}; a DSN with user:password@ would put one in `docker inspect`.
    for name, spec in _lifecert_services().items():
        for key, value in (spec.get("environment") or {}).items():
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), f"{name}: {key}"
        assert not any("password" in w.lower() for w in spec["command"]), name


def test_the_checks_can_fail() -> None:
    # The checks above refuse what they should: a command lifecert lacks, an option its
    # command lacks, and an environment key no code reads.
    assert _help(("workers",)).returncode != 0
    assert "--app-idd" not in _help(("worker",)).stdout
    assert _command_words(["connectors", "run", "pension-master", "--metrics-port", "1"]) \
        == ("connectors", "run")
    assert "LIFECERT_KAFKA_BOOTSTRAP" in _keys_read()
    assert "LIFECERT_KAFKA_BOOTSTRAPS" not in _keys_read()
