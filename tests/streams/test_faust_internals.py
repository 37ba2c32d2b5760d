"""The faust and aiokafka internals lifecert depends on stay the ones it was written for.

``streams/faust_internals.py`` lists every private method or attribute of faust-streaming
and aiokafka that lifecert patches, calls, reads, writes or copies, with a hash of its
installed source. These tests fail when the installed source of any of them differs (an
upgrade, a patched install), naming each entry, why lifecert relies on it and what to
re-check; and when code outside that module reaches a private name of an object from a
module that imports faust, aiokafka or mode.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import aiokafka
import faust
import pytest
from faust.tables.recovery import Recovery

from lifecert import library_internals
from lifecert.library_internals import Internal, NotListed
from streams import faust_fixes, faust_internals
from streams.faust_internals import INTERNALS

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = {"faust", "aiokafka", "mode"}
# Our code, and the one module allowed to touch the libraries' internals.
SCANNED = ("lifecert", "streams", "projections", "connectors", "dev/lifecert_dev", "tests")
ALLOWED = ROOT / "streams" / "faust_internals.py"


def _report(changes: list[tuple[Internal, str]]) -> str:
    return "\n".join(
        f"- {e.name} ({e.use}; {', '.join(e.sources)})\n"
        f"    why we rely on it: {e.why}\n"
        f"    re-check: {e.recheck}\n"
        f"    recorded {e.sha256}, installed {now}"
        for e, now in changes)


def test_the_installed_versions_are_the_pinned_ones() -> None:
    assert faust.__version__ == faust_internals.FAUST_VERSION
    assert aiokafka.__version__ == faust_internals.AIOKAFKA_VERSION
    live = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))[
        "project"]["optional-dependencies"]["live"]
    pins = {d.split("==")[0].split("[")[0]: d.split("==")[1].split()[0]
            for d in live if "==" in d}
    assert pins.get("faust-streaming") == faust_internals.FAUST_VERSION, live
    assert pins.get("aiokafka") == faust_internals.AIOKAFKA_VERSION, live


def test_every_internal_has_the_source_it_was_read_against() -> None:
    changes = faust_internals.changed()
    assert not changes, (
        "the installed faust/aiokafka source of these internals changed since lifecert was "
        "written against them; re-check each, adjust streams/ (and streams/faust_fixes.py), "
        "then record the new hashes (python -m streams.faust_internals):\n"
        + _report(changes))


def test_a_changed_source_is_reported_with_what_to_recheck(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The check above can fail: an entry whose recorded hash differs is reported, with
    # the hash it has now.
    entry = INTERNALS[0]
    stale = Internal(entry.name, entry.use, entry.sources, entry.why, entry.recheck, "0" * 64)
    monkeypatch.setattr(faust_internals, "INTERNALS", (stale, *INTERNALS[1:]))
    changes = faust_internals.changed()
    assert [(e.name, now) for e, now in changes] == [(entry.name, entry.sha256)]
    assert "re-check: diff faust's new body" in _report(changes)


def test_the_hash_reads_faust_source_not_our_patch() -> None:
    # faust_fixes replaces Recovery._resume_streams; the hash is of faust's text still.
    assert faust_fixes.apply()
    faust_own = faust_internals.original(Recovery, "_resume_streams")
    assert faust_own.__module__ == "faust.tables.recovery"
    assert vars(Recovery)["_resume_streams"] is not faust_own  # patched
    text = library_internals.installed_source("faust.tables.recovery:Recovery._resume_streams")
    assert text.lstrip().startswith("async def _resume_streams(self")
    assert "resume_partitions" in text  # faust's own tail, which the fix reorders


def test_a_source_that_is_gone_is_reported() -> None:
    gone = Internal("gone", "called", ("faust.tables.recovery:Recovery._no_such_method",),
                    "-", "-", "0" * 64)
    with pytest.raises(NotListed, match=r"no definition of Recovery\._no_such_method"):
        library_internals.source_hash(gone)


def test_replacing_an_unlisted_method_is_refused() -> None:
    with pytest.raises(NotListed, match=r"Recovery\._wait is not listed as patched"):
        faust_internals.replace(Recovery, "_wait", lambda *a: None)
    assert Recovery.__dict__["_wait"].__module__ == "faust.tables.recovery"


class _PrivateUses(ast.NodeVisitor):
    """Private names reached on anything but a method's own ``self``/``cls``, and private
    names imported from faust, aiokafka or mode."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._own: list[set[str]] = []  # names bound to our own instance, per method
        self._modules: set[str] = set()  # names bound by `import x` of other libraries

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] not in LIBRARIES:
                self._modules.add(alias.asname or alias.name.split(".")[0])

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr",
                                                                "hasattr") \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value).startswith("_") \
                and not str(node.args[1].value).startswith("__"):
            self.found.append((node.lineno, ast.unparse(node)))
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.args.args:
                self._own.append({item.args.args[0].arg})
                self.visit(item)
                self._own.pop()
            else:
                self.visit(item)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if (node.module or "").split(".")[0] in LIBRARIES:
            for alias in node.names:
                if alias.name.startswith("_"):
                    self.found.append((node.lineno, f"from {node.module} import {alias.name}"))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if name.startswith("_") and not name.startswith("__"):
            own = isinstance(node.value, ast.Name) and self._own and \
                node.value.id in self._own[-1]
            module = isinstance(node.value, ast.Name) and node.value.id in self._modules
            if not own and not module:  # (os._exit is the standard library's own)
                self.found.append((node.lineno, ast.unparse(node)))
        self.generic_visit(node)


