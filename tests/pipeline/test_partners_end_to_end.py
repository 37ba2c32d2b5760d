"""A generated campaign played through the partner systems' simulators and connectors
(pension master, Guangdong feed, ministry and Hong Kong batch files, Macau's SSF, the
mailroom, the employers' files, the death registers) ends, in the payment
system's own ledger, exactly as `replay` decides for the same file (the connectors issue)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from connectors.payment_ledger import reconcile
from connectors.payment_ledger.connector import to_instruction
from connectors.payment_ledger.intake import connect as ledger_connect
from lifecert.events.catalogue import OUTPUT_TYPES, Event
from lifecert.events.interchange import parse_event
from lifecert.pipeline import broker_clients
from lifecert.pipeline.topics import EVENTS, PAYMENT_INSTRUCTIONS
from lifecert.replay import replay_file
from lifecert.summary import CampaignCounters, InstructionTotals
from lifecert_dev import live
from lifecert_dev.partners.playback import DIRECT
from lifecert_dev.partners.systems import (
    Partners,
    play,
    read_log,
    render_doors,
    wait_for_sink,
)
from projections.connection import connect
from projections.queries import campaign_counters
from tests.pipeline.live_helpers import (
    POLICY,
    UNTIL,
    WITH_CORRECTIONS,
    assert_live_equals_replay,
    campaign,
)

pytestmark = pytest.mark.stack


def replay_instructions(folder: Path) -> Counter:
    out: Counter = Counter()
    for line in (folder / "instructions.jsonl").read_text(encoding="utf-8").splitlines():
        event = parse_event(json.loads(line), allowed=OUTPUT_TYPES)
        if event["type"] in reconcile.KIND_OF:
            ins = to_instruction(event)
            out[(ins.event_id, *ins.content())] += 1
    return out


def test_campaign_through_the_partners_ends_in_the_ledger_as_replay_decides(
    run: live.LiveRun,
) -> None:
    through_the_partners(run, campaign(run.work_dir, 600, seed=4), seed=4)


def test_a_campaigns_face_certifications_come_through_the_face_verification_api(
    run: live.LiveRun,
) -> None:
    """A small campaign (14 face certifications: 11 FACE_APP, 3 FACE_COUNTER) played
    through the partners: each face certification is a challenge answered and a MATCH
    of the real API server (lifecert_dev.partners.faces), none is published directly, and
    the live result equals replay's (the certifications' times are the campaign's)."""
    events = campaign(run.work_dir, 25, seed=13)  # with two verdicts to compare
    log = read_log(events)
    logs = run.work_dir / "logs"
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
        Partners(run.bootstrap, run.topics, run.work_dir,
                 database=(run.admin_dsn, run.database, run.dsn)) as partners,
    ):
        stats = play(partners, log, POLICY, until=UNTIL, seed=13)
        assert (stats.by_source["face-app"], stats.by_source["face-counters"]) == (11, 3)
        assert stats.by_source.get(DIRECT, 0) == 0
        _faces_through_the_api(run, partners, log, stats.absorbed)
        assert live.wait_until_idle(run, 300, [worker, projections]), \
            "the worker and the projections did not catch up"
    assert_live_equals_replay(run, events, through_doors=True, absorbed=stats.absorbed)


def test_campaign_with_corrections_ends_in_the_ledger_and_the_summary_as_replay_decides(
    run: live.LiveRun,
) -> None:
    """Rules 11-14 live: revocations, clashing ids and retracted deaths through the broker,
    the worker, the projections and the payment ledger, equal to replay; the summary's
    corrections from PostgreSQL equal those counted from replay's states."""
    events = campaign(run.work_dir, 900, seed=9, profile=WITH_CORRECTIONS)
    expected = through_the_partners(run, events, seed=9)
    kinds = Counter(key[2] for key in expected.elements())
    for kind in ("REINSTATE", "CANCEL_RECOVERY", "SETTLE_ESTATE"):
        assert kinds[kind] > 0, kinds
    totals = InstructionTotals()
    replayed, _ = replay_file(events, POLICY, run.work_dir / "replay-again", until=UNTIL,
                              on_instruction=totals)
    from_replay = CampaignCounters.from_states(POLICY.name, replayed.retirees.values(), totals)
    conn = connect(run.dsn)
    try:
        from_postgres = campaign_counters(conn, POLICY.name)
    finally:
        conn.close()
    assert from_postgres == from_replay
    assert from_replay.revocations > 0 and from_replay.retractions > 0
    assert from_replay.instructions.revocation_holds > 0


