"""The death registers' harness for the test kit: a roster written by the simulated master
system, extracts dropped by the simulated offices (real processes: the simulator)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from connectors.death_registers.formats import GA_COLUMNS
from connectors.death_registers.identity import check_digit
from connectors.death_registers.roster import write_key
from lifecert_dev.partners.death_registers import simulator
from lifecert_dev.testkit.harness import Event, SourceHarness

SIMULATOR = "lifecert_dev.partners.death_registers.simulator"
# A death's source -> the register whose extract reports it.
REGISTER_OF = {"CIVIL_AFFAIRS": "MZ", "CREMATION_RECORD": "MZ",
               "HUKOU_CANCELLATION": "GA",
               "DEATH_CERTIFICATE": "WJ", "HOSPITAL_REPORT": "WJ"}
NAMES = ("李秀英", "陈伟", "黄丽娟", "梁国强", "何美玲", "艾力·买买提", "张建华", "刘淑珍")


def person(retiree_id: str) -> dict[str, str]:
    """A made-up person for a retiree id: a valid citizen id carrying the birth date."""
    h = int.from_bytes(hashlib.sha256(retiree_id.encode()).digest()[:8], "big")
    born = date(1925, 1, 1) + timedelta(days=h % 12000)
    # the sequence digits from other bits than the date: both from h % 12000 would collide
    first17 = f"440604{born:%Y%m%d}{(h >> 32) % 1000:03d}"
    return {"retiree_id": retiree_id, "citizen_id": first17 + check_digit(first17),
            "name": NAMES[h % len(NAMES)], "birth_date": born.isoformat()}


class DeathRegistersHarness(SourceHarness):
    connector_kind = "death-registers"
    carries = frozenset({("DeathRecorded", None)})

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.dir = work_dir
        self.inbox = work_dir / "inbox"
        self.inbox.mkdir(parents=True)
        self.key_file = work_dir / "comparison.key"
        write_key(self.key_file)
        self.roster = work_dir / "roster.csv"
        self.people: dict[str, dict[str, str]] = {}
        self.seq = 0
        self._write_roster()
        return {"inbox": str(self.inbox), "roster_file": str(self.roster),
                "key_file": str(self.key_file)}

    def stop(self) -> None:
        pass

    def _run(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", SIMULATOR, *args], check=True)

    def _jsonl(self, name: str, rows: Sequence[dict[str, Any]]) -> Path:
        path = self.dir / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
        return path

    def _write_roster(self) -> None:
        self._run("roster", str(self.key_file), str(self.roster),
                  str(self._jsonl("people.jsonl", list(self.people.values()))))

    def next_name(self, register: str) -> str:
        self.seq += 1
        ext = {"MZ": "dat", "GA": "csv", "WJ": "jsonl"}[register]
        day = date(2017, 4, 10) + timedelta(days=self.seq // 1000)  # 3 digits a day
        return f"{register}-{day:%Y%m%d}-{self.seq % 1000:03d}.{ext}"

    def enrol(self, retiree_ids: Sequence[str]) -> None:
        used = {p["citizen_id"] for p in self.people.values()}
        for rid in retiree_ids:
            if rid in self.people:
                continue
            p = person(rid)
            while p["citizen_id"] in used:  # two made-up people must not share a number
                seq = (int(p["citizen_id"][14:17]) + 1) % 1000
                first17 = f"{p['citizen_id'][:14]}{seq:03d}"
                p["citizen_id"] = first17 + check_digit(first17)
            used.add(p["citizen_id"])
            self.people[rid] = p
        self._write_roster()

    def drop_deaths(self, register: str, deaths: Sequence[dict[str, Any]],
                    name: str | None = None) -> str:
        name = name or self.next_name(register)
        self._run("extract", register, str(self.inbox), name,
                  str(self._jsonl("deaths.jsonl", deaths)))
        return name

    def drop_raw(self, name: str, content: bytes) -> None:
        path = self.dir / "raw.bin"
        path.write_bytes(content)
        self._run("raw", str(self.inbox), name, str(path))

    def _deaths(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        self.enrol([str(e["retiree_id"]) for e in events])
        return [dict(self.people[str(e["retiree_id"])], date_of_death=str(e["date_of_death"]),
                     reported_at=str(e["recorded_at"])) for e in events]

    def feed(self, events: Sequence[Event]) -> None:
        """An extract for each run of deaths of one register (``source``: the generator's
        words or the registers' own; civil affairs for any other), numbered in the order
        fed: the connector reads extracts by date and number, whatever the register."""
        self.enrol([str(e["retiree_id"]) for e in events])
        runs: list[tuple[str, list[dict[str, Any]]]] = []
        for e in events:
            register = REGISTER_OF.get(str(e.get("source")), "MZ")
            if not runs or runs[-1][0] != register:
                runs.append((register, []))
            runs[-1][1].append(dict(
                self.people[str(e["retiree_id"])], date_of_death=str(e["date_of_death"]),
                reported_at=str(e["recorded_at"])))
        for register, deaths in runs:
            self.drop_deaths(register, deaths)

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None]:
        """Civil affairs' extract half written under its dot-name (``.MZ-....dat.part``),
        as the office's export looks until it renames the finished file."""
        name = self.next_name("MZ")
        content = simulator.extract("MZ", self._deaths(events))
        part = self.inbox / f".{name}.part"
        part.write_bytes(content[:len(content) // 2])

        def finish() -> None:
            with part.open("ab") as fh:
                fh.write(content[len(content) // 2:])
            os.replace(part, self.inbox / name)

        return finish

    def feed_malformed(self) -> str:
        self.enrol(["KIT-BAD"])
        line = self._mz("KIT-BAD", died="20171301")
        self.drop_raw(self.next_name("MZ"), line)
        return "死亡日期"

    def _mz(self, rid: str, *, died: str = "20170401", name: bytes | None = None,
            cid: bytes | None = None, at: str = "20170402100000") -> bytes:
        p = self.people.get(rid) or person(rid)
        return ((cid or p["citizen_id"].encode()).ljust(18) + (name or p["name"].encode("gbk"))
                .ljust(30) + p["birth_date"].replace("-", "").encode() + died.encode() +
                at.encode() + b"FS0001\r\n")

    def feed_hostile(self) -> list[str]:
        self.enrol(["KIT-H"])
        p = self.people["KIT-H"]
        mz = [(self._mz("KIT-H", cid=b"44060419\x01012345678"), "身份证号"),
              (self._mz("KIT-H", name=b"\xff\xfe\xff\xfe"), "姓名"),
              (self._mz("KIT-H", died="00010101"), "死亡日期"),
              (self._mz("KIT-H", at="99991231235959"), "火化登记时间"),
              (self._mz("KIT-H")[:-10] + b"\r\n", "line")]
        hints = []
        for mz_line, hint in mz:
            self.drop_raw(self.next_name("MZ"), mz_line)
            hints.append(hint)
        wrong = p["citizen_id"][:17] + ("0" if p["citizen_id"][17] != "0" else "1")
        ga = [f"ZX1,{wrong},{p['name']},{p['birth_date']},2017-04-01,2017-04-02 10:00:00,P1",
              f"ZX2,{p['citizen_id']},{'名' * 100_000},{p['birth_date']},2017-04-01,"
              f"2017-04-02 10:00:00,P1"]
        for ga_line, hint in zip(ga, ("公民身份号码", "姓名"), strict=True):
            header = ",".join(GA_COLUMNS)
            self.drop_raw(self.next_name("GA"), f"{header}\r\n{ga_line}\r\n".encode())
            hints.append(hint)
        base = {"cert_no": "Q1", "id_no": p["citizen_id"], "name": p["name"],
                "birth_date": p["birth_date"], "death_time": "2017-04-01T06:30:00+08:00",
                "issued_at": "2017-04-02T10:00:00+08:00", "hospital": "H1"}
        wj = [(b"[" * 5000 + b"]" * 5000 + b"\n", "line"),
              (json.dumps(dict(base, id_no=2**70)).encode() + b"\n", "id_no"),
              (json.dumps(dict(base, name="\u202e李秀英")).encode() + b"\n", "name"),
              (json.dumps(dict(base, death_time="9999-12-31T23:59:59-10:00")).encode() + b"\n",
               "death_time")]
        for line, hint in wj:
            self.drop_raw(self.next_name("WJ"), line)
            hints.append(hint)
        return hints

    def break_partner(self) -> None:
        self.inbox.rename(self.dir / "inbox.away")

    def mend_partner(self) -> None:
        (self.dir / "inbox.away").rename(self.inbox)

