"""Topic layout and routing, read from ``topics.toml`` beside this module."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from lifecert.events.catalogue import ALL_TYPES

# Roles of the topics in topics.toml.
EVENTS = "events"
CLOCK = "clock"
PAYMENT_INSTRUCTIONS = "payment_instructions"
ALERTS = "alerts"
TASKS = "tasks"
VERDICTS = "verdicts"
STATUS = "status"
DEAD_LETTERS = "dead_letters"
ASSISTANCE_RESULTS = "assistance_results"
CONNECTOR_CHECKPOINTS = "connector_checkpoints"
CONNECTOR_STATUS = "connector_status"
CONSULAR_CASES = "consular_cases"
HOME_VISIT_REPORTS = "home_visit_reports"


#: a TopicSpec's replication meaning "the broker's default.replication.factor"
BROKER_DEFAULT_REPLICATION = -1


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    partitions: int
    replication: int  # BROKER_DEFAULT_REPLICATION: the cluster's default
    carries: tuple[str, ...]
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicLayout:
    topics: dict[str, TopicSpec]
    prefix: str = ""

    def __getitem__(self, role: str) -> TopicSpec:
        return self.topics[role]

    def for_type(self, type_name: str) -> TopicSpec:
        """The topic an event of ``type_name`` is published to (ClockTick: the input log;
        the scheduler also records it on the clock topic)."""
        for spec in self.topics.values():
            if type_name in spec.carries:
                return spec
        raise KeyError(f"no topic carries {type_name!r}; see lifecert/pipeline/topics.toml")

    @property
    def output_roles(self) -> tuple[str, ...]:
        return (PAYMENT_INSTRUCTIONS, ALERTS, TASKS, VERDICTS)


def layout(prefix: str | None = None) -> TopicLayout:
    """The topic layout; every name gets ``prefix`` (default: the environment variable
    ``LIFECERT_TOPIC_PREFIX``, else none), so that tests and several campaigns can share a
    broker without sharing topics."""
    if prefix is None:
        prefix = os.environ.get("LIFECERT_TOPIC_PREFIX", "")
    return _layout(prefix)


@cache
def _layout(prefix: str) -> TopicLayout:
    text = (resources.files("lifecert.pipeline") / "topics.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    defaults = data["defaults"]
    topics: dict[str, TopicSpec] = {}
    for role, table in data["topics"].items():
        carries = tuple(table["carries"])
        unknown = [t for t in carries if t not in ALL_TYPES]
        if unknown:
            raise ValueError(f"topics.toml: topic {role!r} carries unknown types {unknown}")
        topics[role] = TopicSpec(
            role=role,
            name=prefix + table["name"],
            partitions=int(table.get("partitions", defaults["partitions"])),
            replication=int(table.get("replication", defaults["replication"])),
            carries=carries,
            config={k: str(v) for k, v in table.get("config", {}).items()},
        )
    return TopicLayout(topics, prefix)