def _imports_a_library(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                a.name.split(".")[0] in LIBRARIES for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            return True
    return False


# Private names of another library in a module that also imports faust (the scan cannot
# tell whose object a name is read from), as (path, text): each with the library, and where
# it is explained. None today (kafka-python's are in lifecert/pipeline/kafka_python_internals.py).
OTHER_LIBRARIES: set[tuple[str, str]] = set()


def test_no_private_name_of_faust_or_aiokafka_is_used_elsewhere() -> None:
    # Every module importing faust, aiokafka or mode reaches their objects' private names
    # only through streams/faust_internals.py (whose functions the entries cover).
    scanned = 0
    offences = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ALLOWED or ".venv" in path.parts or "v1" in path.parts:
                continue
            tree = ast.parse(path.read_text("utf-8"), str(path))
            if not _imports_a_library(tree):
                continue
            scanned += 1
            visitor = _PrivateUses()
            visitor.visit(tree)
            where = str(path.relative_to(ROOT))
            offences += [f"{where}:{line}: {text}" for line, text in visitor.found
                         if (where, text) not in OTHER_LIBRARIES]
    assert scanned >= 8  # streams/, the API, the benchmark, these tests...
    assert not offences, (
        "private names reached outside streams/faust_internals.py in modules that import "
        "faust, aiokafka or mode: list the internal there (why, what to re-check, its "
        "source hash) and use it through a function of that module:\n" + "\n".join(offences))


def test_the_scan_finds_a_private_use() -> None:
    # The scan above can fail: a private attribute on a faust object is found, as is a
    # private import; a method's own private attribute is not.
    source = (
        "from faust.streams import _current_event\n"
        "class Mine:\n"
        "    def f(self, consumer):\n"
        "        self._mine = consumer._committed_offset\n"
        "import os\n"
        "def g(app):\n"
        "    os._exit(getattr(app, '_fetcher'))\n"
        "    return app._fetcher\n")
    visitor = _PrivateUses()
    visitor.visit(ast.parse(source))
    assert [text for _, text in visitor.found] == [
        "from faust.streams import _current_event", "consumer._committed_offset",
        "getattr(app, '_fetcher')", "app._fetcher"]
