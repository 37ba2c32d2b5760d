"""docs/connectors.md's worked example, built from the page's text (the code blocks marked
``<!-- guide-example -->``, in order), passes the connector test kit: the guide cannot
drift into code that does not work (its off-by-one checkpoint did)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.sdk import SourceConnector
from lifecert_dev.stack import StackStatus

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "connectors.md"
UNDER_TEST = Path(__file__).parent / "kit_mutants" / "contract_under_mutation.py"
KIND = "community-office-guide"
BLOCK = re.compile(r"<!-- guide-example -->\n```python\n(.*?)```", re.S)


def guide_code() -> str:
    blocks = BLOCK.findall(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 3, f"{GUIDE}: {len(blocks)} guide-example blocks, expected 3"
    code = "\n".join(blocks)
    # The tree registers the real example as community-office: the guide's copy gets its
    # own kind, the one change made to the text.
    assert code.count('kind = "community-office"') == 1, "the guide's class sets its kind once"
    return code.replace('kind = "community-office"', f'kind = "{KIND}"')


def build(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "guide_example.py").write_text(guide_code(), encoding="utf-8")
    dist = where / "guide_example-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: guide-example\nVersion: 0\n",
                                   encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        f"[lifecert.connectors]\n{KIND} = guide_example:CommunityOfficeSource\n",
        encoding="utf-8")
    return where


def test_the_guide_example_is_a_complete_source_connector(tmp_path: Path) -> None:
    site = build(tmp_path)
    spec = importlib.util.spec_from_file_location("guide_example", site / "guide_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = module.CommunityOfficeSource
    assert issubclass(cls, SourceConnector) and cls.kind == KIND
    for hook in ("_configure", "_poll", "_to_events", "_lag"):
        assert hook in vars(cls), f"the guide's connector does not show {hook}"


@pytest.mark.stack
def test_the_guide_example_passes_the_kit(stack: StackStatus, tmp_path: Path) -> None:
    site = build(tmp_path / "site")
    env = dict(os.environ, LIFECERT_KIT_MUTANT=KIND, LIFECERT_KEEP_STACK="1",
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(UNDER_TEST)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\b1[0-9] passed", done.stdout), done.stdout[-2000:]
