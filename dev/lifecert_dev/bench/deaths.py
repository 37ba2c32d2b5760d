"""``lifecert bench deaths``: the death registers' comparison (大数据比对) at scale.

A roster of ``--retirees`` enrolled retirees (default 1,000,000, digests under a throwaway
comparison key, written as the master system would) and an extract of ``--rows`` rows
(default 100,000) from one register (``--register``, default MZ: fixed width GBK), of
which about 2% are retirees' deaths (exact), 0.5% partial matches and the rest deaths of
people who draw no Foshan pension. Printed: the time to merely read the extract (the file,
its lines, decoded), beside the time to compare it (parse, digest, look up, categorise)
and the time to load the roster (parse the file, index it); the roster's making (2 HMACs a
retiree) is the master system's cost and is printed apart.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from connectors.death_registers import formats
from connectors.death_registers.identity import Digester, check_digit
from connectors.death_registers.matching import match
from connectors.death_registers.roster import HEADER, parse_roster
from lifecert_dev.partners.death_registers import simulator

SURNAMES = "李陈黄梁何张刘王吴林郑谢罗麦冯邓"
GIVEN = "秀英伟丽娟国强美玲建华淑珍志明桂芳家辉少文"


def person(n: int, rng: random.Random) -> dict[str, str]:
    born = date(1925, 1, 1) + timedelta(days=rng.randrange(14000))
    first17 = f"4406{n % 100:02d}{born:%Y%m%d}{n // 100 % 1000:03d}"
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    return {"citizen_id": first17 + check_digit(first17), "name": name,
            "birth_date": born.isoformat()}


def make(work: Path, retirees: int, rows: int, register: str, seed: int) -> tuple[Path, Path,
                                                                              Digester, float]:
    rng = random.Random(seed)
    digester = Digester(rng.randbytes(32))
    people = [person(n, rng) for n in range(retirees)]
    started = time.perf_counter()
    lines = [HEADER + "\n"]
    for n, p in enumerate(people):
        lines.append(f"FS{n:09d},{digester.citizen_id(p['citizen_id'])},"
                     f"{digester.name(p['name'])},{p['birth_date']}\n")
    making = time.perf_counter() - started
    roster = work / "roster.csv"
    roster.write_text("".join(lines), encoding="utf-8")
    deaths = []
    for n in range(rows):
        roll = rng.random()
        if roll < 0.02:
            p = dict(rng.choice(people))
        elif roll < 0.0225:
            p = dict(rng.choice(people), name="王五")
        elif roll < 0.025:
            p = dict(rng.choice(people), citizen_id="")
        else:
            p = person(retirees + n, rng)
        deaths.append(dict(p, date_of_death="2017-04-01",
                           reported_at="2017-04-02T10:00:00+08:00"))
    ext = formats.REGISTERS[register][0]
    extract = work / f"{register}-20170410-001{ext}"
    extract.write_bytes(simulator.extract(register, deaths))
    return roster, extract, digester, making


class Clock:
    """Wall time and this process's CPU time of a phase: on a shared machine the CPU time
    says what the work costs, the wall time what it took beside the others."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def text(self) -> str:
        return f"{self.wall:8.3f} s wall {self.cpu:8.3f} s CPU"


def run_deaths_bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-deaths-") as tmp:
        roster_file, extract, digester, making = make(Path(tmp), args.retirees, args.rows,
                                                      args.register, args.seed)
        encoding = "gbk" if args.register == "MZ" else "utf-8"
        skip = formats.HEADER_LINES[args.register]
        with Clock() as read:
            lines = extract.read_bytes().splitlines(keepends=True)[skip:]
            decoded = sum(len(line.decode(encoding)) for line in lines)
        with Clock() as load:
            roster = parse_roster(roster_file.read_text(encoding="utf-8"), str(roster_file))
        parse = formats.PARSERS[args.register]
        kinds: Counter[str] = Counter()
        with Clock() as compare:
            for number, line in enumerate(lines, start=skip + 1):
                kinds[match(parse(line, f"x:{number}", digester), roster).kind.value] += 1
    figures = {"retirees": args.retirees, "rows": len(lines), "register": args.register,
               "read_extract_s": round(read.wall, 3), "read_extract_cpu_s": round(read.cpu, 3),
               "compare_extract_s": round(compare.wall, 3),
               "compare_extract_cpu_s": round(compare.cpu, 3),
               "load_roster_s": round(load.wall, 3), "load_roster_cpu_s": round(load.cpu, 3),
               "make_roster_s": round(making, 3), "categories": dict(kinds),
               "characters_decoded": decoded}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"death registers: {len(lines):,} rows ({args.register}) against "
          f"{args.retirees:,} enrolled retirees")
    print(f"  read the extract (lines, decoded):      {read.text()}")
    print(f"  compare the extract (parse+HMAC+match): {compare.text()}  "
          f"({len(lines) / compare.cpu:,.0f} rows per CPU second)")
    print(f"  load the roster (parse + index):        {load.text()}")
    print(f"  make the roster (master system, HMACs): {making:8.3f} s wall")
    print(f"  categories: {dict(sorted(kinds.items()))}")
    return 0


def add_parser(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser("deaths", help="death registers: compare an extract with "
                                "the enrolled retirees, beside reading it",
                                description=__doc__)
    parser.add_argument("--retirees", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--register", choices=sorted(formats.REGISTERS), default="MZ")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(func=run_deaths_bench)


