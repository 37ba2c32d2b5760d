"""The broker is not open: every client logs in (SASL/SCRAM-SHA-512) as a component, and
each component may do only what lifecert/pipeline/acls.toml grants it. Tried through the
real broker of the local stack, on a topic set of the test's own (unique prefix) whose
ACLs `ensure_topics` made, as `lifecert topics create` does."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAuthorizationFailedError,
)

from lifecert.pipeline import acls, broker_clients
from lifecert.pipeline.credentials import ADMIN, COMPONENTS
from lifecert.pipeline.topics import (
    ALERTS,
    CLOCK,
    EVENTS,
    PAYMENT_INSTRUCTIONS,
    STATUS,
    TopicLayout,
    layout,
)
from lifecert_dev.stack import StackStatus

# A refusal must come as an answer, never as a hang: every try is bounded by this.
BOUND_S = 15.0
REFUSED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


def refused(outcome: object) -> bool:
    """A write or read the broker refused for want of an ACL (kafka-python wraps an
    idempotent producer's refused InitProducerId in a plain KafkaError)."""
    return isinstance(outcome, REFUSED) or (
        isinstance(outcome, KafkaError) and "AuthorizationFailed" in str(outcome)
    )


@pytest.fixture(scope="module")
def topics(stack: StackStatus) -> Iterator[TopicLayout]:
    lay = layout(f"acl{uuid.uuid4().hex[:10]}.")
    with broker_clients.admin_client(stack.kafka_bootstrap, component=ADMIN) as admin:
        broker_clients.ensure_topics(admin, lay)
    # one payment instruction for the readers to find
    producer = broker_clients.producer(stack.kafka_bootstrap, component="worker")
    producer.send(lay[PAYMENT_INSTRUCTIONS].name, key=b"FS1", value=b"instruction").get(30)
    producer.close()
    yield lay
    with broker_clients.admin_client(stack.kafka_bootstrap, component=ADMIN) as admin:
        admin.delete_topics([s.name for s in lay.topics.values()])


def _write(bootstrap: str, component: str, topic: str) -> KafkaError | None:
    """None when ``component`` wrote a record to ``topic``, else the broker's refusal."""
    producer = broker_clients.producer(bootstrap, component=component, connect_timeout=BOUND_S)
    try:
        producer.send(topic, key=b"FS1", value=b"x").get(timeout=BOUND_S)
        return None
    except KafkaError as exc:
        return exc
    finally:
        producer.close(timeout=5)


def _read(bootstrap: str, component: str, topic: str) -> list[bytes] | KafkaError:
    """The values of ``topic`` as ``component`` reads them from the start, or the refusal."""
    consumer = broker_clients.consumer(bootstrap, component=component, connect_timeout=BOUND_S)
    try:
        tps = [TopicPartition(topic, p) for p in broker_clients.partitions_of(consumer, topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list[bytes] = []
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline and not got:
            for records in consumer.poll(timeout_ms=500).values():
                got += [r.value for r in records]
        return got
    except KafkaError as exc:
        return exc
    finally:
        consumer.close()


@pytest.mark.stack
def test_a_client_without_credentials_can_neither_write_nor_read(
    stack: StackStatus, topics: TopicLayout, caplog: pytest.LogCaptureFixture
) -> None:
    """The SASL listener hangs up on a client that sends a request without logging in:
    the client sees its connection closed (kafka-python logs "socket disconnected") and
    gives up bootstrapping, each within its bound; no test-made timeout stands in for it."""

    def assert_hung_up(make: Callable[[], object]) -> None:
        caplog.clear()
        t0 = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="kafka"), \
                pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            client = make()
            client.close()  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < BOUND_S
        assert any("socket disconnected" in r.getMessage() for r in caplog.records), \
            "the client gave up without the broker closing its connection"

    assert_hung_up(lambda: KafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, bootstrap_timeout_ms=5000, max_block_ms=5000,
    ))
    assert_hung_up(lambda: KafkaConsumer(
        topics[PAYMENT_INSTRUCTIONS].name, bootstrap_servers=stack.kafka_bootstrap,
        bootstrap_timeout_ms=5000, request_timeout_ms=5000, group_id=None,
    ))


@pytest.mark.stack
def test_a_wrong_password_is_refused(stack: StackStatus, topics: TopicLayout) -> None:
    settings = {**broker_clients.client_security("connector").kafka_python(),
                "sasl_plain_password": "not-the-password"}
    t0 = time.monotonic()
    with pytest.raises((SaslAuthenticationFailedError, KafkaError)):
        producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap,
                                 bootstrap_timeout_ms=5000, max_block_ms=5000, **settings)
        try:
            producer.send(topics[EVENTS].name, b"x").get(timeout=5)
        finally:
            producer.close(timeout=1)
    assert time.monotonic() - t0 < BOUND_S


