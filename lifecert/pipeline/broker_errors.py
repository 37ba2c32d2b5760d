"""How the live pipeline reports a broker it cannot use: :class:`KafkaUnavailable` (or
:class:`TopicProblem` for a topic that is missing or differs from ``topics.toml``), each with
a message that says what to do; kafka-python's own exceptions are chained, never shown
raw. The Kafka client plumbing (lifecert/pipeline/broker_clients.py) and the ACLs (acls.py) raise
them."""

from __future__ import annotations


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached or refused a request; the message says what to do."""


class TopicProblem(RuntimeError):
    """A topic of the layout is missing, or exists with other partitions or config."""


def describe_error(exc: BaseException) -> str:
    """An exception as one line: its class name and message."""
    text = str(exc).strip()
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name
