"""The broker's clients (kafka-python) of the live pipeline: the producer
every lifecert writer uses, topic creation from the layout, key partitioning, offsets.

    from lifecert.endpoints import kafka_bootstrap
    from lifecert.pipeline import broker_clients, topics

    bootstrap = kafka_bootstrap(args.bootstrap)  # flag, env, or local stack
    with broker_clients.admin_client(bootstrap) as admin:
        broker_clients.ensure_topics(admin, topics.layout())
    producer = broker_clients.producer(bootstrap)            # idempotent, acks=all, batched
    broker_clients.partition_for_key("FS000104729", 6)       # what Kafka's partitioner picks

Every client logs in as the component its process says it is (SASL/SCRAM-SHA-512; the
broker authorizes each request with the ACLs of ``acls.toml``): :func:`client_security`
gives the settings for kafka-python, aiokafka and faust alike.

Every failure to reach or use the broker is raised as :class:`KafkaUnavailable` (or
:class:`TopicProblem` for a topic that is missing or differs from ``topics.toml``), with a
message that says what to do; kafka-python's own exceptions are chained, never shown raw.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner import murmur2

from lifecert.endpoints import BOOTSTRAP_ENV
from lifecert.pipeline import credentials as creds
from lifecert.pipeline import kafka_python_internals
from lifecert.pipeline.broker_errors import KafkaUnavailable, TopicProblem, describe_error
from lifecert.pipeline.topics import BROKER_DEFAULT_REPLICATION, TopicLayout, TopicSpec

__all__ = [
    "PRODUCER_SETTINGS",
    "ClientSecurity",
    "TopicState",
    "admin_client",
    "client_security",
    "close_now",
    "consumer",
    "describe_topics",
    "end_offsets",
    "ensure_topics",
    "partition_for_key",
    "partitions_of",
    "producer",
    "read_to_end",
]

CLIENT_ID = "lifecert"
# How long a client waits for the broker to answer at all before giving up.
CONNECT_TIMEOUT_S = 10.0

# The producer of every lifecert writer (DESIGN.md, docs/pipeline.md "Delivery"): the broker
# writes each record once per partition and in send order whatever the retries
# (idempotence needs at most 5 requests in flight), and acknowledges it only once every
# in-sync replica has it. Records are sent in batches of up to 1 MiB, waiting up to 20 ms
# to fill one: publishing a log is throughput-bound, and a record's latency matters little.
PRODUCER_SETTINGS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "max_in_flight_requests_per_connection": 5,
    "linger_ms": 20,
    "batch_size": 1 << 20,
    "compression_type": None,
    "delivery_timeout_ms": 120_000,
    # A topic missing from the broker is an error to report ("run lifecert topics create"),
    # never a topic to create on the fly with the broker's default partitions and config.
    "allow_auto_create_topics": False,
}




# --------------------------------------------------------------------- connection


def _unreachable(bootstrap: str, exc: BaseException) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot reach the Kafka broker at {bootstrap}: {describe_error(exc)}. Start the local "
        f"stack with `lifecert stack up` (see `lifecert stack status`), or point "
        f"--bootstrap / {BOOTSTRAP_ENV} at a running broker."
    )


@dataclass(frozen=True)
class ClientSecurity:
    """How a client logs in to the broker: SASL/SCRAM-SHA-512 as ``username``, over TLS
    (SASL_SSL) when a CA file is given, else SASL_PLAINTEXT (the local stack, loopback)."""

    component: str
    username: str
    password: str = field(repr=False)
    protocol: str = "SASL_PLAINTEXT"
    ca_file: str | None = None

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of KafkaProducer / KafkaConsumer / KafkaAdminClient."""
        out: dict[str, Any] = {
            "security_protocol": self.protocol,
            "sasl_mechanism": creds.MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if self.ca_file:
            out["ssl_cafile"] = self.ca_file
        return out

    def ssl_context(self) -> Any:
        if self.protocol != "SASL_SSL":
            return None
        import ssl

        return ssl.create_default_context(cafile=self.ca_file)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of AIOKafkaConsumer / AIOKafkaProducer."""
        out = {k: v for k, v in self.kafka_python().items() if k != "ssl_cafile"}
        if self.protocol == "SASL_SSL":
            out["ssl_context"] = self.ssl_context()
        return out

    def faust(self) -> Any:
        """faust's ``broker_credentials``."""
        import faust

        return faust.SASLCredentials(
            username=self.username, password=self.password, mechanism=creds.MECHANISM,
            ssl_context=self.ssl_context(),
        )


def client_security(component: str | None = None, bootstrap: str | None = None) -> ClientSecurity:
    """How a client of ``component`` (default: the component this process acts as, see
    :mod:`lifecert.pipeline.credentials`) logs in. Protocol: ``SASL_SSL`` when
    ``LIFECERT_KAFKA_CA_FILE`` names the CA that signed the brokers' certificates (docker/),
    else ``LIFECERT_KAFKA_SECURITY_PROTOCOL`` (default ``SASL_PLAINTEXT``, the local
    stack's loopback listener). SASL_PLAINTEXT is refused to a ``bootstrap`` host that is
    not loopback: usernames, topics and records would cross the network in the clear.
    Raises :class:`KafkaUnavailable` when there are no credentials or no TLS off loopback."""
    try:
        found = creds.credentials_for(component)
    except creds.CredentialsMissing as exc:
        raise KafkaUnavailable(str(exc)) from None
    ca_file = os.environ.get(creds.CA_ENV, "").strip() or None
    protocol = os.environ.get(creds.PROTOCOL_ENV, "").strip().upper()
    protocol = protocol or ("SASL_SSL" if ca_file else "SASL_PLAINTEXT")
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        raise KafkaUnavailable(
            f"{creds.PROTOCOL_ENV}={protocol}: the broker takes SASL_PLAINTEXT (loopback) or "
            "SASL_SSL only"
        )
    if protocol == "SASL_PLAINTEXT" and bootstrap:
        remote = [host for host in _hosts(bootstrap) if not _is_loopback(host)]
        if remote:
            raise KafkaUnavailable(
                f"refusing SASL_PLAINTEXT (no TLS) to {', '.join(remote)}, which is not "
                f"loopback: set {creds.CA_ENV} to the CA file that signed the brokers' "
                f"certificates (or {creds.PROTOCOL_ENV}=SASL_SSL)"
            )
    return ClientSecurity(found.component, found.username, found.password, protocol, ca_file)


def _hosts(bootstrap: str) -> list[str]:
    """The host of each ``host:port`` of a bootstrap list (``[v6]:port`` too)."""
    out = []
    for entry in (e.strip() for e in bootstrap.split(",")):
        if not entry:
            continue
        if entry.startswith("["):
            out.append(entry[1:].split("]", 1)[0])
        else:
            out.append(entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry)
    return out


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client_settings(
    bootstrap: str, connect_timeout: float, component: str | None = None
) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "client_id": CLIENT_ID,
        "bootstrap_timeout_ms": int(connect_timeout * 1000),
        **client_security(component, bootstrap).kafka_python(),
    }


