"""The private internals of a library we rely on, guarded by a hash of their installed source.

A library promises nothing about its private methods and attributes: a new release can
change one without a word. Where lifecert must reach one, its module lists it as an
:class:`Internal` (why we rely on it, what to re-check, the SHA-256 of its installed
source) and a test compares the hashes with what is installed, naming each entry that
changed. ``streams/faust_internals.py`` (faust-streaming and aiokafka) and
``lifecert/pipeline/kafka_python_internals.py`` (kafka-python) hold the entries; this
module only reads installed sources and hashes them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Internal:
    """One internal we depend on. ``sources``: the installed definitions whose text the
    hash covers, as ``module:Qualname`` (a function, a class, a method or a module-level
    assignment); ``use``: patched (replaced by our copy), wrapped (ours calls it), called,
    read, written, mirrored (we do what it does) or relied (its behaviour is assumed)."""

    name: str
    use: str
    sources: tuple[str, ...]
    why: str
    recheck: str
    sha256: str


class NotListed(LookupError):
    """An internal used without an entry, or an entry whose source is not installed."""


def _definition(tree: ast.Module, qualname: str, where: str) -> list[ast.stmt]:
    """The statements defining ``qualname`` (a class, a function, a method, or a
    module-level name: every assignment to it) in a module's syntax tree."""
    *outer, last = qualname.split(".")
    body: list[ast.stmt] = tree.body
    for part in outer:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == part]
        if not classes:
            raise NotListed(f"{where}: no class {part} in the installed source")
        body = classes[-1].body
    found: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == last:
                found = [node]  # a later definition wins, as at import
        elif isinstance(node, ast.Assign | ast.AnnAssign) and not outer:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == last for t in targets):
                found.append(node)
    if not found:
        raise NotListed(f"{where}: no definition of {qualname} in the installed source")
    return found


def installed_source(source: str) -> str:
    """The installed text of ``module:Qualname``, decorators included, read from the
    module's source file (so that our own patches do not hide the library's text)."""
    module_name, _, qualname = source.partition(":")
    module = importlib.import_module(module_name)
    text = inspect.getsource(module)
    lines = text.splitlines(keepends=True)
    parts = []
    for node in _definition(ast.parse(text), qualname, source):
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        assert node.end_lineno is not None
        parts.append("".join(lines[first - 1:node.end_lineno]))
    return "".join(parts)


def source_hash(entry: Internal) -> str:
    """SHA-256 of the installed sources of ``entry``, each prefixed by its name."""
    digest = hashlib.sha256()
    for source in entry.sources:
        digest.update(f"{source}\n".encode())
        digest.update(installed_source(source).encode("utf-8"))
    return digest.hexdigest()


def current_hash(entry: Internal) -> str:
    """``entry``'s hash as installed now, or why it cannot be read."""
    try:
        return source_hash(entry)
    except (NotListed, ImportError, OSError) as exc:
        return f"unreadable: {exc}"


def changed(entries: Iterable[Internal]) -> list[tuple[Internal, str]]:
    """The entries whose installed source no longer has the recorded hash, each with the
    hash it has now (or the reason it cannot be read)."""
    return [(entry, now) for entry in entries if (now := current_hash(entry)) != entry.sha256]


def print_hashes(entries: Iterable[Internal]) -> int:
    """Print each entry's current hash (after an upgrade, once its re-check is done)."""
    for entry in entries:
        now = current_hash(entry)
        mark = "" if now == entry.sha256 else "   <- changed"
        print(f"{entry.name}: {now}{mark}")
    return 0
