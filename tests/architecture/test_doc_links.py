"""The README's and docs/' relative links lead to files of this repository: a reader of
the repository (or of its source distribution) can follow every one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\(([^)#\s]+)")


def broken_links(page: Path, root: Path) -> list[str]:
    """The relative link targets of ``page`` that are missing or outside ``root``."""
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        resolved = (page.parent / target).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(target)
    return broken


def test_every_relative_link_of_the_readme_and_docs_is_in_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = {str(p.relative_to(ROOT)): broken_links(p, ROOT) for p in pages}
    assert {page: links for page, links in found.items() if links} == {}


def test_a_link_out_of_the_repository_or_to_nothing_is_found(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "rules.md").write_text("rules\n")
    (tmp_path / "DESIGN.md").write_text("outside\n")
    page = root / "README.md"
    page.write_text("[a](docs/rules.md) [b](../DESIGN.md) [c](docs/gone.md) "
                    "[d](https://example.org/x.md) [e](#anchor)\n")
    assert broken_links(page, root.resolve()) == ["../DESIGN.md", "docs/gone.md"]