def producer(
    bootstrap: str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
    component: str | None = None, **overrides: Any,
) -> KafkaProducer:
    """A producer with :data:`PRODUCER_SETTINGS` (``overrides`` replace single settings),
    logged in as ``component`` (default: this process's). Raises
    :class:`KafkaUnavailable` when the broker does not answer."""
    settings = {**_client_settings(bootstrap, connect_timeout, component), **PRODUCER_SETTINGS}
    settings["max_block_ms"] = int(connect_timeout * 1000)
    settings.update(overrides)
    try:
        return KafkaProducer(**settings)
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from exc


def close_now(producer: KafkaProducer) -> None:
    """Close ``producer`` at once, dropping the records it still holds.

    kafka-python 3.0.12's ``close(timeout)`` flushes first and raises KafkaTimeoutError
    when records are still pending, so it never reaches its own force close: the sender
    thread and its metadata refresh loop live on, and a record it cannot deliver (its topic
    deleted, its broker replaced) keeps that thread busy. This does what ``close(0)`` means
    to do: the sender's ``force_close`` (kafka-python's private ``_sender``, listed and
    hash-guarded in :mod:`lifecert.pipeline.kafka_python_internals`), then ``close``,
    whose flush has nothing left to wait for."""
    try:
        producer.close(timeout=0)
        return
    except KafkaError:
        pass
    kafka_python_internals.force_close_sender(producer)
    producer.close(timeout=0)


