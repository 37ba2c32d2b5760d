"""Shared fixtures: both replay implementations behind one signature.

``replay_impl`` is parametrized over the independent reference fold (``tests/reference``)
and the production fold (``lifecert.replay.replay_lines``); a test that takes it runs
against both. ``reference_impl`` and ``production_impl`` give one of them.

Each is a callable ``impl(lines, until=None) -> result`` where ``result`` has
``.instructions`` (JSON-form dicts), ``.statuses`` (retiree id -> status) and
``.rejections`` (dicts with ``line`` and ``reason``). The fixtures are session-scoped so
that hypothesis tests may use them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from lifecert import replay
from lifecert.pipeline.credentials import ADMIN, set_process_component
from lifecert_dev.stack import StackStatus
from tests.reference import reference_replay

POLICY = "foshan-2017"

# Hypothesis profiles, loaded before any test module is imported. `make test` (and so CI)
# sets HYPOTHESIS_PROFILE=thorough: every property at its full example count (the counts
# written in the tests, through tests.helpers.examples; 100 where none is written). Without
# it the quick loop runs a tenth of them. Both keep what Hypothesis itself chose for this
# machine (its "ci" profile, derandomized, when it detects CI; else its default).
_AMBIENT = settings.default
settings.register_profile("thorough", _AMBIENT, max_examples=100)
settings.register_profile("quick", _AMBIENT, max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

Impl = Callable[..., Any]


def _reference() -> Impl:
    def impl(lines: list[str], until: dt.date | None = None, **options: Any) -> Any:
        return reference_replay(lines, until=until, **options)

    impl.__name__ = "reference"
    return impl


def _production() -> Impl:
    def impl(lines: list[str], until: dt.date | None = None) -> Any:
        return replay.replay_lines(lines, policy_name=POLICY, until=until)

    impl.__name__ = "production"
    return impl


@pytest.fixture(scope="session")
def reference_impl() -> Impl:
    return _reference()


@pytest.fixture(scope="session")
def production_impl() -> Impl:
    return _production()


@pytest.fixture(scope="session", params=["reference", "production"])
def replay_impl(request: pytest.FixtureRequest) -> Impl:
    """Each test that takes this runs once per implementation."""
    if request.param == "reference":
        return _reference()
    return _production()


# Test modules whose own set-up and in-process components do not yet say which Kafka
# principal they are: they still run with the admin as the default identity of every
# client they make (so an ACL gap of an in-process component cannot fail them). Remove a
# module from here once its set-up runs in `acting_as(ADMIN)` and its components as
# themselves.
ADMIN_BY_DEFAULT = frozenset({
    "tests/api/test_api_face.py",
    "tests/api/test_api_hostile_text.py",
    "tests/api/test_api_lockout.py",
    "tests/connectors/test_connectors_cli.py",
    "tests/connectors/payment_ledger/test_payment_ledger_ledger.py",
    "tests/connectors/payment_ledger/test_payment_ledger_reconcile.py",
    "tests/connectors/pension_master/test_pension_master_crash.py",
    "tests/connectors/pension_master/test_pension_master_outbox.py",
    "tests/face/test_liveness.py",
    "tests/face/test_screenlight.py",
    "tests/pipeline/test_clock.py",
    "tests/pipeline/test_end_to_end.py",
    "tests/keystore/test_keystore.py",
    "tests/pipeline/test_partners_end_to_end.py",
    "tests/pipeline/test_personal_data.py",
    "tests/streams/test_worker.py",
    "tests/connectors/sdk/test_connector_sdk.py",
})
_ROOT = Path(__file__).resolve().parent.parent
_GONE = sorted(path for path in ADMIN_BY_DEFAULT if not (_ROOT / path).is_file())
if _GONE:  # a moved module would silently leave the list and run as itself
    raise RuntimeError(f"tests/conftest.py: ADMIN_BY_DEFAULT names modules that do not exist: "
                       f"{', '.join(_GONE)}; write their new paths or remove them")


@pytest.fixture(scope="module", autouse=True)
def _kafka_identity_of_unconverted_modules(request: pytest.FixtureRequest) -> Iterator[None]:
    path = Path(str(request.node.path)).resolve().relative_to(_ROOT).as_posix()
    if path not in ADMIN_BY_DEFAULT:
        yield
        return
    set_process_component(ADMIN)
    try:
        yield
    finally:
        set_process_component(None)


# The session-scoped `stack` fixture (the real Kafka broker + PostgreSQL), for any test
# marked `stack`, and the check that every test using it is.
pytest_plugins = ["tests.fixtures_stack"]

# No process-wide Kafka identity: a client made outside an acting_as block fails with
# CredentialsMissing. The tests' own set-up and checks (making topics, publishing a
# campaign, reading the outputs) run inside `acting_as(ADMIN)`; in-process components
# (the API's feeds, the connector kit's runner, live.publish) inside their own component's
# block, and the processes the tests start log in as themselves, so a missing grant in
# lifecert/pipeline/acls.toml fails the test that needs it.


@pytest.fixture
def connector_kit_bootstrap(stack: StackStatus) -> str:
    """The connector test kit runs against the project's own local stack."""
    return stack.kafka_bootstrap


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n N`` with xdist's default ``--dist load`` (the README's quick loop), the tests
    of tests/face run in one process: they share the face engine, whose dlib models and
    enrolled photos (session fixtures of tests/face/conftest.py) each process would load
    and compute again; every other test is handed out alone, as ``load`` does. (xdist's
    ``xdist_group`` marks would say this, but pytest 9.2 no longer lets xdist apply them:
    pytest-dev/pytest-xdist#1386.) Other ``--dist`` modes (``make test``: loadfile) are
    xdist's own."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FaceTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/face" if nodeid.startswith("tests/face/") else nodeid

    return FaceTestsTogether(config, log)
