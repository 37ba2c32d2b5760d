"""The partner systems of the demo and the end-to-end test, running for real: each
simulator started through its harness, each connector run as ``lifecert connectors run``
in a child process, and a campaign log played through them (:func:`play`).

    with Partners(bootstrap, topics, work_dir) as partners:
        stats = play(partners, events, policy, until=date(2017, 12, 31))
        partners.wait_for_sinks(...)
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from connectors.guangdong import province as gd_province
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.domain.fold import uuid5
from lifecert.domain.policy import Policy
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent, parse_event, to_json
from lifecert.events.time import SHANGHAI
from lifecert.pipeline import broker_clients, scheduler
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, DEAD_LETTERS, EVENTS, TopicLayout
from lifecert_dev.partners.consulates import CampaignConsulates
from lifecert_dev.partners.counters import API_DOORS, ApiDoor, ApiServer, answer_cases
from lifecert_dev.partners.death_registers.harness import DeathRegistersHarness
from lifecert_dev.partners.employer_files.harness import EmployerFilesHarness
from lifecert_dev.partners.faces import FaceDoor, face_doors
from lifecert_dev.partners.faces import describe as faces_describe
from lifecert_dev.partners.guangdong.harness import GuangdongHarness, GuangdongResultsHarness
from lifecert_dev.partners.hk_assist.harness import HkAssistHarness
from lifecert_dev.partners.home_visits.teams import HomeVisitTeams
from lifecert_dev.partners.macau_ssf.harness import (
    MacauSsfHarness,
    MacauSsfResultsHarness,
    result_event,
)
from lifecert_dev.partners.mailroom.harness import MailroomHarness
from lifecert_dev.partners.ministry_offsite.harness import MinistryOffsiteHarness
from lifecert_dev.partners.payment_ledger.harness import PaymentLedgerHarness
from lifecert_dev.partners.pension_master.harness import PensionMasterHarness
from lifecert_dev.partners.playback import DIRECT, Event, plan_windows, router
from lifecert_dev.testkit.harness import Harness, SinkHarness, SourceHarness

# ---------------------------------------------------------------- HOME VISITS PLUG POINT
# The home-visits door (issue 14 item 4): the district teams' results files, read by the
# home-visits connector (its teams are the campaign's districts' teams, its roster the
# districts of the retirees they visit: lifecert_dev.partners.home_visits.teams).
HOME_VISITS: Callable[[], SourceHarness] | None = HomeVisitTeams
# -----------------------------------------------------------------------------------------

# The Hong Kong bodies of the campaign (lifecert_dev.generate), each with its own exchange
# account, inbox and hk-assist instance: the connector records the certifications of an
# inbox as its body's (issue 14: never the agency a file's column asserts). The "-B" ones
# are the campaign's clashing certification ids (rule 11: another agency, the same id).
HK_BODIES: dict[str, str] = {"hk-assist": "HK-FTU", "hk-assist-gdlo": "HK-GDLO",
                             "hk-assist-ftu-b": "HK-FTU-B", "hk-assist-gdlo-b": "HK-GDLO-B"}


def _hk_body(instance: str) -> Callable[[], SourceHarness]:
    return lambda: HkAssistHarness(agency=HK_BODIES[instance])


# Instance name -> harness, in start order. Instance names are the connector kinds (but
# the second Hong Kong body's).
SOURCES: dict[str, Callable[[], SourceHarness]] = {
    "pension-master": PensionMasterHarness,
    "guangdong-xregion": GuangdongHarness,
    "ministry-offsite": MinistryOffsiteHarness,
    **{instance: _hk_body(instance) for instance in HK_BODIES},
    "macau-ssf": MacauSsfHarness,
    "mailroom": MailroomHarness,
    "employer-files": EmployerFilesHarness,
    "death-registers": DeathRegistersHarness,
    **({"home-visits": HOME_VISITS} if HOME_VISITS is not None else {}),
    # needs the API (staff approve the cases): started only with a database
    "consular-app": CampaignConsulates,
}
SINKS: dict[str, Callable[[], SinkHarness]] = {
    "payment-ledger": PaymentLedgerHarness,
    "guangdong-results": GuangdongResultsHarness,  # shares the source's province
    "macau-ssf-results": MacauSsfResultsHarness,  # shares the macau-ssf simulator (SSF)
}
# What a door brings in the demo where it is narrower than all its partner may report
# (its harness's ``carries``): SSF reports its own certifications and deaths, while the
# paper forms it mails come through the mailroom; each register reports the deaths of its
# own kind (the generator's words: lifecert_dev.generate).
ROUTES: dict[str, frozenset[tuple[str, str | None]]] = {
    "macau-ssf": frozenset({("CertificationRecorded", "MACAU_SSF"),
                            ("DeathRecorded", "MACAU_SSF")}),
    "death-registers": frozenset(("DeathRecorded", source) for source in
                                 ("CREMATION_RECORD", "HUKOU_CANCELLATION", "HOSPITAL_REPORT")),
    # one route per door: Partners.source_of sends each body's certifications to its inbox
    **{instance: frozenset() for instance in list(HK_BODIES)[1:]},
}
# The door of each source, for the demo's table.
DOORS: dict[str, str] = {
    "pension-master": "pension master's database",
    "guangdong-xregion": "Guangdong provincial feed",
    "ministry-offsite": "ministry's batch files",
    "hk-assist": "Hong Kong assisting bodies' files (FTU)",
    "hk-assist-gdlo": "Hong Kong assisting bodies' files (GDLO)",
    "hk-assist-ftu-b": "Hong Kong assisting bodies' files (FTU-B)",
    "hk-assist-gdlo-b": "Hong Kong assisting bodies' files (GDLO-B)",
    "macau-ssf": "Macau SSF (HTTPS)",
    "mailroom": "mailroom register (paper forms)",
    "employer-files": "employers' files",
    "death-registers": "death registers' extracts",
    "counters": "counters, gRPC API (role COUNTER)",
    "assisted-offices": "offices elsewhere, gRPC API (ASSISTED_OFFICE)",
    "assisting-agencies": "assisting agencies, gRPC API (ASSISTING_AGENCY)",
    "staff": "staff revocations, retractions, API (STAFF)",
    "family-deaths": "families' death reports at counters, API (STAFF)",
    "face-app": "face app, gRPC FaceVerification (APP)",
    "face-counters": "window cameras, gRPC FaceVerification (COUNTER)",
    "home-visits": "home-visit teams",
    "consular-app": "China Consular app's cases, staff review (API)",
    "ssf-answers": "counters' answers to SSF (form 3), API (COUNTER)",
    "gd-answers": "counters' answers to Guangdong, API (COUNTER)",
    DIRECT: "published directly (no door yet)",
}
# Quick polls: the playback waits for every window to be published before the next.
RUNNER = {"batch_size": 1000, "retry_initial": 0.2, "retry_max": 5.0, "idle_interval": 0.1}


class PartnersFailed(RuntimeError):
    """A connector died, or did not publish what its partner was fed in time."""


class Partners:
    def __init__(self, bootstrap: str, topics: TopicLayout, work_dir: Path, *,
                 database: tuple[str, str, str] | None = None,
                 face_doors: bool = True) -> None:
        """``database``: (admin DSN, name, DSN) of the run's read models, where the API
        server of the API's doors keeps its tables; without it, no API doors.
        ``face_doors``: False publishes the face certifications directly instead of
        verifying each through the API's face engine (about 0.45 s of a core each): for
        tests about something else, on campaigns with hundreds of them."""
        self.face_doors = face_doors
        self.bootstrap = bootstrap
        self.topics = topics
        self.work_dir = work_dir
        self.database = database
        self.harnesses: dict[str, Harness] = {}
        self.processes: dict[str, ConnectorProcess] = {}
        self.api_server: ApiServer | None = None
        self.api_doors: dict[str, ApiDoor] = {}

    def __enter__(self) -> Partners:
        # The partner systems start empty. A province feed kept from an earlier run would be
        # read again from its start by the connector (its checkpoint went with the topics)
        # and put the old run's June certifications at the head of the log.
        shutil.rmtree(self.work_dir / "partners", ignore_errors=True)
        try:
            specs = {}
            for name, make in {**SOURCES, **SINKS}.items():
                if name == "consular-app" and self.database is None:
                    continue  # no API server: no staff review, the consulates stay direct
                harness = make()
                if isinstance(harness, MacauSsfResultsHarness):
                    harness = _SsfResults(self.harnesses["macau-ssf"])
                if isinstance(harness, GuangdongResultsHarness):
                    harness = _GuangdongResults(self.harnesses["guangdong-xregion"])
                settings = harness.start(self.work_dir / "partners" / name)
                self.harnesses[name] = harness
                specs[name] = InstanceSpec(harness.connector_kind, settings, RUNNER)
            config = write_config(self.work_dir / "connectors.toml", bootstrap=self.bootstrap,
                                  topic_prefix=self.topics.prefix, instances=specs)
            (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
            for name in specs:
                self.processes[name] = ConnectorProcess(
                    config, name, self.work_dir / "logs" / f"connector-{name}.log").start()
            if self.database is not None:
                self.api_server = ApiServer(*self.database, self.bootstrap, self.topics)
                face_args, face_env = (_face_server_options() if self.face_doors
                                       else (["--no-face"], None))
                self.api_server.start(self.work_dir / "partners" / "counters", face_args,
                                      face_env)
                self.api_doors = {name: ApiDoor(self.api_server, door)
                                  for name, door in API_DOORS.items()}
                if self.face_doors:
                    self.api_doors.update(_face_doors(self.api_server))
                for harness in self.harnesses.values():
                    if isinstance(harness, CampaignConsulates):
                        harness.attach_api(self.api_server)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.api_server is not None:
            self.api_server.stop()
        for proc in self.processes.values():
            try:
                proc.stop()
            except AssertionError as error:  # did not stop in time: killed; say so
                print(f"lifecert: {error}", file=sys.stderr)
        for harness in self.harnesses.values():
            harness.stop()

    @property
    def sources(self) -> dict[str, SourceHarness]:
        return {n: h for n, h in self.harnesses.items() if isinstance(h, SourceHarness)}

    def sink(self, name: str) -> SinkHarness:
        harness = self.harnesses[name]
        assert isinstance(harness, SinkHarness)
        return harness

    @property
    def ledger_dsn(self) -> str:
        """The payment system's ledger database."""
        harness = self.harnesses["payment-ledger"]
        assert isinstance(harness, PaymentLedgerHarness) and harness.dsn is not None
        return harness.dsn

    def source_of(self) -> Callable[[Event], str]:
        carries = {name: ROUTES.get(name, h.carries) for name, h in self.sources.items()}
        route = router({**carries, **{n: d.carries for n, d in self.api_doors.items()}})
        by_role = {d.door.role: n for n, d in self.api_doors.items()
                   if not isinstance(d, FaceDoor)}
        hk_inbox = {body: instance for instance, body in HK_BODIES.items()}

        def source_of(event: Event) -> str:
            name = route(event)
            if name == "guangdong-xregion" and not str(event["agency_id"]).startswith("GD-"):
                # another province's office or agency: not on Guangdong's feed, the API
                return by_role.get(str(event["channel"]), name)
            if name in HK_BODIES:  # each body drops its certifications into its own inbox
                return hk_inbox.get(str(event["agency_id"]), name)
            return name

        return source_of

    def feeder(self, name: str) -> SourceHarness | ApiDoor:
        """What takes the events of door ``name``: a partner system or the API's clients."""
        return self.api_doors.get(name) or self.sources[name]

    def face_summary(self) -> str:
        """What the face doors did (matches, retries, enrollments, time per certification)."""
        doors = [d for d in self.api_doors.values() if isinstance(d, FaceDoor)]
        return faces_describe(doors) if doors else "face doors: none (no API server)"

    @property
    def province(self) -> GuangdongHarness:
        harness = self.harnesses["guangdong-xregion"]
        assert isinstance(harness, GuangdongHarness)
        return harness

    @property
    def ssf(self) -> MacauSsfHarness:
        harness = self.harnesses["macau-ssf"]
        assert isinstance(harness, MacauSsfHarness)
        return harness

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if not proc.alive:
                raise PartnersFailed(f"connector {name} exited; log:\n{proc.log_tail()}")


