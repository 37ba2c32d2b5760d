"""Client text that tries to break the audit trail, the server's log or the retiree
directory: NUL and every other control character, backslash sequences COPY gives a
meaning to (``\\.``, ``\\N``), forged log lines with ANSI escapes, lone surrogates, very
long strings.

The RPC test pushes them through every string field of every request of every service
(found from the protobuf descriptors, so a field added later is covered too) against a
real server process of its own sandbox, then checks that every call left its audit row,
that later rows keep coming, and that no line of the server's log was forged. The audit
writer is also driven directly against PostgreSQL: a row the database refuses is set
aside with its error while the others are written, and an outage is retried, not set
aside. The directory test publishes hostile records on the real broker.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg2
import pytest
from google.protobuf import descriptor as pbd
from google.protobuf import message as pbm
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api import authz, db
from lifecert.api.escape import EscapingFormatter, escaped
from lifecert.api.migrate import migrate
from lifecert.api.protos import face_verification_pb2, partner_exchange_pb2, status_query_pb2
from lifecert.api.secondfactor import factor_of_id_number
from lifecert.databases import create_database, drop_database
from lifecert.events import codec
from lifecert.events.interchange import parse_line
from lifecert.pipeline import broker_clients
from lifecert.pipeline.topics import EVENTS
from lifecert_dev.api_sandbox import Sandbox, ServerProcess
from lifecert_dev.stack import StackStatus
from tests.api.api_world import ID_NUMBERS, RETIREES
from tests.helpers import enroll

CONTROLS = "".join(chr(c) for c in range(1, 32)) + "\x7f\x80\x9b\x9f"
FORGED = "lifecert api: FORGED"
HOSTILE = [
    "\x00",
    "a\x00b" + CONTROLS,
    "\\.",
    "\\N",
    "x\tz\\\nb\r\n\\.\n\\N\t\\x00",
    f"ok\n{FORGED} by a client \x1b[31mred\x1b[0m \u202egnp.exe\u2028\u2029\ufeff",
    "名字\x00\U0001f600\\",
    "A" * 100_000,
]
# Bytes a conforming client cannot send in a string field (invalid UTF-8: an encoded
# lone surrogate, a stray byte); put in place of a placeholder of the same length.
PLACEHOLDER = b"QQQ"
RAW = [b"\xed\xa0\x80", b"\xff\x00\xfe"]


# --------------------------------------------------------------------- escaping


@pytest.mark.parametrize("text", [*HOSTILE, "\ud800", "a\udfffb", "\\x00"])
def test_escaped_text_is_printable_one_line_and_capped(text: str) -> None:
    out = escaped(text, limit=200)
    assert out.isprintable()  # no control character, line break or surrogate left
    assert len(out) <= 200 + len("...[100000 more characters]")
    assert out.encode("utf-8")  # storable: no lone surrogate
    if len(text) < 200:  # uncut: exactly as repr shows it, quotes aside
        assert out == repr(text)[1:-1].replace("\\'", "'").replace('\\"', '"')


def test_escaping_cannot_be_forged_and_leaves_printable_text_alone() -> None:
    assert escaped("\x00") == "\\x00"
    assert escaped("\\x00") == "\\\\x00"  # the client's backslash is doubled
    assert escaped("\x00") != escaped("\\x00")
    assert escaped("陈大文 Chan Tai-man, 42") == "陈大文 Chan Tai-man, 42"
    assert escaped("\ud800") == "\\ud800"
    assert escaped("ab" * 10, limit=5) == "ababa...[15 more characters]"
    assert escaped("\x00" * 10, limit=9) == "\\x00\\x00...[8 more characters]"


def test_escaping_formatter_keeps_a_message_on_one_line() -> None:
    formatter = EscapingFormatter("lifecert api: %(message)s")
    record = logging.LogRecord("lifecert.api", logging.INFO, __file__, 1,
                               "%s refused: %s", ("AG", f"x\n{FORGED}\x1b[2J"), None)
    line = formatter.format(record)
    assert "\n" not in line and "\x1b" not in line
    assert line == "lifecert api: AG refused: x\\nlifecert api: FORGED\\x1b[2J"
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("lifecert.api", logging.ERROR, __file__, 1, "failed",
                                   (), sys.exc_info())
    assert "Traceback" in formatter.format(record).splitlines()[1]  # ours stay readable


# --------------------------------------------------------------------- the audit writer


@pytest.fixture
def scratch(stack: StackStatus) -> Iterator[str]:
    """A database of its own with the API's tables (some tests take it down)."""
    name = f"lifecert_audit_{uuid.uuid4().hex[:10]}"
    dsn = create_database(stack.postgres_dsn, name)
    conn = psycopg2.connect(dsn)
    try:
        migrate(conn)
    finally:
        conn.close()
    yield dsn
    drop_database(stack.postgres_dsn, name)