@pytest.mark.stack
def test_the_payment_system_reads_instructions_only(
    stack: StackStatus, topics: TopicLayout
) -> None:
    bootstrap = stack.kafka_bootstrap
    assert _read(bootstrap, "payment-system", topics[PAYMENT_INSTRUCTIONS].name) == [
        b"instruction"
    ]
    assert refused(_write(bootstrap, "payment-system", topics[PAYMENT_INSTRUCTIONS].name))
    for role in (EVENTS, STATUS, ALERTS):
        outcome = _read(bootstrap, "payment-system", topics[role].name)
        assert isinstance(outcome, TopicAuthorizationFailedError), (role, outcome)


@pytest.mark.stack
def test_topics_tail_and_log_dump_read_as_a_reader_that_cannot_write(
    stack: StackStatus, topics: TopicLayout
) -> None:
    """Looking at the log needs no right to change it: `lifecert topics tail` and
    `lifecert log dump` log in as ``reader``, which reads any topic of the layout and
    writes none (tests/commands/test_topics_tail_and_log_dump.py runs both as processes,
    so as the reader)."""
    from lifecert.cli import component_of

    assert component_of("topics", None, "tail") == "reader"
    assert component_of("log", None, "dump") == "reader"
    assert component_of("topics", None, "create") == ADMIN
    bootstrap = stack.kafka_bootstrap
    assert _read(bootstrap, "reader", topics[PAYMENT_INSTRUCTIONS].name) == [b"instruction"]
    outcomes = {role: _write(bootstrap, "reader", spec.name)
                for role, spec in topics.topics.items()}
    assert all(refused(v) for v in outcomes.values()), outcomes
    assert not [g for g in acls.grants(topics) if g.principal == "reader"
                and (g.resource == "GROUP" or g.operation not in ("READ", "DESCRIBE",
                                                                  "DESCRIBE_CONFIGS"))]


# The one documented exception to "only the worker writes outputs" (acls.toml,
# docs/kafka-security.md): the API writes its SecurityAlerts and the face path's
# FraudSuspected to the alerts topic.
OUTPUT_WRITERS_BESIDES_THE_WORKER = {("api", ALERTS)}


@pytest.mark.stack
def test_only_the_worker_writes_outputs_and_it_writes_no_input(
    stack: StackStatus, topics: TopicLayout
) -> None:
    bootstrap = stack.kafka_bootstrap
    outputs = (*topics.output_roles, STATUS)
    for role in outputs:
        assert _write(bootstrap, "worker", topics[role].name) is None, role
    outcomes = {(component, role): _write(bootstrap, component, topics[role].name)
                for component in COMPONENTS if component not in (ADMIN, "worker")
                for role in outputs}
    assert {k for k, v in outcomes.items() if v is None} == OUTPUT_WRITERS_BESIDES_THE_WORKER
    assert all(refused(v) for k, v in outcomes.items()
               if k not in OUTPUT_WRITERS_BESIDES_THE_WORKER), outcomes
    for role in (EVENTS, CLOCK):
        assert refused(_write(bootstrap, "worker", topics[role].name)), role


@pytest.mark.stack
def test_only_the_api_connectors_and_scheduler_write_the_input_log(
    stack: StackStatus, topics: TopicLayout
) -> None:
    writers = {c for c in COMPONENTS if c != ADMIN
               if _write(stack.kafka_bootstrap, c, topics[EVENTS].name) is None}
    assert writers == {"api", "connector", "scheduler"}


