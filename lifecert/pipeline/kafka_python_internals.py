"""kafka-python's internals lifecert relies on, in one place, each guarded by a hash of its
installed source (see :mod:`lifecert.library_internals`).

``tests/pipeline/test_kafka_python_internals.py`` fails, naming the entry and what to
re-check, when the installed kafka-python is not :data:`KAFKA_PYTHON_VERSION` (pinned in
``pyproject.toml``) or when an entry's source changed. After an upgrade: re-check each entry
the test names, then record the new hashes (``python -m
lifecert.pipeline.kafka_python_internals`` prints them).
"""

from __future__ import annotations

import sys
from typing import Any

from lifecert import library_internals
from lifecert.library_internals import Internal

# The exact version the entries below were read against (pyproject.toml pins it).
KAFKA_PYTHON_VERSION = "3.0.12"

INTERNALS: tuple[Internal, ...] = (
    Internal(
        "KafkaProducer._sender", "called",
        ("kafka.producer.kafka:KafkaProducer.__init__",
         "kafka.producer.kafka:KafkaProducer.close",
         "kafka.producer.sender:Sender.force_close"),
        "broker_clients.close_now stops a producer that holds records it cannot deliver: "
        "close(timeout) flushes first and raises KafkaTimeoutError when records are still "
        "pending, so it never reaches its own force close, and the sender thread lives on, "
        "resending (about 2,250 sends/s seen with the topic deleted under it). close_now "
        "calls the sender thread's force_close and joins it, then close(0).",
        "that __init__ still keeps the sender thread in self._sender, that Sender."
        "force_close still drops the pending records and ends the thread's loop, and "
        "whether close(timeout) now force-closes by itself when its flush times out (then "
        "close_now can just call it); tests/connectors/sdk/test_runner_broker_lost.py shows "
        "the spin if it comes back",
        "22cea102f9e82735706a30aa4c4c1b11367003ac6ce0229d4a81c3fb4740b25c",
    ),
)


def force_close_sender(producer: Any) -> None:
    """End a KafkaProducer's sender thread without sending what it still holds."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5)


def changed() -> list[tuple[Internal, str]]:
    """The entries whose installed source no longer has the recorded hash."""
    return library_internals.changed(INTERNALS)


def main() -> int:
    """Print each entry's current hash (after an upgrade, once its re-check is done)."""
    return library_internals.print_hashes(INTERNALS)


if __name__ == "__main__":
    sys.exit(main())
