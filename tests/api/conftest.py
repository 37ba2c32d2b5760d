"""Fixtures of the API tests.

The generated gRPC code is (re)built once per session from proto/ (as `make setup` does),
so the tests never run against stale contracts. ``box`` is a sandbox of the API on the
stack fixture's broker and database (own PKI, database, topic prefix) with the retirees
of ``api_world`` enrolled on its events topic; ``server`` is the real server process,
started once for the session, with a face-encoding key of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lifecert.api.build_protos import ensure_built

ensure_built()

from lifecert.events.interchange import parse_line  # noqa: E402
from lifecert.pipeline.topics import EVENTS  # noqa: E402
from lifecert_dev.api_sandbox import Sandbox, ServerProcess  # noqa: E402 - after the build
from lifecert_dev.stack import StackStatus  # noqa: E402
from tests.api.api_world import ID_NUMBERS, RETIREES  # noqa: E402


@pytest.fixture(scope="session")
def box(stack: StackStatus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.create(stack.postgres_dsn, stack.kafka_bootstrap,
                        tmp_path_factory.mktemp("api")) as sandbox:
        sandbox.publish([(EVENTS, parse_line(line)) for line in RETIREES])
        sandbox.register_second_factors(ID_NUMBERS.items())
        yield sandbox


@pytest.fixture(scope="session")
def face_key() -> str:
    from lifecert.sealing import generate_key

    return generate_key()


@pytest.fixture(scope="session")
def server(box: Sandbox, face_key: str) -> ServerProcess:
    # loading the face engine takes a minute or more on a loaded machine
    return box.start_server(env={"LIFECERT_FACE_KEY": face_key}, timeout=240)
