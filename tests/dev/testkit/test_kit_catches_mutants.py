"""The connector test kit fails a mutated copy of the guide's example connector for each
fault it claims to catch, in the case meant to catch it, and leaves no topic behind.

Each mutant (kit_mutants/community_office.py) is registered as a connector kind through a
throwaway ``*.dist-info`` on the PYTHONPATH of a child pytest session, which runs the
kit's case on it; the unmutated example passes the same cases in
tests/connectors/examples/test_community_office_contract.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecert.pipeline import acls, broker_clients
from lifecert.pipeline.credentials import ADMIN
from lifecert_dev.stack import StackStatus

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[3]
MODULE = "tests.dev.testkit.kit_mutants.community_office"
UNDER_MUTATION = Path(__file__).parent / "kit_mutants" / "contract_under_mutation.py"

# mutant class -> (its kind, the kit's case that must fail it, a phrase of the failure)
MUTANTS = {
    "OffByOneCheckpoint": ("kit-mutant-off-by-one",
                           "test_caught_up_connector_stops_reading_and_checkpointing",
                           "more records in"),
    "IgnoresMaxRecords": ("kit-mutant-ignores-max-records",
                          "test_poll_honours_max_records_and_tells_lag",
                          "max_records=5) returned 12 records"),
    "DropsBoundaryRecord": ("kit-mutant-drops-boundary-record",
                            "test_each_record_becomes_exactly_one_valid_event",
                            "waiting for 12 events"),
    "ReadsPartialLine": ("kit-mutant-reads-partial-line",
                         "test_record_still_being_written_is_not_read_yet",
                         "a record still being written was read"),
    "OutageMidRunIsNoNews": ("kit-mutant-outage-mid-run-is-no-news",
                             "test_partner_down_mid_run_is_retried_and_nothing_lost",
                             "lifecert_connector_retries_total reached"),
    "LagIgnoresPosition": ("kit-mutant-lag-ignores-position",
                           "test_caught_up_connector_stops_reading_and_checkpointing",
                           "lifecert_connector_lag is 12.0, not 0"),
    "NoLag": ("kit-mutant-no-lag", "test_poll_honours_max_records_and_tells_lag",
              "implement _lag(position)"),
}


def _kit_topics(bootstrap: str, pid: int) -> set[str]:
    """The topics of the kit run in process ``pid`` (its prefixes are ``kit-<pid>-...``:
    other tests' kits may run beside it)."""
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        return {t for t in admin.list_topics() if t.startswith(f"kit-{pid}-")}


def _kit_acls(bootstrap: str, pid: int) -> set[str]:
    """The ACLs on the resources of the kit run in process ``pid`` (topics and groups of
    prefixes ``kit-<pid>-...``)."""
    with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
        found = admin.describe_acls(acls._every_acl())[0]
    return {repr(a) for a in found
            if a.resource_pattern.resource_name.startswith(f"kit-{pid}-")}


def _register(where: Path) -> Path:
    dist = where / "lifecert_kit_mutants-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lifecert-kit-mutants\n"
                                   "Version: 0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[lifecert.connectors]\n"
        + "".join(f"{kind} = {MODULE}:{cls}\n" for cls, (kind, _, _) in MUTANTS.items()),
        encoding="utf-8")
    return where


# A mutant that loses a record fails its case when the case's wait runs out: 20 s, not the
# kit's 60, is still far above what the unmutated example needs (about 2 s here).
MUTANT_TIMEOUT = "20"


@dataclass
class _Case:
    """A kit case run in a pytest process of its own, and that process's id."""

    returncode: int
    stdout: str
    stderr: str
    pid: int


def _run_case(kind: str, case: str, path: Path) -> _Case:
    env = dict(os.environ, LIFECERT_KIT_MUTANT=kind, LIFECERT_KEEP_STACK="1",
               LIFECERT_KIT_TIMEOUT=MUTANT_TIMEOUT,
               PYTHONPATH=os.pathsep.join([str(path), str(ROOT)]))
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         f"{UNDER_MUTATION}::TestMutant::{case}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return _Case(proc.returncode, out, err, proc.pid)


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_the_kit_fails_the_mutant(mutant: str, stack: StackStatus, tmp_path: Path) -> None:
    kind, case, phrase = MUTANTS[mutant]
    done = _run_case(kind, case, _register(tmp_path / "site"))
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "1 failed" in done.stdout, \
        f"the kit did not fail {mutant} in {case}:\n{out[-4000:]}"
    assert phrase in out, f"{case} failed {mutant}, but not for its fault ({phrase!r}):\n" \
        f"{out[-4000:]}"
    left = _kit_topics(stack.kafka_bootstrap, done.pid)
    assert not left, f"the kit left its topics on the broker: {sorted(left)}"


def test_the_kit_deletes_its_topics_and_their_acls(stack: StackStatus, tmp_path: Path) -> None:
    done = _run_case("community-office", "test_each_record_becomes_exactly_one_valid_event",
                     tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    left = _kit_topics(stack.kafka_bootstrap, done.pid)
    assert not left, f"the kit left {len(left)} topics on the broker: {sorted(left)}"
    acls_left = _kit_acls(stack.kafka_bootstrap, done.pid)
    assert not acls_left, f"the kit left {len(acls_left)} ACLs: {sorted(acls_left)[:3]}"
