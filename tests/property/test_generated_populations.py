"""Production replay == reference fold on campaigns made by ``lifecert generate``.

Each campaign has 2000 retirees; the generator is run as a subprocess, and a failure to
run it fails the test (it is not skipped).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    ReplayImpl,
    first_differences,
    normalize,
    reasons,
)

SEEDS = [1, 2017, 424242]
RETIREES = 2000


def generate(seed: int, out: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "lifecert.cli",
        "generate",
        "--retirees",
        str(RETIREES),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, (
        f"`lifecert generate` failed (exit {done.returncode}): {' '.join(command)}\n"
        f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    assert out.is_file(), f"`lifecert generate` wrote no {out}"
    lines = [line for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, f"`lifecert generate` wrote an empty {out}"
    return lines


def _by_retiree(instructions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for instruction in instructions:
        out.setdefault(str(instruction["retiree_id"]), []).append(instruction)
    return out


def _retiree_diff(want: list[dict[str, Any]], got: list[dict[str, Any]], limit: int = 5) -> str:
    """The first retirees whose instructions differ, each with both lists."""
    expected, actual = _by_retiree(want), _by_retiree(got)
    lines = []
    for rid in sorted(set(expected) | set(actual)):
        if expected.get(rid, []) != actual.get(rid, []):
            lines.append(f"retiree {rid}:")
            lines.append(f"  reference:  {expected.get(rid, [])}")
            lines.append(f"  production: {actual.get(rid, [])}")
            if len(lines) >= 3 * limit:
                break
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_generated_campaign_production_equals_reference(
    tmp_path: Path,
    seed: int,
    reference_impl: ReplayImpl,
    production_impl: ReplayImpl,
) -> None:
    lines = generate(seed, tmp_path / f"campaign-{seed}.jsonl")
    expected = reference_impl(lines)
    actual = production_impl(lines)

    want, got = normalize(expected.instructions), normalize(actual.instructions)
    assert got == want, (
        f"seed {seed}: instructions differ "
        f"(reference {Counter(i['type'] for i in want)}, "
        f"production {Counter(i['type'] for i in got)})\n"
        f"first differences in order:\n{first_differences(want, got)}\n"
        f"by retiree:\n{_retiree_diff(want, got)}"
    )

    status_diff = {
        rid: (expected.statuses.get(rid), actual.statuses.get(rid))
        for rid in sorted(set(expected.statuses) | set(actual.statuses))
        if expected.statuses.get(rid) != actual.statuses.get(rid)
    }
    assert not status_diff, (
        f"seed {seed}: {len(status_diff)} statuses differ (reference, production): "
        f"{dict(list(status_diff.items())[:10])}"
    )

    want_r, got_r = reasons(expected), reasons(actual)
    assert got_r == want_r, (
        f"seed {seed}: rejections differ\n{first_differences(want_r, got_r)}\n"
        + "\n".join(
            f"line {n}: {lines[n - 1]}"
            for n in sorted({n for n, _ in set(want_r) ^ set(got_r)})[:5]
        )
    )

    # The campaign exercises the rules (a generator that made nothing would pass vacuously).
    kinds = Counter(i["type"] for i in want)
    assert kinds["PaymentHoldPlaced"] > 0 and kinds["PaymentHoldReleased"] > 0, kinds
    assert len(expected.statuses) >= RETIREES * 0.9, len(expected.statuses)
