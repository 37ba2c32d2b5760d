"""Unit tests of the API's parts that need no server: PKI, the authorization matrix,
cursors, second factors, rate limits, the next-step texts, the generated code."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from lifecert.api import authz, lockouts, secondfactor
from lifecert.api.build_protos import is_current
from lifecert.api.build_protos import main as build_main
from lifecert.api.nextstep import next_step
from lifecert.api.partner import (
    CursorError,
    ItemError,
    conflict_reason,
    decode_cursor,
    encode_cursor,
    event_id_for,
    prepare,
)
from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.ratelimit import TokenBucket
from lifecert.pki import Identity, PkiError, PkiPaths, identity_of, init, issue

MACAU = authz.Retiree("R1", "MACAU", None, "URBAN_EMPLOYEE", "REGULAR")
FOSHAN = authz.Retiree("R2", "FOSHAN", None, "URBAN_EMPLOYEE", "REGULAR")
ABROAD = authz.Retiree("R3", "ABROAD", None, "URBAN_EMPLOYEE", "REGULAR")
GOV_A = authz.Retiree("R4", "FOSHAN", "UNIT-A", "GOV_INSTITUTION", "REGULAR")


# --------------------------------------------------------------------------- PKI


def test_pki_issues_certificates_naming_agency_and_role(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    written = init(paths, hosts=["localhost", "127.0.0.1"])
    assert paths.ca_cert in written and paths.server_cert in written
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) == 0o600
    issued = issue(paths, "MO-SSF", role="MACAU_SSF")
    assert stat.S_IMODE(issued.key.stat().st_mode) == 0o600
    assert identity_of(issued.cert.read_bytes()) == Identity("MO-SSF", "MACAU_SSF")
    assert issued.not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)


def test_pki_refuses_bad_input_and_keeps_existing(tmp_path: Path) -> None:
    paths = PkiPaths(tmp_path / "pki")
    with pytest.raises(PkiError, match="pki init"):
        issue(paths, "MO-SSF", role="MACAU_SSF")
    init(paths)
    ca_before = paths.ca_cert.read_bytes()
    init(paths)  # a second init keeps the CA (only the server certificate is renewed)
    assert paths.ca_cert.read_bytes() == ca_before
    with pytest.raises(PkiError, match="unknown role"):
        issue(paths, "MO-SSF", role="ROOT")
    with pytest.raises(PkiError, match="not valid"):
        issue(paths, "../etc", role="STAFF")
    issue(paths, "UNIT-A", role="EMPLOYER")
    with pytest.raises(PkiError, match="--force"):
        issue(paths, "UNIT-A", role="EMPLOYER")
    issue(paths, "UNIT-A", role="EMPLOYER", force=True)


# --------------------------------------------------------------------------- matrix


def test_every_role_of_the_matrix_is_consistent() -> None:
    for role, rules in authz.MATRIX.items():
        assert rules.rate > 0 and rules.burst >= 1, role
        if rules.face_channel:
            assert rules.face_channel in ("FACE_APP", "FACE_COUNTER")
        assert not ({"FACE_APP", "FACE_COUNTER"} & rules.channels), (
            f"{role}: face channels are recorded only by FaceVerification"
        )


@pytest.mark.parametrize(
    ("role", "agency", "kind", "channel", "retiree", "reason"),
    [
        ("MACAU_SSF", "MO-SSF", authz.CERTIFICATION, "MACAU_SSF", FOSHAN, "residing in MACAU"),
        ("MACAU_SSF", "MO-SSF", authz.CERTIFICATION, "COUNTER", MACAU, "channel COUNTER"),
        ("MACAU_SSF", "MO-SSF", authz.DOCUMENTS, None, MACAU, "paper forms"),
        ("CONSULATE", "CN-SF", authz.CERTIFICATION, "CONSULATE", MACAU, "residing in ABROAD"),
        ("EMPLOYER", "UNIT-B", authz.CERTIFICATION, "EMPLOYER_BATCH", GOV_A, "own unit"),
        ("EMPLOYER", "UNIT-A", authz.CERTIFICATION, "EMPLOYER_BATCH", FOSHAN, "own unit"),
        ("COUNTER", "FS-W1", authz.CERTIFICATION, "FACE_COUNTER", FOSHAN, "FACE_COUNTER"),
        ("COUNTER", "FS-W1", authz.DEATH, None, FOSHAN, "deaths"),
        ("APP", "FS-APP", authz.CERTIFICATION, "FACE_APP", FOSHAN, "FACE_APP"),
    ],
)
def test_matrix_refuses_with_a_reason(
    role: str, agency: str, kind: str, channel: str | None, retiree: authz.Retiree, reason: str
) -> None:
    with pytest.raises(authz.Refusal, match=reason):
        authz.check_item(role, agency, kind, channel, retiree)


@pytest.mark.parametrize(
    ("role", "agency", "retirees"),
    [
        ("MACAU_SSF", "MO-SSF", (FOSHAN, ABROAD, GOV_A)),
        ("CONSULATE", "CN-SF", (MACAU, FOSHAN)),
        ("EMPLOYER", "UNIT-B", (GOV_A, FOSHAN)),
    ],
)
def test_out_of_scope_refusals_tell_nothing_of_the_retiree(
    role: str, agency: str, retirees: tuple[authz.Retiree, ...]
) -> None:
    texts = set()
    for retiree in retirees:
        with pytest.raises(authz.Refusal) as refused:
            authz.check_item(role, agency, authz.DEATH, None, retiree)
        text = str(refused.value)
        texts.add(text)
        for word in (retiree.residence, retiree.managing_unit or "UNIT-A", "another unit",
                     "no unit", "resides"):
            if word not in role and word not in authz.rules(role).scope.describe(agency):
                assert word not in text
    # One text, whoever the retiree: the same as for a retiree not enrolled.
    assert texts == {authz.out_of_scope(role, agency, authz.rules(role).scope)}


@pytest.mark.parametrize(
    ("role", "agency", "kind", "channel", "retiree"),
    [
        ("MACAU_SSF", "MO-SSF", authz.CERTIFICATION, "MACAU_SSF", MACAU),
        ("MACAU_SSF", "MO-SSF", authz.DEATH, None, MACAU),
        ("CONSULATE", "CN-SF", authz.CERTIFICATION, "CONSULATE", ABROAD),
        ("EMPLOYER", "UNIT-A", authz.CERTIFICATION, "EMPLOYER_BATCH", GOV_A),
        ("COUNTER", "FS-W1", authz.CERTIFICATION, "COUNTER", MACAU),
        ("COUNTER", "FS-W1", authz.DOCUMENTS, None, ABROAD),
        ("STAFF", "FS-HQ", authz.DEATH, None, FOSHAN),
    ],
)
def test_matrix_allows_what_a_role_is_for(
    role: str, agency: str, kind: str, channel: str | None, retiree: authz.Retiree
) -> None:
    authz.check_item(role, agency, kind, channel, retiree)


def test_methods_by_role() -> None:
    with pytest.raises(authz.Refusal, match="may not call"):
        authz.check_method("APP", authz.SUBMIT)
    with pytest.raises(authz.Refusal, match="may not call"):
        authz.check_method("PORTAL", authz.SUBSCRIBE)
    with pytest.raises(authz.Refusal, match="may not call"):
        authz.check_method("COUNTER", authz.FACE_ENROLL)
    with pytest.raises(authz.Refusal, match="not a lifecert role"):
        authz.check_method("ADMIN", authz.STATUS)
    assert authz.check_method("STAFF", authz.FACE_ENROLL).face_enroll
    assert authz.check_method("APP", authz.FACE_VERIFY).face_channel == "FACE_APP"


# --------------------------------------------------------------------------- items


def _cert_item(**overrides: object) -> px.SubmitItem:
    fields: dict[str, object] = {
        "certification_id": "C-1", "retiree_id": "R1", "channel": common_pb2.MACAU_SSF,
        "performed_at": dt.datetime(2017, 5, 2, 1, 30, tzinfo=dt.UTC),
    }
    fields.update(overrides)
    return px.SubmitItem(certification=px.Certification(**fields))  # type: ignore[arg-type]


def test_items_become_events_with_deterministic_ids() -> None:
    now = dt.datetime(2017, 5, 3, tzinfo=dt.UTC)
    p = prepare(0, _cert_item(), "MO-SSF", now)
    assert p.event["agency_id"] == "MO-SSF" and p.event["source_agency"] == "MO-SSF"
    assert p.event["channel"] == "MACAU_SSF"
    assert p.event_id == event_id_for("MO-SSF", "CertificationRecorded", "C-1")
    later = prepare(5, _cert_item(), "MO-SSF", now + dt.timedelta(days=1))
    assert later.event_id == p.event_id and later.digest == p.digest
    other = prepare(0, _cert_item(retiree_id="R9"), "MO-SSF", now)
    assert other.event_id == p.event_id and other.digest != p.digest
    death = prepare(0, px.SubmitItem(death=px.DeathReport(retiree_id="R1",
                                                          date_of_death="2017-04-01")),
                    "MO-SSF", now)
    assert death.event["source"] == "MO-SSF" and death.key == "R1|2017-04-01"


def test_a_conflict_with_an_earlier_submission_names_the_key_and_fields_not_values() -> None:
    now = dt.datetime(2017, 5, 3, tzinfo=dt.UTC)
    first = prepare(0, _cert_item(), "MO-SSF", now)
    # What the accepted row keeps: one digest per field, none of them a value in clear.
    kept = dict(first.field_digests)
    assert set(kept) == {"certification_id", "retiree_id", "channel", "agency_id",
                         "performed_at"}
    assert not {"R1", "C-1", "MO-SSF"} & set(kept.values())
    again = prepare(0, _cert_item(retiree_id="R9",
                                  performed_at=dt.datetime(2017, 5, 2, 2, tzinfo=dt.UTC)),
                    "MO-SSF", now + dt.timedelta(days=1))
    recorded = dt.datetime(2017, 5, 3, 8, tzinfo=dt.UTC)
    reason = conflict_reason(again, None, recorded, kept)
    assert "idempotency key CertificationRecorded 'C-1'" in reason
    assert "performed_at, retiree_id differ" in reason, reason
    assert "R9" not in reason and "R1" not in reason
    # One field: named alone.
    one = prepare(0, _cert_item(retiree_id="R9"), "MO-SSF", now)
    assert "retiree_id differs;" in conflict_reason(one, None, recorded, kept)
    # A row accepted before the digests were kept: the key, and no field names guessed.
    old = conflict_reason(again, None, recorded, None)
    assert "'C-1'" in old and "differ" not in old


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (px.SubmitItem(), "empty"),
        (_cert_item(certification_id=""), "certification_id is missing"),
        (_cert_item(channel=common_pb2.CHANNEL_UNSPECIFIED), "channel is missing"),
        (_cert_item(performed_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC)), "future"),
        (px.SubmitItem(certification=px.Certification(
            certification_id="C", retiree_id="R", channel=common_pb2.COUNTER)),
         "performed_at is missing"),
        (px.SubmitItem(death=px.DeathReport(retiree_id="R", date_of_death="1.4.2017")),
         "YYYY-MM-DD"),
    ],
)
def test_malformed_items(item: px.SubmitItem, reason: str) -> None:
    with pytest.raises(ItemError, match=reason):
        prepare(0, item, "MO-SSF", dt.datetime(2017, 5, 3, tzinfo=dt.UTC))


# --------------------------------------------------------------------------- cursors


def test_cursor_round_trip_and_refusals() -> None:
    positions = {"t.status": {0: 5, 1: 0}, "t.pay": {3: 12}}
    cursor = encode_cursor(positions)
    assert decode_cursor(cursor, {"t.status", "t.pay"}) == positions
    with pytest.raises(CursorError):
        decode_cursor(cursor, {"t.status"})
    for bad in ("", "c1.!!", "c1.e30", "x" * 20, "c1." + "A" * 20_000):
        if bad == "c1.e30":  # {} is a valid (empty) cursor
            assert decode_cursor(bad, set()) == {}
            continue
        with pytest.raises(CursorError):
            decode_cursor(bad, {"t.status"})


# --------------------------------------------------------------------------- second factor


def test_second_factor_is_a_keyed_salted_hash() -> None:
    key = b"k" * 32
    [reg] = secondfactor.register_rows(key, [("R1", "44060419500315002x")])
    assert secondfactor.matches(key, reg.salt, reg.digest, "R1", "002X")
    assert not secondfactor.matches(key, reg.salt, reg.digest, "R1", "0021")
    assert not secondfactor.matches(key, reg.salt, reg.digest, "R2", "002X")
    assert not secondfactor.matches(b"o" * 32, reg.salt, reg.digest, "R1", "002X")
    [again] = secondfactor.register_rows(key, [("R1", "44060419500315002X")])
    assert again.salt != reg.salt and again.digest != reg.digest
    assert secondfactor.normalize_factor(" 002x ") == "002X"
    with pytest.raises(secondfactor.SecondFactorError) as err:
        secondfactor.normalize_factor("12345")
    assert "12345" not in str(err.value)
    with pytest.raises(secondfactor.SecondFactorError) as err2:
        list(secondfactor.register_rows(key, [("R7", "4406041950031500ZZ")]))
    assert "R7" in str(err2.value) and "4406041950031500ZZ" not in str(err2.value)


def test_client_address_keys_ipv4_and_an_ipv6_subscriber_network() -> None:
    assert lockouts.client_address(" 203.0.113.7 ") == "203.0.113.7"
    assert lockouts.client_address("::ffff:203.0.113.7") == "203.0.113.7"
    # One IPv6 subscriber holds a /64: every address in it is one client.
    assert lockouts.client_address("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert lockouts.client_address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    for bad in ("", "portal-user-7", "203.0.113.7, 10.0.0.1", "203.0.113.0/24"):
        with pytest.raises(lockouts.ClientAddressError, match="IPv4 or IPv6"):
            lockouts.client_address(bad)


def test_only_roles_acting_for_the_public_name_a_client_address() -> None:
    header = lockouts.CLIENT_ADDRESS_HEADER
    portal = authz.rules("PORTAL")
    assert lockouts.client_of([(header, "203.0.113.7")], "PORTAL", portal) == "203.0.113.7"
    # A public front must name one: else every visitor's guesses are the retiree's.
    for role in ("PORTAL", "APP"):
        with pytest.raises(lockouts.ClientAddressError, match=f"role {role} acts for the "
                           f"public.*{lockouts.CLIENT_ADDRESS_HEADER}"):
            lockouts.client_of([("other", "x")], role, authz.rules(role))
    assert lockouts.client_of([("other", "x")], "MACAU_SSF", authz.rules("MACAU_SSF")) is None
    with pytest.raises(lockouts.ClientAddressError, match="once"):
        lockouts.client_of([(header, "203.0.113.7"), (header, "203.0.113.8")], "PORTAL",
                           portal)
    # A partner could otherwise escape its own lockouts by changing the address it names.
    with pytest.raises(lockouts.ClientAddressError, match="role MACAU_SSF may not name"):
        lockouts.client_of([(header, "203.0.113.7")], "MACAU_SSF", authz.rules("MACAU_SSF"))


def test_lockout_keys_bind_the_caller_and_hold_no_id_or_address() -> None:
    key = b"k" * 32
    a = lockouts.caller(key, "MO-1", "MO-SSF")
    assert a == lockouts.caller(key, "MO-1", "MO-SSF")
    assert a != lockouts.caller(key, "MO-1", "HK-AG")  # another agency: another key
    assert a.client == ""
    p1 = lockouts.caller(key, "MO-1", "PORTAL-1", "203.0.113.7")
    p2 = lockouts.caller(key, "MO-1", "PORTAL-1", "203.0.113.8")
    assert p1 != p2 and p1.subject == p2.subject and p1.client
    assert "MO-1" not in repr(p1) and "203.0.113" not in repr(p1)
    policy = lockouts.Policy(5, 900, budget=100, public_budget=2000, window_seconds=3600)
    assert policy.alert_at(authz.rules("PORTAL")) == 2000
    assert policy.alert_at(authz.rules("MACAU_SSF")) == 100


def test_the_second_factor_key_is_made_only_by_the_explicit_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifecert.api.server_config import (
        SECOND_FACTOR_KEY_ENV,
        create_second_factor_key,
        second_factor_key,
    )
    from lifecert.keyfiles import MissingKeyError

    monkeypatch.delenv(SECOND_FACTOR_KEY_ENV, raising=False)
    path = tmp_path / "api" / "second-factor.key"
    # `second-factor set` run from another folder must not hash under a key of its own.
    with pytest.raises(MissingKeyError) as refused:
        second_factor_key(tmp_path / "api")
    message = str(refused.value)
    assert str(path) in message and SECOND_FACTOR_KEY_ENV in message
    assert "lifecert keys create" in message
    assert not path.exists()
    assert create_second_factor_key(tmp_path / "api") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = second_factor_key(tmp_path / "api")
    assert len(key) == 32
    assert create_second_factor_key(tmp_path / "api") is None  # never replaced
    assert second_factor_key(tmp_path / "api") == key


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=20, tokens=20, updated=0.0)
    assert bucket.take(15, now=0.0) == 0
    assert bucket.take(10, now=0.0) > 0  # 5 left
    assert bucket.take(10, now=0.5) == 0  # 10 after half a second
    assert bucket.take(100, now=10.0) == 0  # above the burst: served from a full bucket
    assert bucket.take(1, now=10.0) > 0


# --------------------------------------------------------------------------- texts, build


def test_next_steps_are_bilingual() -> None:
    step = next_step("NOT_CERTIFIED", "foshan-2017", "MACAU", False)
    assert step.code == "CERTIFY_BEFORE_DEADLINE"
    assert "2017年6月20日" in step.zh and "20 June 2017" in step.en
    assert "澳门" in step.zh and "Macau" in step.en
    unit = next_step("NOT_CERTIFIED", "foshan-2017", "FOSHAN", True)
    assert "单位" in unit.zh and "unit" in unit.en
    suspended = next_step("SUSPENDED", "foshan-2017", "FOSHAN", False, "2017-07")
    assert "2017-07" in suspended.zh and "paid back" in suspended.en
    for status in ("CERTIFIED", "EXEMPT", "DECEASED", "PENDING_DOCUMENTS", None):
        step = next_step(status, "foshan-2017", "FOSHAN", False)
        assert step.zh and step.en and step.code


def test_generated_code_is_current() -> None:
    assert is_current()
    assert build_main(["--check"]) == 0
    generated = Path(__file__).resolve().parents[2] / "lifecert" / "api" / "v1"
    assert (generated / "partner_exchange_pb2.pyi").exists()
    assert (generated / ".gitignore").read_text().strip().endswith("*")


# --------------------------------------------------------------------------- verdicts


def test_every_role_that_reports_hears_the_verdicts_and_only_staff_hears_all() -> None:
    for role, rules in authz.MATRIX.items():
        if rules.submits:
            assert "EventRejected" in rules.feed, role
            assert authz.check_method(role, authz.SUBSCRIBE) is rules
        assert rules.all_verdicts == (role == "STAFF"), role
    # A role that reports nothing still may not subscribe.
    with pytest.raises(authz.Refusal, match="may not call"):
        authz.check_method("APP", authz.SUBSCRIBE)
    # The counter hears its verdicts only, not the payment feed.
    assert authz.MATRIX["COUNTER"].feed == {"EventRejected"}


def test_a_certification_that_did_not_count_is_explained_in_both_languages() -> None:
    from lifecert.api.nextstep import EXPLAINED_REASONS, not_counted

    zh, en = not_counted("CHANNEL_NOT_ALLOWED", "CertificationRecorded", dt.date(2017, 5, 1),
                         True)
    assert en == ("Your certification of 1 May 2017 did not count: only your employing unit "
                  "may certify you.")
    assert zh == "您于2017年5月1日办理的认证未被计入：您只能由原单位统一认证。"
    zh, en = not_counted("OUTSIDE_WINDOW", "CertificationRecorded", dt.date(2017, 3, 10), False)
    assert "10 March 2017" in en and "before this year's certification period" in en
    assert "认证开始日期" in zh
    zh, en = not_counted("CERTIFICATION_NOT_COUNTING", "CertificationDocumentsReceived",
                         None, False)
    assert en.startswith("Your returned form did not count") and "寄回的认证表" in zh
    for reason in EXPLAINED_REASONS:  # each has its own words, no bare code
        zh, en = not_counted(reason, "CertificationRecorded", None, False)
        assert "reason code" not in en and "原因代码" not in zh
    # A reason without words still says what happened, with its code.
    assert "reason code DUPLICATE_CERTIFICATION" in not_counted(
        "DUPLICATE_CERTIFICATION", "CertificationRecorded", None, False)[1]


def test_subscribe_delivers_in_log_order_across_topics_and_fetches() -> None:
    from collections import namedtuple

    from lifecert.api.feedorder import LogOrder

    rec = namedtuple("rec", "topic partition offset timestamp")
    parts = [("status", 2), ("outputs", 2), ("status", 0)]
    rank = {"outputs": 0, "verdicts": 1, "status": 2}.__getitem__
    ends: dict[tuple[str, int], int | None] = {("status", 2): 12, ("outputs", 2): None,
                                              ("status", 0): 0}
    order = LogOrder(parts, rank=rank)
    # One retiree's statuses (status topic, written at 1000 and 1300) and its release
    # (outputs, 1001), the outputs partition not fetched yet (its end unknown): nothing
    # goes, the outputs partition may hold earlier records.
    order.add({("status", 2): [rec("status", 2, 10, 1000), rec("status", 2, 11, 1300)]})
    assert order.release(ends.get) == [] and order.waiting() == 2
    # A fetch brings an earlier output, not the release yet (the partition's end is 6):
    # that output goes, the statuses still wait.
    ends[("outputs", 2)] = 6
    order.add({("outputs", 2): [rec("outputs", 2, 4, 990)]})
    assert [(r.topic, r.offset) for r in order.release(ends.get)] == [("outputs", 4)]
    # The next fetch brings the release: it goes between the two statuses.
    order.add({("outputs", 2): [rec("outputs", 2, 5, 1001)]})
    assert [(r.topic, r.offset) for r in order.release(ends.get)] == [
        ("status", 10), ("outputs", 5), ("status", 11)]
    assert order.waiting() == 0
    # A partition at its end holds nothing back; one that delivered later already neither.
    order.add({("status", 2): [rec("status", 2, 12, 1400)]})
    ends[("status", 2)] = 13
    assert [r.offset for r in order.release(ends.get)] == [12]
    # Ties in log time follow the worker's write order (outputs, then statuses).
    tie = LogOrder(parts, rank=rank)
    tie.add({("status", 2): [rec("status", 2, 1, 500)],
             ("outputs", 2): [rec("outputs", 2, 1, 500)]})
    assert [r.topic for r in tie.release(lambda key: 2 if key[1] == 2 else 0)] == [
        "outputs", "status"]
    # Each partition's own order is kept, even with a log time out of step.
    skewed = LogOrder([("status", 0)])
    skewed.add({("status", 0): [rec("status", 0, 1, 500), rec("status", 0, 2, 400)]})
    assert [r.offset for r in skewed.release({("status", 0): 3}.get)] == [1, 2]
    # A partition holds at most hold_at_most records before it is paused.
    small = LogOrder(parts, hold_at_most=2)
    small.add({("status", 0): [rec("status", 0, i, 900 + i) for i in range(2)]})
    assert small.full(("status", 0)) and not small.full(("status", 2))


def test_the_server_warns_when_grpc_would_hide_refused_tls_handshakes() -> None:
    from lifecert.api.server import tls_refusal_logging

    for level in ("ERROR", "none"):
        warning = tls_refusal_logging({"GRPC_VERBOSITY": level})
        assert warning is not None and "refused TLS handshakes" in warning
    for environ in ({}, {"GRPC_VERBOSITY": "WARNING"}, {"GRPC_VERBOSITY": "info"}):
        assert tls_refusal_logging(environ) is None
