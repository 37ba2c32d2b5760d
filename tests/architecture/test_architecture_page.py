"""docs/architecture.md's layer diagram is the one the code draws today."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecert_dev import architecture


@pytest.fixture(scope="module")
def drawn() -> str:
    """The diagram of the code as it is (every module read once for the module's tests)."""
    return architecture.diagram()


def test_the_layer_diagram_is_current(drawn: str) -> None:
    page = architecture.PAGE.read_text(encoding="utf-8")
    assert architecture.render(page, drawn) == page, (
        "docs/architecture.md's layer diagram is out of date: run "
        "`python -m lifecert_dev.architecture` and commit the page"
    )


def test_the_diagram_draws_every_layer_and_an_import_between_two(drawn: str) -> None:
    for layer in architecture.layers():
        for member in layer:
            assert f'["{member}"]' in drawn, member
    # the domain reads the event vocabulary: an import the page must show
    assert "lifecert_domain --> lifecert_events" in drawn


def test_every_module_is_in_a_layer() -> None:
    """A module outside the layers contract would escape its check for cycles."""
    members = [m for layer in architecture.layers() for m in layer]
    unlisted = sorted(
        name for name, _path in architecture.modules()
        if name not in ("lifecert",) and architecture.member_of(name, members) is None
    )
    assert not unlisted, f"modules in no layer of pyproject's layers contract: {unlisted}"


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text("from . import sibling\nfrom ..other import thing\nimport json\n")
    found = architecture.imported("pkg.sub.mod", module)
    assert {"pkg.sub.sibling", "pkg.other", "pkg.other.thing", "json"} <= found