def through_the_partners(run: live.LiveRun, events: Path, seed: int) -> Counter:
    """Play ``events`` through the partners with the worker and the projections running;
    check the ledger, the read models and replay agree. Returns replay's instructions for
    the ledger, as (event id, *content) counted."""
    log = read_log(events)
    logs = run.work_dir / "logs"
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
        # The face doors verify each face certification with the real face engine (about
        # 0.45 s of a core: 800 of them in this file's two campaigns, some 6 minutes of CI);
        # they have their own test above: here the face certifications are published
        # directly, as main did before them.
        Partners(run.bootstrap, run.topics, run.work_dir,
                 database=(run.admin_dsn, run.database, run.dsn),
                 face_doors=False) as partners,
    ):
        stats = play(partners, log, POLICY, until=UNTIL, seed=seed)
        assert stats.by_source["pension-master"] > 600
        assert stats.by_source["guangdong-xregion"] > 0
        assert stats.by_source["ministry-offsite"] > 0
        assert stats.by_source["hk-assist"] > 0
        for door in ("macau-ssf", "mailroom", "employer-files", "death-registers", "counters",
                     "home-visits", "consular-app", "family-deaths"):
            assert stats.by_source[door] > 0, f"nothing came through {door}"
        assert stats.by_source.get(DIRECT, 0) == sum(1 for e in log if _face(e)) > 0, \
            "only the face certifications (face doors off) are published directly"
        table = render_doors(stats)
        assert table.splitlines()[-1] == f"published directly: {stats.published_directly}"
        assert stats.published_directly == (stats.by_source.get(DIRECT, 0)
                                            + stats.assistance_results
                                            + stats.ssf_results)
        assert stats.published_directly < len(log) // 2, "most of the campaign came by a door"
        assert live.wait_until_idle(run, 300, [worker, projections]), \
            "the worker and the projections did not catch up"
        consumer = broker_clients.consumer(run.bootstrap)
        try:
            sent = sum(broker_clients.end_offsets(
                consumer, run.topics[PAYMENT_INSTRUCTIONS].name).values())
            dead = sum(broker_clients.end_offsets(
                consumer, run.topics["dead_letters"].name).values())
            published = sum(broker_clients.end_offsets(consumer, run.topics[EVENTS].name).values())
        finally:
            consumer.close()
        wait_for_sink(partners, "payment-ledger", sent, 120)
        assert stats.assistance_results == 0 and stats.gd_answered == stats.gd_cases > 0, \
            "the counters answer Guangdong's cases through the API"
        wait_for_sink(partners, "guangdong-results", stats.gd_answers, 120)
        assert stats.ssf_results == 0 and stats.ssf_answered > 0, \
            "the counters answer SSF through the API (form 3)"
        wait_for_sink(partners, "macau-ssf-results", stats.ssf_answered, 120)
        report = reconcile.reconcile(run.bootstrap, run.topics, partners.ledger_dsn)
        conn = ledger_connect(partners.ledger_dsn)
        try:
            ledger = reconcile.read_ledger(conn)
        finally:
            conn.close()

    assert dead == 0, "no partner record of a generated campaign is dead-lettered"
    assert published >= len(log) - stats.redeliveries - len(stats.absorbed), \
        "every event of the log is on the events topic, but for the log's redeliveries and " \
        "what the API records once or refuses"
    assert report.equal, reconcile.render(report, limit=10)
    assert_live_equals_replay(run, events, through_doors=True, absorbed=stats.absorbed)
    replayed_verdicts = [json.loads(line) for line in (run.work_dir / "replay" / "verdicts.jsonl")
                         .read_text(encoding="utf-8").splitlines()]
    judged = {v["judged_event_id"] for v in replayed_verdicts}
    assert all(i in judged for i in stats.absorbed), \
        "the API refuses (or records once) only certifications replay refuses too"
    expected = replay_instructions(run.work_dir / "replay")
    got = Counter((ins.event_id, *ins.content()) for ins, _, _ in ledger.instructions.values())
    assert sum(expected.values()) > 50, "a campaign with holds, releases, terminations"
    assert got == expected, (f"ledger differs from replay: missing {list(expected - got)[:3]}, "
                             f"extra {list(got - expected)[:3]}")
    return expected


def _faces_through_the_api(run: live.LiveRun, partners: Partners, log: list[Event],
                           absorbed: list[str]) -> None:
    """Every face certification of the campaign came through the API's FaceVerification:
    a MATCH decision and an accepted row of the API (its idempotency record) for each of
    its certification ids, by the channel's agency, and the certification on the events
    topic has the campaign's certification id (its times are compared with replay's by
    assert_live_equals_replay)."""
    from lifecert_dev.partners.faces import APP_AGENCY, FaceDoor

    faces = [e for e in log if e["type"] == "CertificationRecorded"
             and e["channel"] in ("FACE_APP", "FACE_COUNTER")
             and e["event_id"] not in absorbed]
    doors = [d for d in partners.api_doors.values() if isinstance(d, FaceDoor)]
    assert sum(d.stats.verified for d in doors) >= len({e["certification_id"] for e in faces})
    assert sum(d.stats.enrolled for d in doors) == len({e["retiree_id"] for e in faces}), \
        "staff enrolled each retiree's reference photo once"
    conn = connect(run.dsn_for("owner"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT agency, idempotency_key FROM api_accepted_events "
                        "WHERE type = 'CertificationRecorded'")
            accepted = set(cur.fetchall())
            cur.execute("SELECT count(*) FROM api_face_decisions WHERE operation = 'VERIFY' "
                        "AND decision = 'MATCH'")
            row = cur.fetchone()
            assert row is not None
            matches = row[0]
    finally:
        conn.close()
    wanted = {(APP_AGENCY if e["channel"] == "FACE_APP" else e["agency_id"],
               e["certification_id"]) for e in faces}
    assert wanted <= accepted, f"not accepted by the API: {sorted(wanted - accepted)[:3]}"
    assert matches >= len(wanted)
    consumer = broker_clients.consumer(run.bootstrap)
    try:
        from lifecert.events import codec

        on_topic = {(e["channel"], e["certification_id"]) for e in (
            codec.decode(r.value) for r in broker_clients.read_to_end(
                consumer, run.topics[EVENTS].name))
            if e["type"] == "CertificationRecorded" and e["source_agency"] in
            {a for a, _ in wanted}}
    finally:
        consumer.close()
    assert {(e["channel"], e["certification_id"]) for e in faces} <= on_topic


def _face(event: Event) -> bool:
    return (event["type"] == "CertificationRecorded"
            and event["channel"] in ("FACE_APP", "FACE_COUNTER"))
