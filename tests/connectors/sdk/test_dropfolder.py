"""The drop-folder machinery every file door shares (connectors/sdk/dropfolder.py): the
allow-list of senders, the claim by content and its duplicates, the lag of the files
waiting, the atomic answer and the move. Plain folders, no broker."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from connectors.sdk import dropfolder as df
from connectors.sdk.errors import PartnerUnavailable

LOG = logging.getLogger("test.dropfolder")


def _folders(tmp_path: Path, senders: object = ("UNIT-A", "UNIT-B")) -> df.ContentClaims:
    drop = tmp_path / "drop"
    archive = tmp_path / "archive"
    for folder in (drop, archive / "processing", archive / "done", archive / "refused"):
        folder.mkdir(parents=True)
    setting = list(senders) if isinstance(senders, tuple) else senders
    folders = df.SenderFolders(drop, "unit", df.Senders(setting, "units", "test"), LOG)
    return df.ContentClaims(folders, archive / "processing",
                            (archive / "done", archive / "refused"), archive / "refused",
                            1 << 20, lambda name, data: data.count(b"\n"))


def _drop(claims: df.ContentClaims, sender: str, name: str, data: bytes,
          mtime: int) -> Path:
    folder = claims.folders.drop / sender
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, ns=(mtime, mtime))
    return path


def test_senders_inline_table_and_a_file_read_again_when_it_changes(tmp_path: Path) -> None:
    assert df.Senders(["UNIT-A"], "units", "t").get() == {"UNIT-A": ""}
    teams = df.Senders({"HV-SHUNDE": "SHUNDE"}, "teams", "t", re.compile("SHUNDE|NANHAI"))
    assert teams.get() == {"HV-SHUNDE": "SHUNDE"}
    listing = tmp_path / "units.txt"
    listing.write_text("# units\nUNIT-A\n\nUNIT-B  # since May\n", encoding="utf-8")
    from_file = df.Senders(str(listing), "units", "t")
    assert from_file.get() == {"UNIT-A": "", "UNIT-B": ""}
    listing.write_text("UNIT-C\n", encoding="utf-8")
    os.utime(listing, ns=(1, 1))
    assert from_file.get() == {"UNIT-C": ""}


@pytest.mark.parametrize(("setting", "words"), [
    ([], "names no sender"),
    (["UNIT A"], "is not an agency id"),
    ({"HV-X": "ATLANTIS"}, "must match"),
    (3, "must be a list of ids"),
])
def test_senders_refused_with_the_reason(setting: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        df.Senders(setting, "teams", "t", re.compile("SHUNDE"))


def test_a_bad_senders_file_is_partner_unavailable_naming_the_line(tmp_path: Path) -> None:
    listing = tmp_path / "units.txt"
    listing.write_text("UNIT-A\nUNIT B\n", encoding="utf-8")
    with pytest.raises(PartnerUnavailable, match="line 2"):
        df.Senders(str(listing), "units", "t").get()


def test_a_file_from_a_folder_not_configured_is_claimed_and_said_why(tmp_path: Path) -> None:
    claims = _folders(tmp_path)
    _drop(claims, "UNIT-X", "b.csv", b"1\n2\n", 10)
    (claims.folders.drop / "not a unit").mkdir()
    assert claims.waiting() == 1  # refused whole: one record, whatever its rows
    claim = claims.claim_next(lambda *_: None)
    assert claim is not None and claim.startswith("UNIT-X~")
    reason = claims.folders.refusal("UNIT-X")
    assert reason is not None and "not the folder of a unit configured" in reason
    assert claims.folders.refusal("UNIT-A") is None


def test_claims_in_order_of_arrival_and_duplicates_set_aside(tmp_path: Path) -> None:
    claims = _folders(tmp_path)
    _drop(claims, "UNIT-B", "late.csv", b"x\n", 20)
    _drop(claims, "UNIT-A", "first.csv", b"a\nb\n", 10)
    assert claims.waiting() == 3
    first = claims.claim_next(lambda *_: None)
    assert first is not None and df.claim_parts(first)[0::2] == ("UNIT-A", "first.csv")
    assert claims.current() == first
    os.replace(claims.processing / first, claims.memory[0] / first)  # done
    told: list[tuple[str, str, int]] = []
    _drop(claims, "UNIT-A", "again.csv", b"a\nb\n", 15)  # the same content again
    second = claims.claim_next(lambda claim, earlier, k: told.append((claim, earlier, k)))
    assert second is not None and df.claim_parts(second)[2] == "late.csv"
    assert [(earlier, k) for _, earlier, k in told] == [("first.csv", 1)]
    assert [p.name for p in claims.dup_folder.iterdir()] == [f"{told[0][0]}~dup1"]
    assert claims.received("UNIT-B", df.claim_parts(second)[1]) is None


def test_a_name_we_cannot_keep_is_claimed_as_unnamed(tmp_path: Path) -> None:
    claims = _folders(tmp_path)
    _drop(claims, "UNIT-A", "a~b.csv", b"x\n", 10)
    claim = claims.claim_next(lambda *_: None)
    assert claim is not None and df.claim_parts(claim)[2] == df.UNNAMED


def test_a_link_is_claimed_unread(tmp_path: Path) -> None:
    claims = _folders(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"ours\n")
    (claims.folders.drop / "UNIT-A").mkdir()
    (claims.folders.drop / "UNIT-A" / "link.csv").symlink_to(secret)
    claim = claims.claim_next(lambda *_: None)
    assert claim is not None and df.claim_parts(claim)[1].startswith("unread-")
    assert (claims.processing / claim).is_symlink()  # moved, not followed


def test_write_atomically_and_a_missing_drop(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.csv"
    df.write_atomically(target, b"ok\n")
    assert target.read_bytes() == b"ok\n" and not list(target.parent.glob(".*"))
    with pytest.raises(PartnerUnavailable, match="share not mounted"):
        df.require_folder(tmp_path / "gone", "drop folder")
