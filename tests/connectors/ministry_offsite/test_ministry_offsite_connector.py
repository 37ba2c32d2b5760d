"""MinistryOffsiteSource at its hooks, driven as the runner drives it (poll, map, commit,
``_committed``) but without a broker: folders, order, resuming, refusals, re-drops,
receipts, the missing inbox, settings. The batches are written with batchfile's own
writer; test_ministry_offsite_simulator.py covers the simulator process, and
test_ministry_offsite_contract.py the whole runner against the real broker."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors.ministry_offsite import batchfile as bf
from connectors.ministry_offsite.connector import MinistryOffsiteSource
from connectors.sdk.base import Event, PartnerRecord, Position
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected


def row(n: int, **overrides: str) -> bf.Row:
    values = {"certification_id": f"MOHRSS-17-{n:08d}", "retiree_id": f"FS{n:09d}",
              "name": "马强", "performed_at": "2017-04-03T10:00:00+08:00",
              "agency_id": "HB-WUHAN-SIB", "reported_at": f"2017-04-05T01:{n % 60:02d}:00+08:00"}
    values.update(overrides)
    return bf.Row(**values)


def batch(batch_id: str, rows: Sequence[bf.Row | bytes], **trailer: Any) -> bytes:
    lines = [r if isinstance(r, bytes) else bf.csv_line(r.fields()).encode(bf.ENCODING)
             for r in rows]
    return bf.encode_batch(batch_id, b"".join(line + bf.EOL for line in lines), **trailer)


@dataclass
class Share:
    root: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def drop(self, batch_id: str, data: bytes) -> None:
        temp = self.inbox / f".{bf.file_name(batch_id)}.part"
        temp.write_bytes(data)
        os.rename(temp, self.inbox / bf.file_name(batch_id))

    def connector(self) -> MinistryOffsiteSource:
        conn = MinistryOffsiteSource("ministry", {"inbox": str(self.inbox), **self.settings})
        conn._open()
        return conn

    def receipt(self, claim: str) -> bf.Receipt:
        return bf.read_receipt(self.path("receipts", bf.receipt_name(claim)).read_bytes())

    def names(self, *parts: str) -> list[str]:
        return sorted(os.listdir(self.path(*parts)))


@pytest.fixture
def share(tmp_path: Path) -> Share:
    (tmp_path / "inbox").mkdir()
    return Share(tmp_path)


@dataclass
class Run:
    events: list[tuple[str, Event]] = field(default_factory=list)  # (record key, event)
    rejected: list[tuple[PartnerRecord, str]] = field(default_factory=list)
    position: Position | None = None


def drive(conn: MinistryOffsiteSource, position: Position | None = None, *,
          batch_size: int = 4, polls: int = 1000, confirm: bool = True) -> Run:
    """What the runner does: poll, map, 'publish', commit the position, ``_committed``."""
    run = Run(position=position)
    for _ in range(polls):
        records = conn._poll(run.position, batch_size)
        if not records:
            break
        rejected = []
        for record in records:
            try:
                run.events += [(record.key, e) for e in conn._to_events(record)]
            except RecordRejected as exc:
                rejected.append((record, exc.reason))
        run.rejected += rejected
        run.position = records[-1].position
        if confirm:
            conn._committed(records, rejected, run.position)
    return run


def test_each_line_becomes_one_certification_in_name_then_line_order(share: Share) -> None:
    share.drop("20170403-001", batch("20170403-001", [row(3), row(4)]))
    share.drop("20170402-001", batch("20170402-001", [row(1), row(2)]))
    (share.inbox / "notes.txt").write_text("not a batch")
    (share.inbox / ".MOHRSS_440600_20170404-001.csv.part").write_bytes(b"half")
    (share.inbox / "MOHRSS_440600_20170401-001.csv").mkdir()  # not a file: left alone
    run = drive(share.connector())
    assert [key for key, _ in run.events] == [
        "MOHRSS_440600_20170402-001.csv:2", "MOHRSS_440600_20170402-001.csv:3",
        "MOHRSS_440600_20170403-001.csv:2", "MOHRSS_440600_20170403-001.csv:3"]
    assert run.events[0][1] == {
        "type": "CertificationRecorded", "recorded_at": "2017-04-05T01:01:00+08:00",
        "certification_id": "MOHRSS-17-00000001", "retiree_id": "FS000000001",
        "channel": "MINISTRY_OFFSITE", "agency_id": "HB-WUHAN-SIB",
        "performed_at": "2017-04-03T10:00:00+08:00"}
    assert run.position == {"file": "MOHRSS_440600_20170403-001.csv", "line": 3}
    assert share.names("inbox") == [".MOHRSS_440600_20170404-001.csv.part",
                                    "MOHRSS_440600_20170401-001.csv", "notes.txt"]
    assert share.names("archive", "done") == ["MOHRSS_440600_20170402-001.csv",
                                              "MOHRSS_440600_20170403-001.csv"]
    assert share.names("archive", "processing") == []
    receipt = share.receipt("MOHRSS_440600_20170402-001.csv")
    assert (receipt.status, receipt.count, receipt.accepted, receipt.rejected) == \
        (bf.ACCEPTED, "2", 2, 0)
    assert [(r.line, r.certification_id, r.result) for r in receipt.lines] == [
        (2, "MOHRSS-17-00000001", bf.ACCEPTED), (3, "MOHRSS-17-00000002", bf.ACCEPTED)]


def test_a_malformed_line_is_rejected_with_line_and_field_and_the_receipt_says_so(
        share: Share) -> None:
    share.drop("B1", batch("B1", [row(1), row(2, performed_at="2017-04-31T10:00:00+08:00"),
                                  b"\xff,x", row(4)]))
    run = drive(share.connector(), batch_size=2)
    assert [e["certification_id"] for _, e in run.events] == ["MOHRSS-17-00000001",
                                                               "MOHRSS-17-00000004"]
    reasons = [reason for _, reason in run.rejected]
    assert reasons[0].startswith("line 3, field 认证时间 (performed_at): "
                                 "'2017-04-31T10:00:00+08:00' is not a time")
    assert reasons[1].startswith("line 4, field 认证编号 (certification_id): bytes ff")
    assert [r.key for r, _ in run.rejected] == ["MOHRSS_440600_B1.csv:3",
                                                "MOHRSS_440600_B1.csv:4"]
    receipt = share.receipt("MOHRSS_440600_B1.csv")
    assert (receipt.status, receipt.accepted, receipt.rejected) == (bf.PARTIAL, 2, 2)
    assert [(r.line, r.certification_id, r.result, r.reason) for r in receipt.lines] == [
        (2, "MOHRSS-17-00000001", bf.ACCEPTED, ""),
        (3, "MOHRSS-17-00000002", bf.REJECTED, reasons[0]),
        (4, "", bf.REJECTED, reasons[1]),
        (5, "MOHRSS-17-00000004", bf.ACCEPTED, "")]


@pytest.mark.parametrize(("data", "words"), [
    (batch("R1", [row(1), row(2)], count=3), "the trailer says 3 records but the file has 2"),
    (batch("R1", [row(1), row(2)], digest=bf.checksum(b"")), "does not match the SHA-256"),
    (batch("R1", [row(1)])[:-40], "is not 64 lower-case hexadecimal digits (SHA-256); file cut"),
    (batch("R1", [row(1)])[:-100], "the last line is not a trailer"),
    (batch("R9", [row(1)]), "names batch 'R9'"),
])
def test_a_batch_whose_trailer_does_not_match_is_one_dead_letter_and_nothing_else(
        share: Share, data: bytes, words: str) -> None:
    share.drop("R1", data)
    conn = share.connector()
    records = conn._poll(None, 100)
    assert len(records) == 1
    (record,) = records
    assert record.key == "MOHRSS_440600_R1.csv"
    assert record.position == {"file": "MOHRSS_440600_R1.csv", "refused": True}
    assert record.raw == data
    with pytest.raises(RecordRejected) as caught:
        conn._to_events(record)
    reason = caught.value.reason
    assert reason.startswith("batch refused as a whole, none of its lines published: "
                             "MOHRSS_440600_R1.csv line ")
    assert words in reason
    assert str(share.path("archive", "refused", "MOHRSS_440600_R1.csv")) in reason
    assert "new batch id" in reason
    conn._committed(records, [(record, reason)], record.position)
    conn._committed(records, [(record, reason)], record.position)  # idempotent
    assert share.names("archive", "refused") == ["MOHRSS_440600_R1.csv"]
    assert share.names("archive", "processing") == []
    receipt = share.receipt("MOHRSS_440600_R1.csv")
    assert (receipt.status, receipt.accepted, receipt.rejected, receipt.lines) == \
        (bf.REFUSED, 0, 0, ())
    assert words in receipt.reason
    assert conn._poll(record.position, 100) == []


def test_a_re_drop_of_a_used_name_is_refused_unread_each_time(share: Share) -> None:
    share.drop("D1", batch("D1", [row(1)]))
    conn = share.connector()
    first = drive(conn)
    assert len(first.events) == 1
    share.drop("D1", batch("D1", [row(1), row(2)]))
    again = drive(conn, first.position)
    assert again.events == []
    assert [r.key for r, _ in again.rejected] == ["MOHRSS_440600_D1.redrop-1.csv"]
    assert "batch name MOHRSS_440600_D1.csv was already received (the earlier file is in " \
           "done/)" in again.rejected[0][1]
    share.drop("D1", batch("D1", [row(3)]))
    third = drive(conn, again.position)
    assert [r.key for r, _ in third.rejected] == ["MOHRSS_440600_D1.redrop-2.csv"]
    assert share.names("archive", "done") == ["MOHRSS_440600_D1.csv"]
    assert share.names("archive", "refused") == ["MOHRSS_440600_D1.redrop-1.csv",
                                                 "MOHRSS_440600_D1.redrop-2.csv"]
    assert share.receipt("MOHRSS_440600_D1.csv").status == bf.ACCEPTED, "kept as it was"
    refusal = share.receipt("MOHRSS_440600_D1.redrop-1.csv")
    assert (refusal.batch_id, refusal.status, refusal.count) == ("D1", bf.REFUSED, "")
    # A refused name is used too.
    share.drop("E1", batch("E1", [row(1)], count=5))
    share.drop("F1", batch("F1", [row(1)]))
    run = drive(conn, third.position)
    share.drop("E1", batch("E1", [row(1)]))
    run = drive(conn, run.position)
    assert [r.key for r, _ in run.rejected] == ["MOHRSS_440600_E1.redrop-1.csv"]
    assert "in refused/" in run.rejected[0][1]


def test_a_restart_resumes_after_the_checkpointed_line(share: Share) -> None:
    share.drop("S1", batch("S1", [row(n) for n in range(1, 11)]))
    first = drive(share.connector(), batch_size=3, polls=2)  # then the process dies
    assert first.position == {"file": "MOHRSS_440600_S1.csv", "line": 7}
    assert share.names("archive", "processing") == ["MOHRSS_440600_S1.csv"]
    second = drive(share.connector(), first.position, batch_size=3)
    keys = [k for k, _ in first.events + second.events]
    assert keys == [f"MOHRSS_440600_S1.csv:{n}" for n in range(2, 12)]
    receipt = share.receipt("MOHRSS_440600_S1.csv")
    assert receipt.accepted == 10, "the receipt covers lines published by both runs"


def test_a_crash_between_checkpoint_and_committed_is_finished_by_the_next_poll(
        share: Share) -> None:
    share.drop("K1", batch("K1", [row(1), row(2)]))
    share.drop("K2", batch("K2", [row(3)], count=2))
    run = drive(share.connector(), confirm=False, polls=1)
    assert run.position == {"file": "MOHRSS_440600_K1.csv", "line": 3}
    assert share.names("archive", "done") == []
    conn = share.connector()
    records = conn._poll(run.position, 10)
    assert [r.key for r in records] == ["MOHRSS_440600_K2.csv"]
    assert share.names("archive", "done") == ["MOHRSS_440600_K1.csv"]
    assert share.receipt("MOHRSS_440600_K1.csv").accepted == 2
    # Same for a refusal whose dead letter was committed.
    assert share.connector()._poll(records[0].position, 10) == []
    assert share.names("archive", "refused") == ["MOHRSS_440600_K2.csv"]


def test_without_a_checkpoint_a_claimed_batch_is_read_from_its_start(share: Share) -> None:
    share.drop("P1", batch("P1", [row(1), row(2), row(3)]))
    drive(share.connector(), batch_size=2, polls=1, confirm=False)  # claimed, then lost
    again = drive(share.connector(), None, batch_size=2)
    assert [k for k, _ in again.events] == [f"MOHRSS_440600_P1.csv:{n}" for n in (2, 3, 4)]


def test_an_empty_batch_is_finished_with_a_receipt(share: Share) -> None:
    share.drop("Z1", batch("Z1", []))
    assert share.connector()._poll(None, 10) == []
    assert share.names("archive", "done") == ["MOHRSS_440600_Z1.csv"]
    receipt = share.receipt("MOHRSS_440600_Z1.csv")
    assert (receipt.status, receipt.count, receipt.lines) == (bf.ACCEPTED, "0", ())


def test_a_missing_inbox_is_partner_unavailable_not_an_empty_inbox(share: Share) -> None:
    share.drop("U1", batch("U1", [row(1)]))
    conn = share.connector()
    share.inbox.rename(share.path("inbox.away"))
    with pytest.raises(PartnerUnavailable, match=r"inbox .* is missing"):
        conn._poll(None, 10)
    with pytest.raises(PartnerUnavailable, match="not mounted"):
        conn._open()
    assert conn._check()[0].startswith("ministry: inbox ")
    share.path("inbox.away").rename(share.inbox)
    assert conn._check() == []
    assert len(drive(share.connector()).events) == 1


def test_a_citizen_id_number_never_leaves_in_a_dead_letter(share: Share) -> None:
    share.drop("I1", batch("I1", [row(1, retiree_id="44010219500101123X")]))
    (record,) = share.connector()._poll(None, 10)
    assert b"44010219500101123X" not in record.raw and b"*" * 18 in record.raw
    with pytest.raises(RecordRejected, match="citizen id number") as caught:
        share.connector()._to_events(record)
    assert "44010219500101123X" not in caught.value.reason


def test_lag_counts_the_rest_of_the_batch_and_the_waiting_ones(share: Share) -> None:
    share.drop("L1", batch("L1", [row(n) for n in range(5)]))
    share.drop("L2", batch("L2", [row(n) for n in range(7)]))
    conn = share.connector()
    records = conn._poll(None, 2)
    assert conn._lag(records[-1].position) == 3 + 7
    share.inbox.rename(share.path("gone"))
    with pytest.raises(PartnerUnavailable):
        conn._lag(records[-1].position)


def test_settings(tmp_path: Path) -> None:
    conn = MinistryOffsiteSource("m", {"inbox": str(tmp_path / "share" / "in"),
                                       "scan_interval": 2})
    assert conn.receipts == tmp_path / "share" / "receipts"
    assert conn.done == tmp_path / "share" / "archive" / "done"
    assert conn.idle_interval == 2.0
    with pytest.raises(ConfigError, match="setting 'inbox' is required"):
        MinistryOffsiteSource("m", {})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['outbox'\]"):
        MinistryOffsiteSource("m", {"inbox": "x", "outbox": "y"})
    with pytest.raises(ConfigError, match="scan_interval must be positive"):
        MinistryOffsiteSource("m", {"inbox": "x", "scan_interval": 0})


# ------------------------------------------------------------------ files that are refused


def refusals(run: Run) -> dict[str, str]:
    return {record.key: reason for record, reason in run.rejected}


def test_a_link_or_a_fifo_under_a_batch_name_is_refused_unread_and_the_rest_flows(
        share: Share) -> None:
    secret = share.path("hub-secret.csv")  # one of our files a link would make us read
    secret.write_bytes(batch("L1", [row(9)]) + b"SECRET-OF-THE-HUB")
    (share.inbox / bf.file_name("L1")).symlink_to(secret)
    os.mkfifo(share.inbox / bf.file_name("L2"))  # opening it to read would block
    share.drop("L3", batch("L3", [row(1)]))
    conn = share.connector()
    run = drive(conn)
    assert [key for key, _ in run.events] == ["MOHRSS_440600_L3.csv:2"]
    reasons = refusals(run)
    assert sorted(reasons) == ["MOHRSS_440600_L1.csv", "MOHRSS_440600_L2.csv"]
    assert "MOHRSS_440600_L1.csv is a symbolic link, not a regular file; only regular " \
           "files are read" in reasons["MOHRSS_440600_L1.csv"]
    assert "MOHRSS_440600_L2.csv is a FIFO (named pipe), not a regular file" in \
        reasons["MOHRSS_440600_L2.csv"]
    assert all(record.raw == b"" for record, _ in run.rejected)  # nothing of the target
    # Kept in refused/ as they came (the link still a link), with a REFUSED receipt.
    assert share.names("archive", "refused") == ["MOHRSS_440600_L1.csv", "MOHRSS_440600_L2.csv"]
    assert share.path("archive", "refused", "MOHRSS_440600_L1.csv").is_symlink()
    assert secret.read_bytes().endswith(b"SECRET-OF-THE-HUB")
    for claim in reasons:
        receipt = share.receipt(claim)
        assert receipt.status == bf.REFUSED and "not a regular file" in receipt.reason
    assert share.names("inbox") == []
    # ... and the connector goes on with the next drop.
    share.drop("L4", batch("L4", [row(2)]))
    assert [key for key, _ in drive(conn, run.position).events] == ["MOHRSS_440600_L4.csv:2"]


def test_a_link_swapped_in_after_the_check_is_refused_by_open(
        share: Share, monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.sdk import files

    share.drop("W1", batch("W1", [row(1)]))
    conn = share.connector()
    claim = conn._claim_next()
    assert claim == "MOHRSS_440600_W1.csv"
    path = share.path("archive", "processing", claim)
    looked = os.lstat(path)
    secret = share.path("secret")
    secret.write_bytes(b"SECRET")

    def check_then_swap(p: Path, max_bytes: int) -> os.stat_result:
        """The check saw a regular file; the partner swaps a link in right after."""
        path.unlink()
        path.symlink_to(secret)
        return looked

    monkeypatch.setattr(files, "check_regular", check_then_swap)
    (record,) = conn._poll(None, 10)
    assert record.raw == b""
    with pytest.raises(RecordRejected, match="became a symbolic link while it was being "
                                             "opened"):
        conn._to_events(record)


def test_a_file_over_the_size_limit_is_refused_unread(share: Share) -> None:
    share.settings["max_file_bytes"] = 600
    big = batch("B1", [row(n) for n in range(10)])
    assert len(big) > 600
    share.drop("B1", big)
    share.drop("B2", batch("B2", [row(1)]))
    conn = share.connector()
    assert conn.max_file_bytes == 600
    run = drive(conn)
    assert [key for key, _ in run.events] == ["MOHRSS_440600_B2.csv:2"]
    (record, reason), = run.rejected
    assert record.raw == b""
    assert f"MOHRSS_440600_B1.csv has {len(big):,} bytes, more than the limit of 600; it " \
           "was not read (setting max_file_bytes of connector ministry)" in reason
    assert share.receipt("MOHRSS_440600_B1.csv").status == bf.REFUSED
    assert MinistryOffsiteSource("m", {"inbox": "x"}).max_file_bytes == 32 * 1024 * 1024
    with pytest.raises(ConfigError, match="max_file_bytes must be positive"):
        MinistryOffsiteSource("m", {"inbox": "x", "max_file_bytes": 0})


@pytest.mark.parametrize("name", [
    "MOHRSS_440600_N1.csv\n",  # "$" of the old pattern matched before a final newline
    "xMOHRSS_440600_N1.csv", "MOHRSS_440600_N1.csv.bak", "MOHRSS_440600_N1.csvx",
    "MOHRSS_440600_N1.csv ", "MOHRSS_440600_N1.csv.part", "MOHRSS_440600_../N1.csv",
])
def test_a_name_is_matched_whole(share: Share, name: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    if "/" in name:
        share.inbox.joinpath("MOHRSS_440600_..").mkdir()
    share.inbox.joinpath(name).write_bytes(batch("N1", [row(1)]))
    share.drop("N2", batch("N2", [row(2)]))
    conn = share.connector()
    with caplog.at_level("WARNING"):
        run = drive(conn)
        drive(conn, run.position)  # a second scan: warned once
    assert [key for key, _ in run.events] == ["MOHRSS_440600_N2.csv:2"]
    assert run.rejected == []
    first = name.split("/")[0]
    assert first in share.names("inbox"), "left alone"
    warnings = [r.getMessage() for r in caplog.records if first[:20] in r.getMessage()]
    assert len(warnings) == 1 and repr(first) in warnings[0]
    assert bf.batch_id_of(name) is None


def test_a_citizen_id_number_after_any_gb18030_character_is_masked_everywhere(
        share: Share, caplog: pytest.LogCaptureFixture) -> None:
    """In the bytes, the number after a four-byte character (whose last byte is an ASCII
    digit) or after a two-byte one whose second byte is an ASCII letter (丄 is 81 41) did
    not stand alone, so masking the bytes missed it."""
    ids = ["44010219500101123X", "440102195001011234", "440102500101123"]
    names = [f"𠮷{ids[0]}", f"丄{ids[1]}", f"田{ids[2]}"]
    rejected_lines = [bf.csv_line(row(n, name=name, performed_at="yesterday").fields())
                      .encode(bf.ENCODING) for n, name in enumerate(names)]
    share.drop("M1", batch("M1", rejected_lines))
    share.drop("M2", batch("M2", rejected_lines, count=7))  # refused as a whole
    trailer = f"#END,M3,{ids[0]},{bf.EMPTY_SHA256}".encode()
    share.drop("M3", bf.HEADER.encode(bf.ENCODING) + bf.EOL + trailer + bf.EOL)
    conn = share.connector()
    with caplog.at_level("DEBUG"):
        run = drive(conn)
    assert len(run.rejected) == 3 + 1 + 1
    outputs = [record.raw for record, _ in run.rejected]
    outputs += [reason.encode(bf.ENCODING) for _, reason in run.rejected]
    outputs += [record.key.encode() for record, _ in run.rejected]
    outputs += [r.getMessage().encode(bf.ENCODING) for r in caplog.records]
    for number in ids:
        for output in outputs:
            assert number.encode() not in output
            assert number.encode() not in output.decode(bf.ENCODING, "replace").encode()
    assert ("𠮷" + "*" * 18).encode(bf.ENCODING) in run.rejected[0][0].raw
    assert ("丄" + "*" * 18).encode(bf.ENCODING) in run.rejected[1][0].raw
    assert "the trailer's record count '******************' is not a number" in \
        run.rejected[-1][1]