def _face_server_options() -> tuple[list[str], dict[str, str]]:
    """The API server's face settings for the face doors: a fresh face key for the run."""
    from lifecert.sealing import generate_key
    from lifecert_dev.partners.faces import server_options

    return server_options(generate_key())


def _face_doors(server: ApiServer) -> dict[str, FaceDoor]:
    """The face app's and the window cameras' clients (the photos shipped in packages)."""
    from lifecert_dev.face.photos import ensure_photos

    return face_doors(server, ensure_photos())


class _SsfResults(MacauSsfResultsHarness):
    """The results sink against the source's SSF (one fund: the beneficiaries it asked
    about are the cases it takes answers for)."""

    def __init__(self, source: Harness) -> None:
        super().__init__()
        assert isinstance(source, MacauSsfHarness)
        self.source = source

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.sim = self.source._running()
        work_dir.mkdir(parents=True, exist_ok=True)
        return {**self.sim.settings(), "ack_log": str(work_dir / "ssf-acks.jsonl")}

    def stop(self) -> None:
        pass  # the source's harness stops the simulator


class _GuangdongResults(GuangdongResultsHarness):
    """The results sink against the source's province (one provincial system: the cases it
    routed to Foshan are those it takes answers for, and Foshan's cases come back on the
    feed the source reads)."""

    def __init__(self, source: Harness) -> None:
        super().__init__()
        assert isinstance(source, GuangdongHarness)
        self.source = source

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.sim = self.source._running()
        work_dir.mkdir(parents=True, exist_ok=True)
        return {"url": self.sim.url, "ca_file": str(self.sim.ca_file), "timeout": 5.0,
                "assisting_city": "440600",
                "ack_log": str(work_dir / "guangdong-acks.jsonl")}

    def stop(self) -> None:
        pass  # the source's harness stops the simulator