def _query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def _row(text: str, n: int, **fields: Any) -> db.AuditRow:
    values: dict[str, Any] = {
        "at": datetime.now(UTC), "agency": text, "role": text, "peer": text, "method": text,
        "outcome": text, "detail": text, "subject": f"s{n:03d}", "duration_ms": 1.0,
    }
    values.update(fields)
    return db.AuditRow(**values)


def _wait(condition: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.stack
def test_audit_writer_stores_hostile_text_escaped_and_keeps_writing(scratch: str) -> None:
    writer = db.AuditWriter(scratch, interval=0.05, batch=4)
    try:
        texts = [*HOSTILE, "\ud800", "z\udc80", "plain"]
        for n, text in enumerate(texts):
            writer.write(_row(text, n))
        assert _wait(lambda: writer.written == len(texts)), (
            f"{writer.written} of {len(texts)} rows written: the writer is stuck")
        assert writer.set_aside == 0
    finally:
        writer.close()
    rows = _query(scratch, "SELECT agency, role, peer, method, outcome, detail FROM api_audit "
                           "ORDER BY subject")
    assert len(rows) == len(texts)
    for text, row in zip(texts, rows, strict=True):
        assert set(row) == {escaped(text, db.AUDIT_TEXT_LIMIT)}
        assert row[0].isprintable() and len(row[0]) < db.AUDIT_TEXT_LIMIT + 40


@pytest.mark.stack
def test_a_pending_row_does_not_keep_a_clients_megabytes(scratch: str) -> None:
    writer = db.AuditWriter(scratch, interval=30.0)
    row = _row("AG", 0, detail="unknown event types: " + "\x00" * 4_000_000)
    writer.write(row)
    assert row.detail is not None and len(row.detail) < db.AUDIT_TEXT_LIMIT + 40
    assert row.detail.endswith(f"...[{4_000_021 - 265} more characters]")
    writer.close()
    assert writer.written == 1
    (detail,) = _query(scratch, "SELECT detail FROM api_audit")[0]
    assert detail == row.detail and detail.startswith("unknown event types: \\x00\\x00")


@pytest.mark.stack
def test_a_refused_row_is_set_aside_and_the_rest_flows_on(scratch: str) -> None:
    writer = db.AuditWriter(scratch, interval=0.05, batch=100)
    try:
        # integer out of range: refused by PostgreSQL (22003) whatever the escaping
        rows = [_row("AG", n, items=2**40 if n in (3, 7) else n) for n in range(10)]
        for row in rows:
            writer.write(row)
        assert _wait(lambda: writer.written + writer.set_aside == 10), (
            f"written {writer.written}, set aside {writer.set_aside}: the writer is stuck")
        writer.write(_row("after", 10))  # rows after the refusal are written too
        assert _wait(lambda: writer.written == 9)
        assert writer.set_aside == 2 and writer.outages == 0
    finally:
        writer.close()
    subjects = [s for (s,) in _query(scratch, "SELECT subject FROM api_audit ORDER BY id")]
    assert subjects == [f"s{n:03d}" for n in (0, 1, 2, 4, 5, 6, 8, 9, 10)]
    dead = _query(scratch, "SELECT sqlstate, error, row FROM api_audit_dead_letters "
                           "ORDER BY row->>'subject'")
    assert [(d[0], d[2]["subject"], d[2]["items"]) for d in dead] == [
        ("22003", "s003", 2**40), ("22003", "s007", 2**40)]
    assert "out of range" in dead[0][1]


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.stack
def test_a_row_refused_as_a_dead_letter_too_goes_to_the_log(scratch: str) -> None:
    _query(scratch, "DROP TABLE api_audit_dead_letters")
    kept = _Kept()
    logging.getLogger("lifecert.api").addHandler(kept)
    writer = db.AuditWriter(scratch, interval=0.05)
    try:
        writer.write(_row("AG", 0, items=2**40, detail="bad\x00one"))
        writer.write(_row("AG", 1))
        assert _wait(lambda: writer.written == 1 and writer.lost == 1)
    finally:
        writer.close()
        logging.getLogger("lifecert.api").removeHandler(kept)
    assert any("not set aside" in m and '"s000"' in m and "bad\\\\x00one" in m
               for m in kept.messages), kept.messages


@pytest.mark.stack
def test_an_outage_is_retried_not_set_aside(scratch: str, stack: StackStatus) -> None:
    name = psycopg2.extensions.parse_dsn(scratch)["dbname"]
    writer = db.AuditWriter(scratch, interval=0.05, retry_seconds=0.1)
    try:
        writer.write(_row("before", 0))
        assert _wait(lambda: writer.written == 1)
        # The database goes away: no new connection, the writer's own one ended.
        _query(stack.postgres_dsn, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        _query(stack.postgres_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = %s", (name,))
        for n in range(1, 6):
            writer.write(_row("during", n))
        assert _wait(lambda: writer.outages >= 3)  # retried, again and again
        assert writer.written == 1 and writer.set_aside == 0 and writer.lost == 0
        _query(stack.postgres_dsn, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert _wait(lambda: writer.written == 6)
        assert writer.set_aside == 0
    finally:
        _query(stack.postgres_dsn, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        writer.close()
    assert _query(scratch, "SELECT count(*) FROM api_audit") == [(6,)]
    assert _query(scratch, "SELECT count(*) FROM api_audit_dead_letters") == [(0,)]


def test_outage_and_refusal_are_told_apart() -> None:
    refused = psycopg2.errors.lookup("22003")("value out of range")
    assert not db.is_outage(refused, _OpenConn())
    assert not db.is_outage(ValueError("A string literal cannot contain NUL"), _OpenConn())
    assert db.is_outage(psycopg2.errors.lookup("57P01")("terminating"), _OpenConn())
    assert db.is_outage(psycopg2.errors.lookup("53100")("disk full"), _OpenConn())
    assert db.is_outage(psycopg2.OperationalError("could not connect"), _OpenConn())
    assert db.is_outage(psycopg2.InterfaceError("connection already closed"), _OpenConn())
    assert db.is_outage(refused, None)


class _OpenConn:
    closed = 0


# --------------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def hostile_box(stack: StackStatus, tmp_path_factory: pytest.TempPathFactory,
                face_key: str) -> Iterator[tuple[Sandbox, ServerProcess]]:
    """A sandbox and server of their own: hostile records go on this events topic only."""
    with Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap,
                        tmp_path_factory.mktemp("hostile")) as sandbox:
        sandbox.publish([(EVENTS, parse_line(line)) for line in RETIREES])
        sandbox.register_second_factors(ID_NUMBERS.items())
        server = sandbox.start_server(env={"LIFECERT_FACE_KEY": face_key})
        yield sandbox, server


SERVICES = [
    (partner_exchange_pb2, "PartnerExchange"),
    (status_query_pb2, "StatusQuery"),
    (face_verification_pb2, "FaceVerification"),
]
# Roles by method where STAFF may not call it (the call would end before the fields).


def _role_for(method: str) -> str:
    """The test's first role (STAFF, else COUNTER) that may call ``method``, so that a
    hostile value goes past the authorization matrix into the method itself; a method
    added later is covered without touching this test."""
    for role in ("STAFF", "COUNTER"):
        try:
            authz.check_method(role, method)
        except authz.Refusal:
            continue
        return role
    raise AssertionError(f"no role of this test may call {method}: add one to agencies")

# Valid values by field name, so that a hostile value in one field goes as deep as it can.
VALID: dict[str, str] = {
    "retiree_id": "NOBODY-1", "certification_id": "HOSTILE-1",
    "date_of_death": "2020-01-02", "attempt_id": "attempt-1",
}
VALID_BY_METHOD: dict[str, dict[str, str]] = {
    "StatusQuery/GetStatus": {"retiree_id": "FS-1",
                              "second_factor": factor_of_id_number(ID_NUMBERS["FS-1"])},
}


def _string_paths(desc: pbd.Descriptor, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for f in desc.fields:
        if f.type == pbd.FieldDescriptor.TYPE_STRING:
            yield (*prefix, f.name)
        elif f.type == pbd.FieldDescriptor.TYPE_MESSAGE and \
                f.message_type.full_name != "google.protobuf.Timestamp":
            yield from _string_paths(f.message_type, (*prefix, f.name))


def _fill(msg: pbm.Message, path: tuple[str, ...], valid: dict[str, str]) -> pbm.Message:
    """``msg`` with valid values in the fields along ``path`` (into the oneof member the
    path names); returns the innermost message."""
    desc = msg.DESCRIPTOR
    for f in desc.fields:
        if f.containing_oneof is not None and f.name != path[0]:
            continue
        repeated = f.is_repeated
        if f.type == pbd.FieldDescriptor.TYPE_STRING and not repeated and f.name in valid:
            setattr(msg, f.name, valid[f.name])
        elif f.type == pbd.FieldDescriptor.TYPE_BYTES:  # a photo, frames: a decodable
            # image, so that a hostile value in a string field reaches its own check
            if repeated:
                getattr(msg, f.name).append(TINY_PNG)
            else:
                setattr(msg, f.name, TINY_PNG)
        elif f.message_type is not None and f.message_type.full_name == \
                "google.protobuf.Timestamp" and not repeated:
            getattr(msg, f.name).CopyFrom(Timestamp(seconds=1_577_836_800))
    if len(path) == 1:
        return msg
    field = desc.fields_by_name[path[0]]
    inner = getattr(msg, path[0])
    if field.is_repeated:
        inner = inner.add()
    return _fill(inner, path[1:], valid)


def _request(desc: pbd.Descriptor, cls: type[pbm.Message], path: tuple[str, ...],
             value: str, valid: dict[str, str]) -> pbm.Message:
    request = cls()
    inner = _fill(request, path, valid)
    field = inner.DESCRIPTOR.fields_by_name[path[-1]]
    if field.is_repeated:
        getattr(inner, path[-1]).append(value)
    else:
        setattr(inner, path[-1], value)
    return request


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 90, 80)).save(out, "PNG")
    return out.getvalue()


TINY_PNG = _tiny_png()


def _calls(by_method: dict[str, dict[str, str]] | None = None,
           ) -> Iterator[tuple[str, str, bool, tuple[str, ...], Any, type[pbm.Message]]]:
    """(method, role, server streaming, field path, request, response class); valid values
    of a method's other fields from ``VALID``, ``VALID_BY_METHOD`` and ``by_method``."""
    for module, service in SERVICES:
        sdesc = module.DESCRIPTOR.services_by_name[service]
        for m in sdesc.methods:
            method = f"{service}/{m.name}"
            req_cls = getattr(module, m.input_type.name)
            resp_cls = getattr(module, m.output_type.name)
            valid = {**VALID, **VALID_BY_METHOD.get(method, {}),
                     **(by_method or {}).get(method, {})}
            for path in _string_paths(m.input_type):
                for value in HOSTILE:
                    yield (method, _role_for(method), m.server_streaming, path,
                           _request(m.input_type, req_cls, path, value, valid), resp_cls)
                placeholder = PLACEHOLDER.decode()
                for raw in RAW:
                    data = _request(m.input_type, req_cls, path, placeholder, valid) \
                        .SerializeToString()
                    assert data.count(PLACEHOLDER) == 1
                    yield (method, _role_for(method), m.server_streaming, path,
                           data.replace(PLACEHOLDER, raw), resp_cls)


def _invoke(channel: grpc.Channel, method: str, streaming: bool, request: Any,
            resp_cls: type[pbm.Message]) -> grpc.StatusCode:
    return _invoke_detailed(channel, method, streaming, request, resp_cls)[0]


def _invoke_detailed(channel: grpc.Channel, method: str, streaming: bool, request: Any,
                     resp_cls: type[pbm.Message]) -> tuple[grpc.StatusCode, str]:
    serialize: Callable[[Any], bytes] = (
        (lambda b: b) if isinstance(request, bytes) else (lambda m: m.SerializeToString()))
    full = f"/lifecert.v1.{method}"
    try:
        if streaming:
            stream = channel.unary_stream(full, request_serializer=serialize,
                                          response_deserializer=resp_cls.FromString)
            for _ in stream(request, timeout=5):
                pass
        else:
            channel.unary_unary(full, request_serializer=serialize,
                                response_deserializer=resp_cls.FromString)(request, timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.stack
def test_hostile_text_in_every_field_of_every_rpc_keeps_the_audit_trail_going(
    hostile_box: tuple[Sandbox, ServerProcess],
) -> None:
    box, server = hostile_box
    assert "FaceVerification is not served" not in server.log(), server.log()[-2000:]
    agencies = {"STAFF": "HOSTILE-STAFF", "COUNTER": "HOSTILE-COUNTER"}
    codes: list[tuple[str, tuple[str, ...], bool, grpc.StatusCode]] = []
    verify_details: list[tuple[tuple[str, ...], grpc.StatusCode, str]] = []
    channels = {role: server.channel(agency, role) for role, agency in agencies.items()}
    try:
        # A real challenge for a real retiree, so that Verify's other fields are valid and
        # each hostile value reaches its own field's check (none consumes the challenge).
        challenge = face_verification_pb2.Challenge.FromString(channels["COUNTER"].unary_unary(
            "/lifecert.v1.FaceVerification/BeginChallenge",
            request_serializer=lambda m: m.SerializeToString(),
        )(face_verification_pb2.BeginChallengeRequest(retiree_id="FS-1"), timeout=20))
        by_method = {"FaceVerification/Verify": {"retiree_id": "FS-1",
                                                 "challenge_id": challenge.challenge_id}}
        for method, role, streaming, path, request, resp_cls in _calls(by_method):
            code, details = _invoke_detailed(channels[role], method, streaming, request,
                                             resp_cls)
            codes.append((method, path, isinstance(request, bytes), code))
            if method == "FaceVerification/Verify" and not isinstance(request, bytes):
                verify_details.append((path, code, details))
    finally:
        for channel in channels.values():
            channel.close()
    fields = {(m, p) for m, p, _, _ in codes}
    assert ("PartnerExchange/Subscribe", ("types",)) in fields
    assert ("FaceVerification/Verify", ("attempt_id",)) in fields
    assert len(fields) >= 15
    # The face service is served: its hostile calls count like the others.
    assert not [m for m, _, _, c in codes if c == grpc.StatusCode.UNIMPLEMENTED]
    # Each hostile value of Verify was refused by its own field's check (not the frames').
    expected = {("retiree_id",): "not a valid retiree_id", ("attempt_id",): "attempt_id",
                ("challenge_id",): "challenge_id must be"}
    assert {p for p, _, _ in verify_details} == set(expected)
    for path, code, details in verify_details:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (path, code, details)
        assert expected[path] in details, (path, details)
    assert box.query("SELECT used_at IS NULL FROM api_face_challenges WHERE challenge_id = %s",
                     (challenge.challenge_id,)) == [(True,)]
    # Invalid UTF-8 does not parse: refused through the gate like any bad input, audited.
    raw_codes = {c for _, _, raw, c in codes if raw}
    assert raw_codes == {grpc.StatusCode.INVALID_ARGUMENT}
    audited = [c for _, _, _, c in codes]
    assert all(c != grpc.StatusCode.UNKNOWN for c in audited)  # no traceback to a client

    # A plain call after them: its row is written too (the writer is not stuck).
    with server.channel("HOSTILE-AFTER", "MACAU_SSF") as channel:
        code = _invoke(channel, "StatusQuery/GetStatus", False,
                       status_query_pb2.GetStatusRequest(retiree_id="NOBODY-2",
                                                         second_factor="1234"),
                       status_query_pb2.GetStatusResponse)
        assert code == grpc.StatusCode.NOT_FOUND

    def counted() -> tuple[int, int]:
        rows = box.query("SELECT agency = 'HOSTILE-AFTER', count(*) FROM api_audit WHERE "
                         "agency LIKE 'HOSTILE-%%' GROUP BY 1")
        found = dict(rows)
        return found.get(False, 0), found.get(True, 0)

    assert _wait(lambda: counted() == (len(audited) + 1, 1), 30), (
        f"audit rows (hostile calls and the BeginChallenge, the call after): {counted()}, "
        f"expected ({len(audited) + 1}, 1)\n{server.log()[-3000:]}")
    assert box.query("SELECT count(*) FROM api_audit_dead_letters") == [(0,)]
    malformed = box.query("SELECT method, outcome, detail FROM api_audit WHERE detail LIKE "
                          "'MALFORMED_REQUEST %%'")
    assert len(malformed) == sum(raw for _, _, raw, _ in codes)
    assert {m for m, _, _ in malformed} >= {"PartnerExchange/SubmitBatch",
                                            "PartnerExchange/Subscribe",
                                            "StatusQuery/GetStatus"}
    assert all(o == "INVALID_ARGUMENT" for _, o, _ in malformed)
    for row in box.query("SELECT agency, role, peer, method, outcome, detail FROM api_audit "
                         "WHERE agency LIKE 'HOSTILE-%%'"):
        for text in row:
            assert text is None or (text.isprintable() and len(text) < 1100), repr(text)[:200]

    # The server's log: one line per message, no control character, no forged line.
    log = server.log()
    assert "HOSTILE-STAFF" in log  # --verbose: every call was logged
    for line in log.splitlines():
        assert not line.startswith(FORGED), line
        assert line.isprintable() or line.startswith(("Traceback", " ")), repr(line)[:200]
    assert server.process.poll() is None


# --------------------------------------------------------------------- the directory


def _enrolled_bytes(rid: str, **fields: Any) -> bytes:
    return codec.encode(parse_line(enroll(rid, name="Someone", **fields)))


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


@pytest.mark.stack
def test_the_directory_sets_aside_hostile_records_and_reads_on(
    hostile_box: tuple[Sandbox, ServerProcess],
) -> None:
    box, server = hostile_box
    topic = box.topics[EVENTS].name
    retiree_hdr = _enrolled_bytes("HX-PLACEHOLD-1")
    unit = _enrolled_bytes("HX-UNIT-1", scheme="GOV_INSTITUTION", category="CADRE_RETIREE",
                           managing_unit="UNIT-PLACEHOLD")
    hostile: list[tuple[bytes | None, str]] = [
        (None, "no value"),
        (b"\xff\xfe\x00garbage", "expected marker c3 01"),
        (codec.MARKER + b"\x01\x02\x03\x04\x05\x06\x07\x08rest", "unknown schema fingerprint"),
        (retiree_hdr[:-5], "does not decode"),
        (_swap(retiree_hdr, b"PLACEHOLD", b"\x00\x01\n\x1b[2J\x7f "), "is not a valid retiree_id"),
        (_swap(retiree_hdr, b"PLACEHOLD", b"\xed\xa0\x80\xff\xfe\x00abc"), "does not decode"),
        (_swap(unit, b"PLACEHOLD", b"\\.\n\\N\t\x00\x00 "), "managing_unit holds a control"),
        (_swap(retiree_hdr, b"PLACEHOLD", b"\xe2\x80\xae\xe2\x80\xa8ab\\"),
         "is not a valid retiree_id"),
    ]
    producer = broker_clients.producer(box.bootstrap)
    try:
        futures = [producer.send(topic, key=b"HX", value=value) for value, _ in hostile]
        good = parse_line(enroll("LATE-1"))
        futures.append(producer.send(topic, key=b"LATE-1", value=codec.encode(good)))
        producer.flush()
        sent = [f.get(timeout=30) for f in futures]
    finally:
        producer.close()

    assert _wait(lambda: bool(box.query(
        "SELECT 1 FROM api_retiree_directory WHERE retiree_id = 'LATE-1'")), 30), (
        "the enrollment after the hostile records never reached the directory\n"
        + server.log()[-3000:])
    dead = dict(((p, o), r) for p, o, r in box.query(
        'SELECT "partition", "offset", reason FROM api_directory_dead_letters '
        "WHERE topic = %s", (topic,)))
    for (value, why), meta in zip(hostile, sent, strict=False):
        reason = dead.get((meta.partition, meta.offset))
        assert reason is not None and why in reason, (why, reason, value)
        assert reason.isprintable()
    stored = {r for (r,) in box.query("SELECT retiree_id FROM api_retiree_directory")}
    assert all(r.isprintable() for r in stored)
    assert not any(r.startswith("HX-") for r in stored)
    # The server still answers, and logged each record set aside on one line.
    with server.channel("HOSTILE-AFTER", "MACAU_SSF") as channel:
        assert _invoke(channel, "StatusQuery/GetStatus", False,
                       status_query_pb2.GetStatusRequest(retiree_id="LATE-1",
                                                         second_factor="1234"),
                       status_query_pb2.GetStatusResponse) == grpc.StatusCode.NOT_FOUND
    log = server.log()
    assert log.count("set aside in api_directory_dead_letters") >= len(hostile)
    for line in log.splitlines():
        assert line.isprintable() or line.startswith(("Traceback", " ")), repr(line)[:200]