def consumer(
    bootstrap: str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
    component: str | None = None, **overrides: Any,
) -> KafkaConsumer:
    """A consumer without a group (callers ``assign`` partitions themselves), reading
    from the earliest offset, never committing, never creating topics."""
    settings = {
        **_client_settings(bootstrap, connect_timeout, component),
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "allow_auto_create_topics": False,
        "request_timeout_ms": 30_000,
    }
    settings.update(overrides)
    try:
        return KafkaConsumer(**settings)
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from exc


@contextmanager
def admin_client(
    bootstrap: str, *, connect_timeout: float = CONNECT_TIMEOUT_S, component: str | None = None
) -> Iterator[KafkaAdminClient]:
    """An admin client, closed on exit. Broker errors inside the block are raised as
    :class:`KafkaUnavailable` (``TopicProblem`` passes through)."""
    try:
        admin = KafkaAdminClient(**_client_settings(bootstrap, connect_timeout, component))
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from exc
    try:
        yield admin
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"the Kafka broker at {bootstrap} refused an admin request: {describe_error(exc)}"
        ) from exc
    finally:
        admin.close()


# ------------------------------------------------------------------ partitioning


def partition_for_key(key: bytes | str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (murmur2 of the key
    bytes, sign bit cleared, modulo the partition count): the same in kafka-python, the
    Java client and faust, so the worker, the projections and the publisher agree."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    data = key.encode("utf-8") if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions


# ------------------------------------------------------------------------ topics


@dataclass(frozen=True)
class TopicState:
    """A topic of the layout as the broker has it (``exists`` False: not created yet)."""

    spec: TopicSpec
    exists: bool
    partitions: int = 0
    replication: int = 0
    config: dict[str, str] = field(default_factory=dict)
    created: bool = False  # by this call of ensure_topics

    @property
    def problems(self) -> list[str]:
        """How the topic differs from topics.toml in what the pipeline relies on:
        partition count and the configured keys (replication is left to the deployment:
        the broker's default.replication.factor)."""
        if not self.exists:
            return [f"topic {self.spec.name} does not exist (run `lifecert topics create`)"]
        out = []
        if self.partitions != self.spec.partitions:
            out.append(
                f"topic {self.spec.name} has {self.partitions} partitions, topics.toml says "
                f"{self.spec.partitions}"
            )
        for key, want in sorted(self.spec.config.items()):
            have = self.config.get(key)
            if have != want:
                out.append(
                    f"topic {self.spec.name} has {key}={have}, topics.toml says {key}={want}"
                )
        return out

    @property
    def notes(self) -> list[str]:
        if (self.exists and self.spec.replication != BROKER_DEFAULT_REPLICATION
                and self.replication != self.spec.replication):
            return [
                f"topic {self.spec.name} has replication {self.replication}, topics.toml "
                f"says {self.spec.replication}"
            ]
        return []


def describe_topics(admin: KafkaAdminClient, layout: TopicLayout) -> list[TopicState]:
    """Every topic of ``layout`` as it is on the broker, in layout order. ``config`` holds
    the settings that differ from the broker's defaults."""
    specs = list(layout.topics.values())
    described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
    present = [
        s for s in specs
        if described.get(s.name, {}).get("error_code", 3) == 0
        and described[s.name].get("partitions")
    ]
    configs: dict[str, dict[str, Any]] = {}
    if present:
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in present]
        configs = admin.describe_configs(resources).get("topic", {})
    states = []
    for spec in specs:
        if spec not in present:
            states.append(TopicState(spec, exists=False))
            continue
        parts = described[spec.name]["partitions"]
        replication = max(len(p.get("replica_nodes") or ()) for p in parts)
        config = {k: str(v.get("value")) for k, v in configs.get(spec.name, {}).items()}
        states.append(TopicState(spec, True, len(parts), replication, config))
    return states


