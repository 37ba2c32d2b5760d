"""The kafka-python internals lifecert relies on stay the ones it was written for
(lifecert/pipeline/kafka_python_internals.py), and nothing else reaches one."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import kafka
import pytest

from lifecert.library_internals import Internal
from lifecert.pipeline import kafka_python_internals
from lifecert.pipeline.kafka_python_internals import INTERNALS

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = ROOT / "lifecert" / "pipeline" / "kafka_python_internals.py"
# kafka-python's private names we know of (the scan below looks for these anywhere else)
PRIVATE = {"_sender", "_metadata", "_accumulator", "_client", "_coordinator", "_fetcher",
           "_subscription", "_closed"}


def test_the_installed_version_is_the_pinned_one() -> None:
    assert kafka.__version__ == kafka_python_internals.KAFKA_PYTHON_VERSION
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]["live"]
    pins = [d.split("#")[0].strip() for d in deps if d.startswith("kafka-python")]
    assert pins == [f"kafka-python=={kafka_python_internals.KAFKA_PYTHON_VERSION}"], deps


def test_every_internal_has_the_source_it_was_read_against() -> None:
    changes = kafka_python_internals.changed()
    assert not changes, (
        "the installed kafka-python source of these internals changed since lifecert was "
        "written against them; re-check each, then record the new hashes (python -m "
        "lifecert.pipeline.kafka_python_internals):\n" + "\n".join(
            f"- {e.name} ({', '.join(e.sources)})\n    re-check: {e.recheck}\n"
            f"    recorded {e.sha256}, installed {now}" for e, now in changes))


def test_a_changed_source_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check above can fail: an entry whose recorded hash differs is reported.
    entry = INTERNALS[0]
    stale = Internal(entry.name, entry.use, entry.sources, entry.why, entry.recheck, "0" * 64)
    monkeypatch.setattr(kafka_python_internals, "INTERNALS", (stale,))
    assert [(e.name, now) for e, now in kafka_python_internals.changed()] == [
        (entry.name, entry.sha256)]


def _private_uses(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append((node.lineno, ast.unparse(node)))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in PRIVATE):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _imports_kafka_python(tree: ast.Module) -> bool:
    return any(
        (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "kafka" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "kafka")
        for n in ast.walk(tree))


def test_no_private_name_of_kafka_python_is_used_elsewhere() -> None:
    scanned, offences = 0, []
    for folder in ("lifecert", "streams", "projections", "connectors", "dev/lifecert_dev"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ALLOWED or ".venv" in path.parts:
                continue
            tree = ast.parse(path.read_text("utf-8"), str(path))
            if not _imports_kafka_python(tree):
                continue
            scanned += 1
            offences += [f"{path.relative_to(ROOT)}:{line}: {text}"
                         for line, text in _private_uses(tree)]
    assert scanned >= 5
    assert not offences, (
        "kafka-python private names reached outside lifecert/pipeline/kafka_python_internals"
        ".py: list the internal there (why, what to re-check, its source hash):\n"
        + "\n".join(offences))


def test_the_scan_finds_a_private_use() -> None:
    tree = ast.parse("import kafka\ndef f(p):\n    getattr(p, '_sender').join()\n"
                     "    return p._accumulator\n")
    assert _imports_kafka_python(tree)
    assert sorted(line for line, _ in _private_uses(tree)) == [3, 4]
