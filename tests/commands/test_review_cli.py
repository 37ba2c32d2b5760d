"""``lifecert review deaths``: list, confirm and dismiss through the command line, and
its refusals (exit 1 for a decision that cannot be taken, 2 for bad arguments)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from connectors.death_registers import review
from connectors.death_registers.identity import Digester
from connectors.death_registers.matching import Death, Kind, Match
from lifecert.cli import main
from lifecert.events.time import SHANGHAI

D = Digester(bytes(32))


@pytest.fixture
def queue(tmp_path: Path) -> tuple[Path, Path, str]:
    folder, inbox = tmp_path / "review", tmp_path / "inbox"
    (folder / "pending").mkdir(parents=True)
    inbox.mkdir()
    death = Death("HUKOU_CANCELLATION", "GA-20170410-001.csv:2", None, D.name("陈伟"),
                  date(1940, 1, 1), date(2017, 4, 1),
                  datetime(2017, 4, 2, 10, tzinfo=SHANGHAI))
    path = review.write_pending(folder, death, Match(Kind.NAME_BIRTH_ONLY, ("FS2", "FS3")))
    assert path is not None
    return folder, inbox, path.stem


def test_list_confirm_and_the_staff_file(queue: tuple[Path, Path, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder, inbox, rid = queue
    assert main(["review", "deaths", "list", "--review-dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert rid in out and "FS2,FS3" in out and "陈伟" not in out and "1 review(s)" in out
    assert main(["review", "deaths", "confirm", rid, "FS3", "--by", "staff-7", "--reason",
                 "daughter confirmed", "--review-dir", str(folder), "--inbox", str(inbox)]) == 0
    (staff_file,) = inbox.iterdir()
    line = json.loads(staff_file.read_text(encoding="utf-8"))
    assert (line["retiree_id"], line["confirmed_by"], line["reason"]) == \
        ("FS3", "staff-7", "daughter confirmed")
    assert review.confirmation_event(staff_file.read_bytes())["source"] == "HUKOU_CANCELLATION"
    assert main(["review", "deaths", "list", "--review-dir", str(folder)]) == 0
    assert "0 review(s)" in capsys.readouterr().out


def test_a_decided_review_cannot_be_decided_again(queue: tuple[Path, Path, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    folder, _, rid = queue
    assert main(["review", "deaths", "dismiss", rid, "--by", "staff-7", "--reason",
                 "namesake seen alive", "--review-dir", str(folder)]) == 0
    assert main(["review", "deaths", "dismiss", rid, "--by", "staff-8", "--reason", "again",
                 "--review-dir", str(folder)]) == 1
    assert "dismissed already" in capsys.readouterr().err


def test_confirming_someone_not_a_candidate_is_refused(queue: tuple[Path, Path, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder, inbox, rid = queue
    assert main(["review", "deaths", "confirm", rid, "FS9", "--by", "staff-7", "--reason",
                 "x", "--review-dir", str(folder), "--inbox", str(inbox)]) == 1
    assert "not a candidate" in capsys.readouterr().err
    assert list(inbox.iterdir()) == []


def test_no_review_folder_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("LIFECERT_DEATH_REVIEW_DIR", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["review", "deaths", "list"])
    assert caught.value.code == 2 and "--review-dir" in capsys.readouterr().err
