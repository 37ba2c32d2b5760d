"""The domain imports only the standard library and the event vocabulary (issue 12), checked
through every first-party module it reaches, so that a new third-party dependency cannot slip
in unlisted (import-linter's forbidden contract names the libraries it knows)."""

from __future__ import annotations

import sys

from lifecert_dev import architecture


def reached_from(start: str) -> tuple[set[str], set[str]]:
    """(first-party modules reached from the modules under ``start``, other top-level names)."""
    files = dict(architecture.modules())
    todo = [name for name in files if name == start or name.startswith(start + ".")]
    seen: set[str] = set()
    outside: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in architecture.imported(name, files[name]):
            if target in files:
                todo.append(target)
            elif target.partition(".")[0] not in architecture.PACKAGES:
                outside.add(target.partition(".")[0])
    return seen, outside


def test_the_domain_reaches_only_the_standard_library_and_the_vocabulary() -> None:
    seen, outside = reached_from("lifecert.domain")
    foreign = sorted(outside - set(sys.stdlib_module_names) - {"__future__"})
    assert not foreign, f"lifecert.domain reaches third-party packages: {foreign}"
    beyond = sorted(m for m in seen if not m.startswith(("lifecert.domain", "lifecert.events")))
    assert not beyond, f"lifecert.domain reaches modules outside the vocabulary: {beyond}"


def test_the_check_sees_a_third_party_import() -> None:
    _seen, outside = reached_from("lifecert.events")  # the codec writes with fastavro
    assert "fastavro" in outside