def ensure_topics(
    admin: KafkaAdminClient, layout: TopicLayout, *, timeout: float = 30.0
) -> list[TopicState]:
    """Create every topic of ``layout`` that does not exist yet, with its partitions,
    replication and config, and the ACLs of the layout (acls.toml) when it created one;
    existing ones are left as they are (idempotent). Waits until each has a leader for
    every partition, and returns them as the broker has them (``created`` marks the new
    ones; see ``TopicState.problems`` for differences)."""
    before = {s.spec.name: s for s in describe_topics(admin, layout)}
    missing = [spec for spec in layout.topics.values() if not before[spec.name].exists]
    created: set[str] = set()
    if missing:
        request = {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication,
                "configs": dict(spec.config),
            }
            for spec in missing
        }
        response = admin.create_topics(
            request, timeout_ms=int(timeout * 1000), raise_errors=False
        )
        errors = []
        for topic in response.get("topics", []):
            code = topic.get("error_code", 0)
            if code == 0:
                created.add(topic["name"])
            elif code != TopicAlreadyExistsError.errno:  # created meanwhile by someone else
                errors.append(f"{topic['name']}: {topic.get('error_message') or code}")
        if errors:
            raise TopicProblem("the broker refused to create topics: " + "; ".join(errors))
        admin.wait_for_topics([spec.name for spec in missing], timeout_ms=int(timeout * 1000))
        from lifecert.pipeline import acls

        acls.apply(admin, layout)
    states = describe_topics(admin, layout)
    return [
        TopicState(s.spec, s.exists, s.partitions, s.replication, s.config, s.spec.name in created)
        for s in states
    ]


def partitions_of(client: KafkaConsumer, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (sorted), from a consumer's metadata (a
    producer would wait ``max_block_ms`` for a missing topic); raises
    :class:`TopicProblem` when the topic does not exist."""
    try:
        found = client.partitions_for_topic(topic)
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot read the metadata of {topic}: {describe_error(exc)}"
        ) from exc
    if not found:
        raise TopicProblem(
            f"topic {topic} does not exist; create the topics with `lifecert topics create` "
            f"(with the same --prefix / LIFECERT_TOPIC_PREFIX)"
        )
    return sorted(found)


# ----------------------------------------------------------------------- offsets


def end_offsets(client: KafkaConsumer, topic: str) -> dict[int, int]:
    """Partition -> the offset the next record written to it will get (its end)."""
    tps = [TopicPartition(topic, p) for p in partitions_of(client, topic)]
    try:
        ends = client.end_offsets(tps)
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"cannot read the end offsets of {topic}: {describe_error(exc)}"
        ) from exc
    return {tp.partition: offset for tp, offset in ends.items()}


def read_to_end(
    client: KafkaConsumer,
    topic: str,
    *,
    partitions: Iterable[int] | None = None,
    timeout: float = 60.0,
) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` (or of ``partitions``) from the beginning up to the end
    offsets taken when called; in offset order within a partition, partitions interleaved
    (group by ``record.partition`` for a partition's log). Raises
    :class:`KafkaUnavailable` when the end is not reached within ``timeout`` seconds."""
    ends = end_offsets(client, topic)
    if partitions is not None:
        wanted = set(partitions)
        ends = {p: o for p, o in ends.items() if p in wanted}
    tps = [TopicPartition(topic, p) for p in sorted(ends)]
    if not tps:
        return
    client.assign(tps)
    client.resume(*tps)  # paused by an earlier read_to_end of the same consumer
    starts = client.beginning_offsets(tps)
    for tp in tps:
        client.seek(tp, starts[tp])
    remaining = {tp for tp in tps if ends[tp.partition] > starts[tp]}
    deadline = time.monotonic() + timeout
    while remaining:
        if time.monotonic() > deadline:
            left = ", ".join(
                f"{tp.partition}@{client.position(tp)}/{ends[tp.partition]}"
                for tp in sorted(remaining, key=lambda t: t.partition)
            )
            raise KafkaUnavailable(
                f"reading {topic} to its end took more than {timeout:.0f} s "
                f"(partition@position/end: {left})"
            )
        try:
            batches: Mapping[TopicPartition, list[ConsumerRecord]] = client.poll(
                timeout_ms=500
            )
        except KafkaError as exc:
            raise KafkaUnavailable(f"cannot read {topic}: {describe_error(exc)}") from exc
        for tp, records in batches.items():
            end = ends[tp.partition]
            for record in records:
                if record.offset < end:
                    yield record
        # Checked for every partition, not only those that returned records: the position
        # also moves over offsets without records (transaction markers, compacted gaps).
        for tp in [tp for tp in remaining if client.position(tp) >= ends[tp.partition]]:
            remaining.discard(tp)
            client.pause(tp)
