"""The ``stack`` fixture, for every test that needs the real local stack (Kafka broker +
PostgreSQL), and the ``stack`` marker's check. Registered for the whole test tree by
``pytest_plugins`` in tests/conftest.py.

``stack`` (session scope) brings the stack of ``StackConfig.from_env()`` up once — the
same one `lifecert stack up` runs, honouring LIFECERT_DATA_DIR, LIFECERT_KAFKA_PORT... —
and yields its :class:`~lifecert_dev.stack.StackStatus` (``.kafka_bootstrap``,
``.postgres_dsn``, ``.config``). At the end of the session it leaves the stack as it found
it: stopped again if the session started it (so CI ends clean), running if it already ran
(so a developer's `lifecert stack up` survives a test run). When the session made
PostgreSQL's fallback folder (/var/tmp/lifecert-<hash>, used when the clone lies in a folder
the `postgres` user cannot enter, as CI's may), it removes it again: it lies outside the
clone, and each CI clone has its own. Set LIFECERT_KEEP_STACK=1 to keep a stack the
session started running, which makes the next run's start instant.

Every test that needs the stack is marked ``stack`` (``@pytest.mark.stack``, or
``pytestmark = pytest.mark.stack`` for a whole module), so that ``pytest -m "not stack"``
runs the rest with nothing started. The marker cannot be forgotten: a test whose fixtures
reach one of :data:`STACK_FIXTURES` (directly or through another fixture, such as the
API's ``box``) fails at set-up, before anything starts, unless it is marked; and the
``stack`` and ``private_stack_env`` fixtures themselves refuse an unmarked test that asks
for them by ``request.getfixturevalue``.

Tests must not stop this shared stack; a test that needs its own lifecycle makes a private
stack (see ``private_stack_env`` in tests/dev/stack/conftest.py). The one kind of test that
does stop it on purpose (a broker and database restart under a running pipeline) is marked
``exclusive``: `make test` runs the others in parallel (pytest-xdist) and these alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecert_dev.stack import StackConfig, StackStatus, down, postgres, status, up

MARKER = "stack"
# The fixtures that are, or start, a real Kafka broker and PostgreSQL.
STACK_FIXTURES = frozenset({"stack", "private_stack_env"})

_current: pytest.Item | None = None  # the test being set up or run


def require_marker(item: pytest.Item, fixtures: Iterable[str]) -> None:
    """Fail ``item`` (before its fixtures start anything) if it uses ``fixtures`` of the
    stack without the ``stack`` marker."""
    used = sorted(STACK_FIXTURES.intersection(fixtures))
    if used and item.get_closest_marker(MARKER) is None:
        pytest.fail(
            f"{item.nodeid} needs the real Kafka broker and PostgreSQL (fixture "
            f"{', '.join(repr(name) for name in used)}, directly or through another "
            f"fixture) but is not marked {MARKER!r}: add @pytest.mark.{MARKER} to the test "
            f"(or pytestmark = pytest.mark.{MARKER} to its module), so that "
            f"`pytest -m \"not {MARKER}\"` leaves it out",
            pytrace=False,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _current
    _current = item
    require_marker(item, getattr(item, "fixturenames", ()))


@dataclass
class _Found:
    """How the stack was found before a run, to leave it so after the run."""

    cfg: StackConfig
    was_running: bool
    new_fallback: Path | None  # PostgreSQL's fallback folder, if the run is to make it

    @classmethod
    def now(cls) -> _Found:
        cfg = StackConfig.from_env()
        fallback = postgres.locate(cfg).pg_dir
        new = fallback.parent if fallback and not fallback.parent.exists() else None
        return cls(cfg, status(cfg).running, new)

    def restore(self) -> None:
        if not self.was_running and os.environ.get("LIFECERT_KEEP_STACK") != "1":
            down(self.cfg)
            if self.new_fallback is not None:
                shutil.rmtree(self.new_fallback, ignore_errors=True)


_found_key = pytest.StashKey[_Found]()
_used_key = pytest.StashKey[bool]()
# Whether this process's session used the stack (a worker tells the controller at its end).
_USED = "lifecert_stack_used"
_stack_used = False


def _xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _xdist_controller(config: pytest.Config) -> bool:
    """The process that hands tests to pytest-xdist's workers (``-n N``, N > 0)."""
    return not _xdist_worker(config) and bool(getattr(config.option, "numprocesses", 0))


def pytest_configure(config: pytest.Config) -> None:
    # With parallel workers each worker's session brings the stack up (`up` is serialised
    # by the stack's file lock and starts only what does not run); none of them may stop
    # it while the others still test: the controller, which outlives them, does.
    if _xdist_controller(config):
        config.stash[_found_key] = _Found.now()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _xdist_worker(session.config):
        session.config.workeroutput[_USED] = _stack_used


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_testnodedown(node: object, error: object) -> None:
    if getattr(node, "workeroutput", {}).get(_USED):
        node.config.stash[_used_key] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    # Only when a worker used the stack: a parallel run of tests that need none (`-m "not
    # stack" -n 2`) leaves a running stack alone, as a single process does.
    found = config.stash.get(_found_key, None)
    if found is not None and config.stash.get(_used_key, False):
        found.restore()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[StackStatus]:
    if _current is not None:  # asked for by request.getfixturevalue, past the set-up check
        require_marker(_current, ["stack"])
    global _stack_used
    _stack_used = True
    found = _Found.now()
    st = up(found.cfg)
    yield st
    if not _xdist_worker(request.config):
        found.restore()
