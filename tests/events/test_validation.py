"""The one value validator (lifecert.events.validation): the interchange's rules are the
codec's, and each rule's accept-as-is expression implies its reader's checks."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecert.events.catalogue import ALL_TYPES, INPUT_TYPES
from lifecert.events.codec import default_store
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.validation import FieldRule, catalogue_rules


def _signature(rule: FieldRule) -> tuple[Any, ...]:
    return (rule.name, rule.in_envelope, rule.has_default, rule.nullable, rule.recurs,
            rule.accept, rule.read.__name__)


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_the_interchange_rules_are_the_codecs(type_name: str) -> None:
    """catalogue_rules compiles the shipped .avsc without fastavro; it must give the rules
    the codec compiles from fastavro's parse of the same schema."""
    ours = catalogue_rules(type_name)
    codecs = default_store().by_type(type_name).rules
    assert [_signature(r) for r in ours] == [_signature(r) for r in codecs]
    for mine, theirs in zip(ours, codecs, strict=True):
        assert mine.accept_names.keys() == theirs.accept_names.keys()


def _accepts(rule: FieldRule, value: Any) -> bool:
    assert rule.accept is not None
    return bool(eval(rule.accept, dict(rule.accept_names), {"v": value}))


_RULES_WITH_ACCEPT = sorted(
    {(rule.name, rule.read.__name__): rule
     for name in INPUT_TYPES for rule in catalogue_rules(name) if rule.accept is not None
     }.values(),
    key=lambda rule: rule.name,
)

_VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=4),
    st.text(min_size=995, max_size=1005, alphabet="ab\u4e2d"),
    st.from_regex(r"[0-9A-Za-z][0-9A-Za-z._:-]{0,140}", fullmatch=True),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.floats(allow_nan=False),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@pytest.mark.parametrize("rule", _RULES_WITH_ACCEPT, ids=lambda rule: rule.name)
@settings(max_examples=100, deadline=None)
@given(value=_VALUES)
def test_accept_as_is_implies_the_reader_returns_the_value(rule: FieldRule, value: Any) -> None:
    """The generated parser skips ``read`` when ``accept`` holds: that is only sound if
    ``read`` would have returned the very value (and not refused it)."""
    if _accepts(rule, value):
        assert rule.read(value) is value


def test_text_the_expression_does_not_accept_is_still_read() -> None:
    rule = next(r for r in catalogue_rules("RetireeEnrolled") if r.name == "name")
    assert not _accepts(rule, "黄平红") or rule.read("黄平红") == "黄平红"
    assert rule.read("黄平红") == "黄平红"
    assert not _accepts(rule, "a\ud800b")
    with pytest.raises(TypeError, match="lone surrogate"):
        rule.read("a\ud800b")


def test_a_lone_surrogate_in_a_name_is_refused_by_the_parser() -> None:
    line = {"type": "DeathReportRetracted", "event_id": "e-1",
            "recorded_at": "2017-05-02T09:30:00+08:00", "source_agency": None,
            "retiree_id": "FS1", "source": "civil", "reason": "x\udc80y"}
    with pytest.raises(MalformedEvent) as caught:
        parse_event(line)
    assert caught.value.field == "reason"
    assert "surrogate" in caught.value.reason


def test_an_id_is_read_as_the_pattern_says_whether_or_not_it_recurs() -> None:
    base = {"type": "CertificationRecorded", "event_id": "e-2",
            "recorded_at": "2017-05-02T09:30:00+08:00", "source_agency": "FS-SIB",
            "certification_id": "C-1", "retiree_id": "FS1", "channel": "COUNTER",
            "agency_id": "FS-SIB", "performed_at": "2017-05-02T09:00:00+08:00"}
    for field in ("event_id", "source_agency", "certification_id", "retiree_id", "agency_id"):
        parse_event(dict(base))  # the good values, twice: the second from the memo
        with pytest.raises(MalformedEvent) as caught:
            parse_event({**base, field: "bad id"})
        assert caught.value.field == field
        assert "is not a valid" in caught.value.reason


def test_replay_reads_lines_without_loading_the_codec() -> None:
    """Reading the interchange needs only the rules: fastavro and msgspec stay unloaded
    (their import was a measurable part of a replay's CPU time)."""
    code = ("import sys, lifecert.replay; "
            "print(sorted(m for m in ('fastavro', 'msgspec', 'lifecert.events.codec') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