@dataclass
class PlayStats:
    events: int = 0
    windows: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    ticks: list[str] = field(default_factory=list)
    assistance_results: int = 0  # Foshan's answers to Guangdong, published directly
    gd_cases: int = 0  # Guangdong's cities' retirees living in Foshan, asked about
    gd_answered: int = 0  # Foshan's answers to Guangdong through the counters' API
    asked: dict[str, int] = field(default_factory=dict)  # Foshan's requests, by partner
    # the partners' answers to Foshan's cases (cases answered), through their sources
    out_answered: dict[str, int] = field(default_factory=dict)
    redeliveries: int = 0  # the log's second deliveries of an event, not fed to a door
    # The file's event ids a door published nothing new for: resent certifications
    # (DUPLICATE) and unknown retirees at the API (counters.py), the same death from a
    # second register (one event id); replay judges them, with verdicts.
    absorbed: list[str] = field(default_factory=list)
    absorbed_deaths: list[str] = field(default_factory=list)  # the same death reported again
    ssf_requests: int = 0  # SSF's beneficiaries living in Foshan, asked about
    ssf_results: int = 0   # Foshan's answers to SSF, published directly (no API server)
    ssf_answered: int = 0  # Foshan's answers to SSF through the counters' API (form 3)
    seconds: float = 0.0

    def describe(self) -> str:
        sources = ", ".join(f"{k} {v:,}" for k, v in sorted(self.by_source.items()))
        return (f"played {self.events:,} events in {self.windows} windows ({sources}); "
                f"clock ticks: {', '.join(self.ticks) or 'none'}; "
                f"{self.redeliveries} redeliveries left out; {len(self.absorbed)} "
                f"events a door recorded once before or refused "
                f"({len(self.absorbed_deaths)} deaths); "
                f"{self.gd_answers} assistance results for the province, "
                f"{self.ssf_answers} for SSF; {self.seconds:.0f} s")

    @property
    def gd_answers(self) -> int:
        """Foshan's answers to Guangdong's cases, through the counters' API or directly:
        what the guangdong-results sink posts to the province."""
        return self.assistance_results + self.gd_answered

    @property
    def ssf_answers(self) -> int:
        """Foshan's answers to SSF, through the counters' API or directly: what the
        macau-ssf-results sink posts to SSF."""
        return self.ssf_results + self.ssf_answered

    @property
    def published_directly(self) -> int:
        """Records the playback put on the log itself rather than through a door: the
        campaign's events no door carries, and the counters' assistance results."""
        return self.by_source.get(DIRECT, 0) + self.assistance_results + self.ssf_results

    def doors(self) -> list[tuple[str, str, int]]:
        """(instance, door, events brought) for the demo's table, direct last."""
        rows = [(name, DOORS.get(name, name), n) for name, n in self.by_source.items()
                if name != DIRECT]
        rows.sort(key=lambda row: list(DOORS).index(row[0]) if row[0] in DOORS else 99)
        if self.ssf_requests:
            rows.append(("macau-ssf", "Macau SSF (HTTPS): cases to certify in Foshan",
                         self.ssf_requests))
        if self.ssf_answered:
            rows.append(("ssf-answers", DOORS["ssf-answers"], self.ssf_answered))
        if self.gd_cases:
            rows.append(("guangdong-xregion", "Guangdong feed: cases to certify in Foshan",
                         self.gd_cases))
        if self.gd_answered:
            rows.append(("gd-answers", DOORS["gd-answers"], self.gd_answered))
        rows += [("assistance-request", f"Foshan's requests to {partner} (CLI)", n)
                 for partner, n in sorted(self.asked.items())]
        rows += [(ANSWERING[partner].source, ANSWERING[partner].door, n)
                 for partner, n in sorted(self.out_answered.items())]
        rows.append((DIRECT, DOORS[DIRECT], self.by_source.get(DIRECT, 0)))
        rows.append((DIRECT, "assistance results (counters, to GD and SSF)",
                     self.assistance_results + self.ssf_results))
        return rows