@pytest.mark.stack
def test_a_worker_group_of_another_prefix_is_refused(
    stack: StackStatus, topics: TopicLayout
) -> None:
    """The worker joins only its own layout's group ("<prefix>lifecert-worker...")."""
    consumer = KafkaConsumer(
        topics[EVENTS].name, bootstrap_servers=stack.kafka_bootstrap,
        group_id="someone-else", **broker_clients.client_security("worker").kafka_python(),
        request_timeout_ms=int(BOUND_S * 1000),
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            deadline = time.monotonic() + BOUND_S
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()


def test_the_reader_reads_every_topic_of_the_layout() -> None:
    # `topics tail` and `log dump` read any lifecert topic: a topic added to topics.toml
    # must be added to the reader's list too (connector_status once was not).
    assert set(acls.rules()["reader"]["read"]) == set(layout("").topics)


def test_acls_toml_names_only_real_topics_and_principals() -> None:
    lay = layout("x.")
    names = {s.name for s in lay.topics.values()}
    for grant in acls.grants(lay):
        assert grant.principal in COMPONENTS and grant.principal != ADMIN
        if grant.resource == "TOPIC" and grant.pattern == "LITERAL":
            assert grant.name in names
        else:
            assert grant.name.startswith("x.")


def test_a_worker_app_id_outside_its_acls_is_refused_before_it_starts() -> None:
    from streams.worker import build_parser, settings_from

    args = build_parser().parse_args(
        ["--bootstrap", "127.0.0.1:1", "--topic-prefix", "t1.", "--app-id", "t1-worker"]
    )
    with pytest.raises(ValueError, match=r"begins with 't1\.lifecert-worker'"):
        settings_from(args)
    ok = build_parser().parse_args(["--bootstrap", "127.0.0.1:1", "--topic-prefix", "t1."])
    assert settings_from(ok).app_id == "t1.lifecert-worker"


@pytest.mark.stack
def test_topics_create_removes_a_grant_acls_toml_does_not_make(
    stack: StackStatus, capsys: pytest.CaptureFixture[str]
) -> None:
    """acls.toml is the one place that decides: a hand-made ALLOW on the layout's topics
    (here: the payment system writing instructions) is gone after `lifecert topics
    create`."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    from lifecert import cli

    bootstrap = stack.kafka_bootstrap
    lay = layout(f"acl{uuid.uuid4().hex[:10]}.")
    instructions = lay[PAYMENT_INSTRUCTIONS].name
    try:
        assert cli.main(["topics", "create", "--bootstrap", bootstrap,
                         "--prefix", lay.prefix]) == 0
        stray = ACL("User:payment-system", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                    ResourcePattern(ResourceType.TOPIC, instructions,
                                    ACLResourcePatternType.LITERAL))
        with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
            assert not admin.create_acls([stray])["failed"]
        deadline = time.monotonic() + BOUND_S
        while _write(bootstrap, "payment-system", instructions) is not None:
            assert time.monotonic() < deadline, "the hand-made grant never took effect"
            time.sleep(0.2)
        capsys.readouterr()
        assert cli.main(["topics", "create", "--bootstrap", bootstrap,
                         "--prefix", lay.prefix]) == 0
        assert "User:payment-system WRITE TOPIC " + instructions in capsys.readouterr().err
        assert refused(_write(bootstrap, "payment-system", instructions))
    finally:
        with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
            admin.delete_topics([s.name for s in lay.topics.values()])


def test_a_storage_formatted_without_users_is_named_with_what_to_do(tmp_path: Path) -> None:
    """A local stack made before logins were required holds no SCRAM users: `stack up`
    says so and what to delete, rather than waiting for a broker nobody can log in to."""
    from lifecert_dev.stack import StackConfig, StackError
    from lifecert_dev.stack import broker as stack_broker

    cfg = StackConfig.from_env({"LIFECERT_DATA_DIR": str(tmp_path / "old")})
    (cfg.kafka_dir / "kraft-data").mkdir(parents=True)
    (cfg.kafka_dir / "kraft-data" / "meta.properties").write_text("cluster.id=x\n")
    with pytest.raises(StackError, match=r"holds no users.*delete .*kafka"):
        stack_broker.write_config(cfg)


def test_the_format_command_line_holds_no_password(tmp_path: Path) -> None:
    """Every local user can read a process's command line (`ps`): the SCRAM users and
    their passwords go to the storage tool in a private @file, deleted after the format."""
    from lifecert_dev.stack import StackConfig
    from lifecert_dev.stack import broker as stack_broker

    cfg = StackConfig.from_env({"LIFECERT_DATA_DIR": str(tmp_path / "new")})
    passwords = stack_broker.write_config(cfg)
    argfile = tmp_path / "format.args"
    stack_broker.write_format_argfile(argfile, "cid", tmp_path / "server.properties", passwords)
    argv = " ".join(stack_broker.format_command(cfg, "java", tmp_path / "libs", argfile))
    assert not [user for user, password in passwords.items() if password in argv]
    assert "--add-scram" not in argv and f"@{argfile}" in argv
    assert argfile.stat().st_mode & 0o777 == 0o600
    text = argfile.read_text()
    assert all(f"name={user},password={passwords[user]}]" in text
               for user in ("broker", *COMPONENTS))
    assert text.startswith(f'"{stack_broker.STORAGE_TOOL}"\n"format"\n')


@pytest.mark.stack
def test_every_component_logs_in_after_stack_up(stack: StackStatus, topics: TopicLayout) -> None:
    """The users made at format (from the @file) exist: each component's own credentials
    get a metadata answer; the @file with their passwords is gone."""
    from lifecert_dev.stack import StackConfig

    for component in COMPONENTS:
        consumer = broker_clients.consumer(stack.kafka_bootstrap, component=component,
                               connect_timeout=BOUND_S)
        try:
            assert topics[EVENTS].name in consumer.topics(), component
        finally:
            consumer.close()
    credentials_dir = StackConfig.from_env().kafka_dir / "credentials"
    assert not (credentials_dir / "format.args").exists()
