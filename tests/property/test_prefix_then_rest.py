"""Replaying a prefix, snapshotting the state, and replaying the rest from the snapshot
decides exactly what replaying the whole log decides."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import load_policy
from lifecert.events.interchange import dumps, parse_line
from lifecert.events.time import end_of_day
from tests.helpers import examples
from tests.property.test_properties import event_logs

POLICY = load_policy("foshan-2017")
UNTIL = end_of_day(date(2017, 12, 31))


@cache
def campaign_lines(seed: int, tmp: str = "/tmp") -> tuple[str, ...]:
    out = Path(tmp) / f"lifecert-prefix-{seed}.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecert.cli",
            "generate",
            "--retirees",
            "150",
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return tuple(out.read_text(encoding="utf-8").splitlines())


def decide_all(campaign: Campaign, lines: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """Every output (as a line) and every rejection, in order."""
    decided: list[tuple[str, str | None]] = []
    for line in lines:
        outputs, rejection = campaign.decide(parse_line(line))
        decided.extend((dumps(o), None) for o in outputs)
        decided.append(("", rejection))
    return decided


def finish(campaign: Campaign) -> list[tuple[str, str | None]]:
    return [(dumps(o), None) for o in campaign.advance_to(UNTIL)]


@cache
def decided_whole(seed: int) -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    """What one replay of the whole campaign decides, and the statuses it ends with: the
    same for every cut of one seed, so replayed once per seed."""
    whole = Campaign(POLICY)
    expected = decide_all(whole, campaign_lines(seed)) + finish(whole)
    return expected, dict(whole.statuses())


@settings(max_examples=examples(25), deadline=None)
@given(seed=st.integers(min_value=0, max_value=4), cut=st.floats(min_value=0, max_value=1))
def test_prefix_snapshot_rest_equals_whole(seed: int, cut: float) -> None:
    lines = campaign_lines(seed)
    split = int(len(lines) * cut)
    expected, statuses = decided_whole(seed)

    first = Campaign(POLICY)
    decided = decide_all(first, lines[:split])
    snapshot = json.loads(json.dumps(first.snapshot()))
    second = Campaign.restore(POLICY, snapshot)
    decided += decide_all(second, lines[split:]) + finish(second)

    assert decided == expected
    assert dict(second.statuses()) == statuses


@settings(max_examples=examples(150), deadline=None)
@given(data=st.data())
def test_prefix_snapshot_rest_equals_whole_with_corrections(data: st.DataObject) -> None:
    """The same on small logs with rules 11-14's corrections: revoked certifications, the
    death memory and the holds that carry months survive a snapshot."""
    lines = tuple(data.draw(event_logs(corrections=True)))
    split = data.draw(st.integers(0, len(lines)))

    def decide_lines(campaign: Campaign, part: tuple[str, ...]) -> list[tuple[str, str | None]]:
        decided: list[tuple[str, str | None]] = []
        for line in part:
            event = parse_line(line)
            outputs, rejection = campaign.decide(event)
            decided.extend((dumps(o), None) for o in outputs)
            decided.append(("", rejection))
        return decided

    whole = Campaign(POLICY)
    expected = decide_lines(whole, lines) + finish(whole)
    first = Campaign(POLICY)
    decided = decide_lines(first, lines[:split])
    snapshot = json.loads(json.dumps(first.snapshot()))
    second = Campaign.restore(POLICY, snapshot)
    decided += decide_lines(second, lines[split:]) + finish(second)
    assert decided == expected
    assert dict(second.statuses()) == dict(whole.statuses())