def render_doors(stats: PlayStats) -> str:
    """The demo's table of doors and the events each brought, and the direct count."""
    lines = ["Doors and the events each brought:"]
    lines += [f"  {name:<18} {door:<48} {n:>8,}" for name, door, n in stats.doors()]
    lines.append(f"published directly: {stats.published_directly}")
    return "\n".join(lines)


def read_log(path: Path) -> list[Event]:
    """The valid events of a campaign log (replay dead-letters the others too)."""
    events = []
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    events.append(parse_event(json.loads(line)))
                except (MalformedEvent, ValueError):
                    continue
    return events


def assistance_results(events: Sequence[Event], seed: int) -> list[Event]:
    """Foshan's certifications of other Guangdong cities' retirees living in Foshan, one per
    100 retirees of the campaign, during the certification window: the counters' answers
    to the cases those cities registered through the provincial system
    (:func:`guangdong_cases`)."""
    rng = random.Random(seed)
    retirees = sum(1 for e in events if e["type"] == "RetireeEnrolled")
    start = datetime(2017, 4, 5, 9, 0, tzinfo=SHANGHAI)
    out = []
    for n in range(max(1, retirees // 100)):
        at = start + timedelta(days=rng.randint(0, 70), minutes=rng.randint(0, 480))
        out.append({
            "type": "AssistanceResult", "event_id": uuid5(f"demo-assistance|{seed}|{n}"),
            "recorded_at": at + timedelta(minutes=rng.randint(1, 30)), "source_agency": None,
            "certification_id": f"FS-A{seed}-{n:05d}",
            "retiree_id": f"GZ{rng.randint(10**7, 10**8 - 1)}",
            "home_region": rng.choice(["GUANGZHOU", "SHENZHEN", "ZHAOQING", "JIANGMEN"]),
            "method": rng.choice(["COUNTER", "FACE_COUNTER", "HOME_VISIT"]),
            "agency_id": rng.choice(["FS-SIB-CC01", "FS-SIB-NH02", "FS-SIB-SD01"]),
            "performed_at": at, "partner": "GD-XREGION", "direction": "INBOUND",
            "case_id": f"GDXC-17-{seed}-{n:06d}", "outcome": "CERTIFIED_ALIVE",
        })
    return out


def guangdong_cases(results: Sequence[Event]) -> list[dict[str, str]]:
    """The cases the other cities registered with Foshan (the provincial system's
    ASSIST_CASE records), three days before the counters answered them."""
    return [{"caseNo": str(r["case_id"]), "insuredId": str(r["retiree_id"]),
             "insuredCity": gd_province.CITY_CODES[str(r["home_region"])],
             "registerTime": gd_province.format_time(
                 datetime.fromisoformat(str(r["performed_at"])) - timedelta(days=3))}
            for r in results]


def ssf_beneficiaries(events: Sequence[Event]) -> int:
    """SSF's beneficiaries living in Foshan for a campaign: one per 200 retirees."""
    return max(1, sum(1 for e in events if e["type"] == "RetireeEnrolled") // 200)


class _Topics:
    """Counting records on the events and dead-letter topics (end offsets)."""

    def __init__(self, bootstrap: str, topics: TopicLayout) -> None:
        self.consumer = broker_clients.consumer(bootstrap)
        self.events = topics[EVENTS].name
        self.dead = topics[DEAD_LETTERS].name

    def count(self, topic: str) -> int:
        return sum(broker_clients.end_offsets(self.consumer, topic).values())

    def close(self) -> None:
        self.consumer.close()


def play(
    partners: Partners,
    events: Sequence[Event],
    policy: Policy,
    *,
    until: date,
    seed: int = 2017,
    timeout_per_window: float = 120.0,
    on_window: Callable[[int, int, PlayStats], None] | None = None,
    settle: Callable[[], None] | None = None,
) -> PlayStats:
    """Feed ``events`` (a campaign log, in order) to the partner systems window by window
    (see :mod:`lifecert_dev.partners.playback`), publishing the ``direct`` ones and the clock ticks
    itself, then the moments due by the end of ``until`` and some assistance results.
    Returns once every event is on the events topic.

    With ``settle`` (a function returning once the worker and the projections have caught
    up) and an API server, Foshan asks its partners on the policy's ``[assistance] ask_on``
    day, 09:00, as a cron job would: ``lifecert assistance request`` on the read models as
    they stand then (:func:`_ask`)."""
    started = time.monotonic()
    stats = PlayStats()
    source_of = partners.source_of()
    ask_at = None
    if settle is not None and partners.database is not None \
            and policy.assistance_ask_on is not None:
        ask_at = datetime.combine(policy.assistance_ask_on, datetime.min.time(),
                                  SHANGHAI).replace(hour=9)
    windows = plan_windows(events, source_of, [m.at for m in policy.moments]
                           + ([ask_at] if ask_at is not None else []))
    stats.windows = len(windows)
    counter = _Topics(partners.bootstrap, partners.topics)
    producer = broker_clients.producer(partners.bootstrap)
    partitions = len(broker_clients.partitions_of(counter.consumer, partners.topics[EVENTS].name))
    dead_before = counter.count(counter.dead)
    seen: set[str] = set()
    deaths: set[tuple[str, str]] = set()
    beneficiaries = ssf_beneficiaries(events)
    if "macau-ssf" in partners.harnesses:
        partners.ssf._running().populate(0, beneficiaries, seed)
        stats.ssf_requests = beneficiaries
    results = assistance_results(events, seed)
    if partners.api_server is not None:  # the counters answer them through the API
        partners.province.register_cases(guangdong_cases(results))
        stats.gd_cases = len(results)
    try:
        for n, window in enumerate(windows, 1):
            _tick(partners, policy, window.starts_at, stats, partitions)
            if ask_at is not None and settle is not None and window.starts_at >= ask_at:
                settle()
                stats.asked = _ask(partners, policy, ask_at)
                ask_at = None
            for source, batch in window.by_source.items():
                if source == DIRECT:
                    _send(producer, partners.topics[EVENTS].name, batch)
                else:
                    batch = _first_deliveries(batch, seen, stats)
                    if source == "death-registers":
                        _one_death(batch, deaths, stats)
                    if batch:
                        partners.feeder(source).feed([to_json(e) for e in batch])
                stats.by_source[source] = stats.by_source.get(source, 0) + len(batch)
                stats.events += len(batch)
            unpublished = [i for d in (*partners.api_doors.values(), *partners.sources.values())
                           for i in getattr(d, "absorbed", ())]
            # the registers' repeated deaths are published (the first one's event id)
            stats.absorbed = [*stats.absorbed_deaths, *unpublished]
            for door in partners.api_doors.values():
                door.enrolled.update(e["retiree_id"] for batch in window.by_source.values()
                                     for e in batch if e["type"] == "RetireeEnrolled")
            _wait_published(partners, counter, stats.events - len(unpublished)
                            + len(stats.ticks) * partitions, dead_before, timeout_per_window)
            if on_window is not None:
                on_window(n, len(windows), stats)
        _tick(partners, policy, until, stats, partitions)
        if partners.api_server is not None:
            stats.gd_answered = answer_cases(partners.api_server, results)
        else:  # no API server (no database): published directly, caseless as before
            caseless = [{k: v for k, v in r.items() if k not in ("partner", "direction",
                                                                  "case_id", "outcome")}
                        for r in results]
            _send(producer, partners.topics[ASSISTANCE_RESULTS].name, caseless)
            stats.assistance_results = len(results)
        if stats.ssf_requests:
            _answer_ssf(partners, producer, seed, stats)
        for partner, asked in stats.asked.items():
            if asked and partner in ANSWERING:
                stats.out_answered[partner] = _partner_answers(partners, partner, asked,
                                                               timeout_per_window)
    finally:
        producer.close(timeout=10)
        counter.close()
    stats.seconds = time.monotonic() - started
    return stats


def _ask(partners: Partners, policy: Policy, at: datetime) -> dict[str, int]:
    """``lifecert assistance request --at AT`` on the run's read models and topics: the
    requests it published, by partner."""
    assert partners.database is not None
    done = subprocess.run(
        [sys.executable, "-m", "lifecert.cli", "assistance", "request", "--at", at.isoformat(),
         "--policy", policy.name, "--dsn", partners.database[2], "--bootstrap",
         partners.bootstrap, "--prefix", partners.topics.prefix],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise PartnersFailed(f"lifecert assistance request failed: {done.stderr.strip()}")
    # "published N request(s) on TOPIC: GD-XREGION 3, MACAU-SSF 2" (or "0 request(s) ...")
    _, _, counts = done.stdout.strip().partition(": ")
    return {partner: int(n) for partner, n in
            (part.rsplit(" ", 1) for part in counts.split(", ") if part)} \
        if done.stdout.startswith("published") else {}


@dataclass(frozen=True)
class _Answering:
    """A partner Foshan asks (OUTBOUND cases) as the demo runs it: its connectors, how many
    of Foshan's cases it holds, and how its offices answer those still open at the end."""

    source: str  # the source instance that publishes its answers
    sink: str  # the sink instance that posts Foshan's cases to it
    door: str  # the doors table's label of its answers
    held: Callable[[Partners], int]
    not_found: Callable[[Partners], int]  # answers the open cases NOT_FOUND on their due day


# Partner -> how it answers Foshan's cases. Each answers with the campaign's own
# certifications of the retirees asked (the province: a certification on the insuring
# city's feed; SSF: a form-4 PROVA_DE_VIDA in its communications), so live == replay holds
# (no certification the campaign file does not hold); the rest not found on their due day
# (2017-06-13: 20 working days after ask_on 2017-05-15; SSF's requests carry it).
ANSWERING: dict[str, _Answering] = {
    "GD-XREGION": _Answering(
        "guangdong-xregion", "guangdong-results", "Guangdong feed: answers to Foshan's cases",
        lambda p: len([c for c in p.province.cases() if c["idempotencyKey"]]),
        lambda p: p.province.answer_cases("2017-06-13 17:00:00+08:00", "2")),
    "MACAU-SSF": _Answering(
        "macau-ssf", "macau-ssf-results", "Macau SSF (HTTPS): answers to Foshan's cases",
        lambda p: len(p.ssf._running().requests()),
        lambda p: p.ssf._running().answer_requests(resultado="NAO_ENCONTRADO")),
}


def _partner_answers(partners: Partners, partner: str, asked: int, timeout: float) -> int:
    """Once ``partner`` holds Foshan's ``asked`` cases, its offices answer those the
    campaign's certifications did not (the retiree certified another way, or not at all):
    not found, on their due day; returns once the source published every answer."""
    answering = ANSWERING[partner]
    deadline = time.monotonic() + timeout
    consumer = broker_clients.consumer(partners.bootstrap)
    topic = partners.topics[ASSISTANCE_RESULTS].name
    try:
        while answering.held(partners) < asked:
            if time.monotonic() > deadline:
                raise PartnersFailed(f"{partner} did not receive Foshan's {asked} cases "
                                     f"within {timeout:.0f} s; see connector-"
                                     f"{answering.sink}.log")
            partners.check_alive()
            time.sleep(0.2)
        answering.not_found(partners)
        while True:
            answers = len({str(e["case_id"]) for e in map(codec.decode, (
                r.value for r in broker_clients.read_to_end(consumer, topic)))
                if _answer_to_foshan(e, partner)})
            if answers >= asked:
                return answers
            if time.monotonic() > deadline:
                raise PartnersFailed(f"{answers} of {partner}'s {asked} answers published "
                                     f"within {timeout:.0f} s; see "
                                     f"connector-{answering.source}.log")
            partners.check_alive()
            time.sleep(0.5)
    finally:
        consumer.close()


def _answer_to_foshan(event: Event, partner: str) -> bool:
    return (event["type"] == "AssistanceResult" and event.get("partner") == partner
            and event.get("direction") == "OUTBOUND")


def _answer_ssf(partners: Partners, producer: Any, seed: int, stats: PlayStats) -> None:
    """Foshan's counters certify SSF's beneficiaries (form 3) and answer each case through
    the API (role COUNTER), which puts the answer on the assistance-results topic; the
    results sink posts it to SSF. Without the API server (no database), published
    directly."""
    answers = [result_event(seed, n) for n in range(stats.ssf_requests)]
    if partners.api_server is not None:
        stats.ssf_answered = answer_cases(partners.api_server, answers)
    else:
        _send(producer, partners.topics[ASSISTANCE_RESULTS].name, answers)
        stats.ssf_results = len(answers)


def _first_deliveries(batch: list[Event], seen: set[str], stats: PlayStats) -> list[Event]:
    """``batch`` without the events already fed (the log's redeliveries: one event id
    twice). Replay ignores the second; through a door it would be a second record of the
    partner (another row, another file), a new event id and an ALREADY_ENROLLED or
    duplicate verdict replay never gives. Each door's own tests deliver twice."""
    fresh = []
    for event in batch:
        if event["event_id"] in seen:
            stats.redeliveries += 1
            continue
        seen.add(event["event_id"])
        fresh.append(event)
    return fresh


def _one_death(batch: list[Event], deaths: set[tuple[str, str]], stats: PlayStats) -> None:
    """Note the deaths the registers' door reports again (one retiree, one date of death,
    from a second register): the connector gives it the first one's event id, which the
    worker skips, where replay of the file judges it DEATH_ALREADY_RECORDED."""
    for event in batch:
        key = (str(event["retiree_id"]), str(event["date_of_death"]))
        if key in deaths:
            stats.absorbed_deaths.append(str(event["event_id"]))
        deaths.add(key)


def _tick(partners: Partners, policy: Policy, to: date | datetime, stats: PlayStats,
          partitions: int) -> None:
    due = [m for m in policy.moments if m.kind not in stats.ticks and
           (m.at <= to if isinstance(to, datetime) else m.at <= scheduler.cutoff(to))]
    if due:
        result = scheduler.advance(partners.bootstrap, partners.topics, policy, to)
        stats.ticks += [m.kind for m in result.published]


def _send(producer: Any, topic: str, events: Iterable[Event]) -> None:
    futures = [producer.send(topic, key=e["retiree_id"].encode(), value=codec.encode(e))
               for e in events]
    producer.flush(60)
    for future in futures:
        future.get(timeout=0)


def _wait_published(partners: Partners, counter: _Topics, expected: int, dead_before: int,
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = counter.count(counter.events)
        if have >= expected:
            return
        partners.check_alive()
        dead = counter.count(counter.dead) - dead_before
        if time.monotonic() > deadline:
            raise PartnersFailed(
                f"the connectors published {have:,} of {expected:,} records on the events "
                f"topic within {timeout:.0f} s ({dead} dead letters); see "
                f"{partners.work_dir / 'logs'}/connector-*.log")
        time.sleep(0.05)


def wait_for_sink(partners: Partners, name: str, expected: int, timeout: float) -> int:
    """Wait until the sink ``name``'s partner holds ``expected`` applied records."""
    harness = partners.sink(name)
    deadline = time.monotonic() + timeout
    while True:
        applied = len(harness.applied())
        if applied >= expected:
            return applied
        partners.check_alive()
        if time.monotonic() > deadline:
            raise PartnersFailed(f"{name} applied {applied:,} of {expected:,} records within "
                                 f"{timeout:.0f} s; see {partners.work_dir / 'logs'}/"
                                 f"connector-{name}.log")
        time.sleep(0.2)
