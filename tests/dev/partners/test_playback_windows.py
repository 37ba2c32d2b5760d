"""Cutting a campaign log into windows the partner connectors can be fed concurrently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lifecert_dev.partners.playback import DIRECT, plan_windows, router

T0 = datetime(2017, 5, 1, tzinfo=UTC)
SOURCE_OF = router({
    "master": [("RetireeEnrolled", None), ("PensionAmountChanged", None)],
    "province": [("CertificationRecorded", "PROVINCIAL_XREGION")],
})
KINDS = [("RetireeEnrolled", None), ("PensionAmountChanged", None),
         ("CertificationRecorded", "PROVINCIAL_XREGION"), ("CertificationRecorded", "COUNTER")]


def event(n: int, retiree: str, kind: tuple[str, str | None], minutes: int) -> dict:
    e = {"type": kind[0], "retiree_id": retiree, "recorded_at": T0 + timedelta(minutes=minutes),
         "n": n}
    if kind[1]:
        e["channel"] = kind[1]
    return e


def test_router_matches_channel_then_type_else_direct() -> None:
    assert SOURCE_OF(event(0, "R", KINDS[0], 0)) == "master"
    assert SOURCE_OF(event(0, "R", KINDS[2], 0)) == "province"
    assert SOURCE_OF(event(0, "R", KINDS[3], 0)) == DIRECT


def test_same_retiree_from_two_sources_starts_a_new_window() -> None:
    log = [event(0, "A", KINDS[0], 0), event(1, "B", KINDS[0], 1),
           event(2, "B", KINDS[2], 2), event(3, "C", KINDS[2], 3)]
    windows = plan_windows(log, SOURCE_OF, [])
    assert [w.size for w in windows] == [2, 2]
    assert windows[1].by_source == {"province": [log[2], log[3]]}


def test_a_moment_closes_the_window_before_the_first_event_at_or_after_it() -> None:
    log = [event(n, f"R{n}", KINDS[3], n * 10) for n in range(5)]
    windows = plan_windows(log, SOURCE_OF, [T0 + timedelta(minutes=20)])
    assert [w.size for w in windows] == [2, 3]
    assert windows[1].starts_at == T0 + timedelta(minutes=20)


@given(st.lists(st.tuples(st.sampled_from("ABCD"), st.integers(0, 3), st.integers(0, 30)),
                max_size=60),
       st.lists(st.integers(0, 600), max_size=3))
def test_windows_keep_each_retirees_order_and_never_straddle_a_moment(
    steps: list[tuple[str, int, int]], moment_minutes: list[int]
) -> None:
    log, minutes = [], 0
    for n, (retiree, kind, gap) in enumerate(steps):
        minutes += gap
        log.append(event(n, retiree, KINDS[kind], minutes))
    moments = [T0 + timedelta(minutes=m) for m in moment_minutes]
    windows = plan_windows(log, SOURCE_OF, moments)
    replayed = [e for w in windows for source in w.by_source for e in w.by_source[source]]
    assert sorted(e["n"] for e in replayed) == list(range(len(log)))
    for retiree in "ABCD":
        assert [e["n"] for e in replayed if e["retiree_id"] == retiree] == \
            [e["n"] for e in log if e["retiree_id"] == retiree]
    for w in windows:
        times = [e["recorded_at"] for events in w.by_source.values() for e in events]
        for m in moments:
            assert not (min(times) < m <= max(times)), "a window straddles a moment"
        per_retiree: dict[str, set[str]] = {}
        for source, events in w.by_source.items():
            for e in events:
                per_retiree.setdefault(e["retiree_id"], set()).add(source)
        assert all(len(s) == 1 for s in per_retiree.values())


def test_router_tells_deaths_apart_by_their_source() -> None:
    source_of = router({
        "registers": [("DeathRecorded", "CREMATION_RECORD"), ("DeathRecorded", "HOSPITAL_REPORT")],
        "ssf": [("DeathRecorded", "MACAU_SSF"), ("CertificationRecorded", "MACAU_SSF")],
        "mailroom": [("CertificationDocumentsReceived", None)],
    })
    death = {"type": "DeathRecorded", "retiree_id": "R", "recorded_at": T0}
    assert source_of({**death, "source": "HOSPITAL_REPORT"}) == "registers"
    assert source_of({**death, "source": "MACAU_SSF"}) == "ssf"
    assert source_of({**death, "source": "FAMILY_REPORT"}) == DIRECT
    assert source_of({"type": "CertificationDocumentsReceived", "retiree_id": "R",
                      "recorded_at": T0}) == "mailroom"
