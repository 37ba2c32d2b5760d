"""Every internal of faust-streaming and aiokafka that lifecert patches or relies on, in one
place, and the only module that touches them.

faust (and aiokafka under it) promise nothing about their private methods and attributes,
and :mod:`streams.faust_fixes` replaces four of faust's methods with reordered copies. A
new release can change any of them without a word, and the worker would then lose or
stall records silently. So:

- ``pyproject.toml`` pins faust-streaming and aiokafka to the exact versions below;
- :data:`INTERNALS` lists each internal we patch, call, read, write or copy, with why we
  rely on it and what to re-check, and a hash of its installed source;
- the rest of lifecert reaches them only through the functions of this module
  (:func:`replace` refuses a method not listed here);
- ``tests/streams/test_faust_internals.py`` hashes the installed source of every entry
  (the function, class or assignment, read from the installed module's source) and fails
  on a difference, naming the entry and what to re-check; it also fails on a private
  attribute of a faust or aiokafka object used outside this module.

After an upgrade: re-check each entry the test names, adjust our use, then record the new
hash (``python -m streams.faust_internals`` prints every entry's current hash).
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from lifecert import library_internals
from lifecert.library_internals import Internal, NotListed

# The exact versions the entries below were read against (pyproject.toml pins both).
FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"


INTERNALS: tuple[Internal, ...] = (
    Internal(
        "Recovery.on_recovery_completed", "patched",
        ("faust.tables.recovery:Recovery.on_recovery_completed",),
        "faust_fixes._on_recovery_completed is a copy of it with the tail reordered (seek "
        "the stream partitions while paused, resume the flow, then resume the partitions): "
        "faust's order loses records fetched in between after a table recovery.",
        "diff faust's new body against faust_fixes._on_recovery_completed: carry over every "
        "change outside the reordered tail; drop the fix if faust now seeks before resuming.",
        "efa591d45ccd024c248d3916d78c85cb94fe141fa5fb2031a77af82738f5190a",
    ),
    Internal(
        "Recovery._resume_streams", "patched",
        ("faust.tables.recovery:Recovery._resume_streams",),
        "faust_fixes._resume_streams is a copy of it with the same reordered tail (the path "
        "taken when no table needed recovery).",
        "diff faust's new body against faust_fixes._resume_streams and carry over changes.",
        "b6d76e94a17dba55c55f39add65609622e62ff105bba8459253846bf6a7128cd",
    ),
    Internal(
        "Consumer.perform_seek", "wrapped",
        ("faust.transport.consumer:Consumer.perform_seek",),
        "wrapped to also seek partitions without a committed offset to their beginning "
        "(aiokafka's seek_to_committed leaves them where the fetcher is); it is also where "
        "faust loads _committed_offset after an assignment.",
        "that it still seeks every assigned partition to its committed offset and fills "
        "_committed_offset (None for offset 0 or none): streams.app's offset guard reads it.",
        "fb68f0f54dd78421836495124af8cb1aa3c3a55c092aa96535170ed1968387c3",
    ),
    Internal(
        "AIOKafkaConsumerThread._fetch_records", "wrapped",
        ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records",),
        "wrapped to hand aiokafka ActiveOnly(active partitions) instead of faust's live set, "
        "whose emptiness aiokafka reads as 'every partition'.",
        "that it still passes its active_partitions argument on to Fetcher.fetched_records "
        "unchanged (the wrapper's signature must match).",
        "133b172babc46d3ce39923d6eb908fd59329d25bcd4787f18aa64c8b8def44d6",
    ),
    Internal(
        "AIOKafkaConsumerThread._create_worker_consumer", "wrapped",
        ("faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer",),
        "wrapped to lower the consumer's fetch_max_wait_ms (faust passes 1500 ms) to "
        "faust_fixes.FETCH_MAX_WAIT_MS after the consumer is built.",
        "that it still returns the aiokafka consumer before start(), and whether faust now "
        "takes fetch_max_wait_ms from a setting (then use the setting instead).",
        "412318fdc7c64a75dfd2a9d9736c8d68e1e6070858f5a951419679460bf5da86",
    ),
    Internal(
        "AIOKafkaConsumer._fetch_max_wait_ms", "written",
        ("aiokafka.consumer.consumer:AIOKafkaConsumer.__init__",
         "aiokafka.consumer.consumer:AIOKafkaConsumer.start"),
        "set_fetch_max_wait writes it after __init__; start() reads it when it builds the "
        "Fetcher.",
        "that __init__ still stores fetch_max_wait_ms as _fetch_max_wait_ms and start() "
        "still hands that attribute to the Fetcher (not a copy taken in __init__).",
        "26df5067a1042ad1da9f5d8743dbdf9a266efb79b83185305cd69d18a03883ce",
    ),
    Internal(
        "Fetcher.fetched_records", "relied",
        ("aiokafka.consumer.fetcher:Fetcher.fetched_records",),
        "reads an empty (falsy) partition set as every partition (`if partitions and tp "
        "not in partitions`): why ActiveOnly is never falsy and only answers `in`.",
        "how it tests the partitions argument: ActiveOnly supports bool() and `in` only.",
        "6e40c7282b19e72de4a071fdf0c87735131ed721ac1e3dc4525d184560218fda",
    ),
    Internal(
        "Recovery._is_changelog_tp, Recovery._wait, Recovery._set_recovery_ended", "called",
        ("faust.tables.recovery:Recovery._is_changelog_tp",
         "faust.tables.recovery:Recovery._wait",
         "faust.tables.recovery:Recovery._set_recovery_ended"),
        "called by faust_fixes' copies of the two recovery methods, as faust's own bodies do.",
        "their signatures and effects (the copies call them with the same arguments).",
        "198bc11b760f60f36bf14536d06cd603164a84a81dea09cd6a17b742738ba30d",
    ),
    Internal(
        "Consumer._is_changelog_tp", "called",
        ("faust.transport.consumer:Consumer._is_changelog_tp",),
        "faust_fixes' perform_seek wrapper separates stream partitions from changelog ones.",
        "its signature and meaning (a changelog partition of a table).",
        "af732ecca1b231b71f2f7f4b82b76e46cab98f2ed038c8f9057cb64d6002a0af",
    ),
    Internal(
        "App._fetcher", "called",
        ("faust.app.base:App._fetcher",),
        "faust_fixes starts the fetcher (maybe_start) after resuming the partitions, as "
        "faust's own methods do.",
        "that it is still the fetcher service with maybe_start().",
        "73fc4126bf00a2c61781d0722472dfce10b7f4863e1491570c264288f6f85cca",
    ),
    Internal(
        "Consumer._committed_offset", "read",
        ("faust.transport.consumer:Consumer.__init__",
         "faust.transport.consumer:Consumer._commit_offsets"),
        "streams.app's offset guard and faust_fixes read the committed offset per partition "
        "(None for offset 0 or none) to know which offset comes next.",
        "that __init__ still makes it a defaultdict(lambda: None) keyed by TP, and commits "
        "still update it (perform_seek, listed above, fills it at assignment).",
        "fcfd4603e79934e2dc28ffcf3bd53cbb6a550ab4ab41ad816e7076398b7919d9",
    ),
    Internal(
        "faust.streams._current_event", "written",
        ("faust.streams:_current_event", "faust.streams:current_event"),
        "FaustTable.store sets it to the record being stored: the RocksDB store files an "
        "entry under the current event's partition, and a batch holds several partitions.",
        "that current_event() still reads this ContextVar holding a weakref to the event.",
        "237e798c433f44dd105db7adaddc9e9fcc02185072e108c1ecb72c2fd9a5b606",
    ),
    Internal(
        "SerializedStore._set (RocksDB Store._set)", "called",
        ("faust.stores.base:SerializedStore._set", "faust.stores.rocksdb:Store._set"),
        "FaustTable.store writes the already encoded changelog bytes straight into the "
        "RocksDB store (encoded once), under the current event's partition.",
        "that _set(key, value) still takes encoded bytes and takes the partition from "
        "current_event().",
        "7d14889e0d4fb374a02174fd3d775b7c90ed3e68f43dfe4d781cbe1ed0babab0",
    ),
    Internal(
        "Collection._on_changelog_sent", "mirrored",
        ("faust.tables.base:Collection._on_changelog_sent",),
        "FaustTable.sent does what it does (set_persisted_offset per changelog partition) "
        "for the entries the worker sends itself.",
        "that it still only records the persisted offset; copy anything new into "
        "FaustTable.sent.",
        "a33e68bd81353bf1a19bbf00e02f183464d38a9268a64f8bddc42a00e5532bdb",
    ),
    Internal(
        "Consumer._drain_messages and getmany", "mirrored",
        ("faust.transport.consumer:Consumer._drain_messages",
         "faust.transport.consumer:Consumer.getmany"),
        "streams.dataplane.BatchConsumer overrides the fetch loop: it does what getmany "
        "does with a fetch (skip partitions neither active nor buffered, drop and seek back "
        "when the flow is stopped, stop handing over when the generation changes) and what "
        "_drain_messages does with each record of other topics (callback, read offset), "
        "but hands the events topic's records over a fetch at a time; without a handler it "
        "calls faust's own _drain_messages.",
        "diff both against BatchConsumer._drain_once and _faust_way: carry over a new "
        "filter, flow or generation check, or a change in how records reach the callback.",
        "6a5f235a50aab7e2bb96463050398a41dfbeab77de80a8d8217926320240a303",
    ),
    Internal(
        "Consumer._wait_next_records", "called",
        ("faust.transport.consumer:Consumer._wait_next_records",),
        "the data plane's fetch: waits while the flow is stopped, fetches the active "
        "partitions' records (through the wrapped _fetch_records), returns them with the "
        "active set.",
        "its signature and result ((records per TP or None, active set or None)).",
        "667c28ff8e376c6291773170fa98225c67ecda37f88d7f849201fafe3df4478f",
    ),
    Internal(
        "Consumer._to_message (aiokafka driver)", "called",
        ("faust.transport.drivers.aiokafka:Consumer._to_message",),
        "the data plane makes faust's message for each record it hands over: faust "
        "acknowledges and commits messages, and the rebalance waits for them.",
        "that it still builds a ConsumerMessage from (tp, aiokafka record).",
        "6f6d0392975a48440a4375009172de31a0f14e285c37c5d69602d03c6bd05f75",
    ),
    Internal(
        "Consumer._buffered_partitions, Consumer._read_offset", "read",
        ("faust.transport.consumer:Consumer.__init__",
         "faust.transport.consumer:Consumer._drain_messages"),
        "the data plane keeps getmany's filter (active or buffered partitions) and, for "
        "records of other topics, _drain_messages' read offsets (a record below its "
        "partition's read offset is dropped as read already).",
        "that both are still kept per TP under these names, _read_offset defaulting to None.",
        "3c12caf46e56ddf4c53c04302c0c09b2549e66ada3616c261b9ade206b28bd90",
    ),
    Internal(
        "Consumer._new_offset", "relied",
        ("faust.transport.consumer:Consumer._new_offset",),
        "offsets are committed only up to a record whose predecessors are all acked (and "
        "past a gap of one: faust-streaming issue 606): why the decision loop acks in order.",
        "whether the commit rule changed (issue 606 fixed: the in-order acking stays "
        "correct either way; a new rule may allow acking out of order).",
        "66a56cc287b4afee817133f9850e3a35a6abeb53d19b80d674699f9d503fb187",
    ),
    Internal(
        "AIOKafkaConsumer._client", "called",
        ("aiokafka.consumer.consumer:AIOKafkaConsumer.__init__",
         "aiokafka.client:AIOKafkaClient.add_topic",
         "aiokafka.client:AIOKafkaClient.force_metadata_update"),
        "the pipeline benchmark's raw consume asks the consumer's client for one topic's "
        "metadata before assigning its partitions (no subscription).",
        "that the consumer still keeps its AIOKafkaClient as _client with these methods.",
        "da4658809c4f296efd2de48c650999f3bbd694ab91a607168a21a4c0f3c0a78f",
    ),
    Internal(
        "AIOKafkaConsumer._fetcher, Fetcher._records", "read",
        ("aiokafka.consumer.consumer:AIOKafkaConsumer.start",
         "aiokafka.consumer.fetcher:Fetcher.__init__"),
        "tests/streams/test_faust_fixes.py waits until aiokafka's fetcher holds every "
        "partition's records, to show deterministically what fetched_records does then.",
        "that the fetcher is still _fetcher and keeps fetched records per TP in _records.",
        "d47e54fad6a1ed0ca4de9572d42dc068d1b3c3325d135aa3acd069329f353ad5",
    ),
)


def changed() -> list[tuple[Internal, str]]:
    """The entries whose installed source no longer has the recorded hash, each with the
    hash it has now (or the reason it cannot be read)."""
    return library_internals.changed(INTERNALS)


# ------------------------------------------------------------------ the uses

_originals: dict[tuple[type, str], Any] = {}


def _entry_for(owner: type, name: str) -> Internal:
    source = f"{owner.__module__}:{owner.__qualname__}.{name}"
    for entry in INTERNALS:
        if source in entry.sources and entry.use in ("patched", "wrapped"):
            return entry
    raise NotListed(
        f"{source} is not listed as patched or wrapped in streams/faust_internals.py: add "
        "an entry (why, what to re-check, its source hash) before replacing it")


def replace(owner: type, name: str, new: Callable[..., Any]) -> Any:
    """Set ``owner.name`` to ``new`` (a listed patched or wrapped method); faust's
    original, which a wrapper calls."""
    _entry_for(owner, name)
    key = (owner, name)
    if key not in _originals:
        _originals[key] = owner.__dict__[name]
    setattr(owner, name, new)
    return _originals[key]


def original(owner: type, name: str) -> Any:
    """faust's own ``owner.name``, also after :func:`replace`."""
    _entry_for(owner, name)
    return _originals.get((owner, name), owner.__dict__[name])


def set_fetch_max_wait(consumer: Any, ms: int) -> None:
    """An aiokafka consumer built but not started: how long the broker may hold a fetch."""
    consumer._fetch_max_wait_ms = ms


def is_changelog_tp(owner: Any, tp: Any) -> bool:
    """faust's Recovery or Consumer: whether ``tp`` is a table's changelog partition."""
    return bool(owner._is_changelog_tp(tp))


async def recovery_wait(recovery: Any, coro: Any, timeout: float) -> None:
    await recovery._wait(coro, timeout=timeout)


def recovery_ended(recovery: Any) -> None:
    recovery._set_recovery_ended()


async def start_fetcher(app: Any) -> None:
    await app._fetcher.maybe_start()


async def faust_drain(consumer: Any, fetcher: Any) -> None:
    """faust's own fetch loop (a consumer without a batch handler)."""
    from faust.transport.consumer import Consumer

    await Consumer._drain_messages(consumer, fetcher)


async def wait_next_records(consumer: Any, timeout: float) -> tuple[Any, Any]:
    """One fetch of the active partitions: (records per TP or None, the active set)."""
    return await consumer._wait_next_records(timeout)


def to_message(consumer: Any, tp: Any, record: Any) -> Any:
    return consumer._to_message(tp, record)


def buffered_partitions(consumer: Any) -> Any:
    return consumer._buffered_partitions


def read_offset(consumer: Any, tp: Any) -> int | None:
    found = consumer._read_offset[tp]
    return None if found is None else int(found)


def set_read_offset(consumer: Any, tp: Any, offset: int) -> None:
    consumer._read_offset[tp] = offset


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """faust's committed offset of ``tp`` as loaded at its assignment or last commit;
    None for none (or 0)."""
    found = consumer._committed_offset.get(tp)
    return None if found is None else int(found)


@contextlib.contextmanager
def current_event(event: Any) -> Iterator[None]:
    """``event`` as faust's current event (what the RocksDB store takes the partition
    from) within the block."""
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def store_encoded(data: Any, key: bytes | None, value: bytes | None) -> None:
    """Write encoded bytes straight into a serialized (RocksDB) store: within
    :func:`current_event` of the record whose partition it belongs to."""
    data._set(key, value)


async def load_topic_metadata(consumer: Any, topic: str) -> None:
    """An aiokafka consumer without a subscription: fetch ``topic``'s metadata."""
    consumer._client.add_topic(topic)
    await consumer._client.force_metadata_update()


def fetched_partitions(consumer: Any) -> set[Any]:
    """The partitions whose fetched records an aiokafka consumer's fetcher holds now."""
    return set(consumer._fetcher._records)


def fetcher_of(consumer: Any) -> Any:
    """An aiokafka consumer's fetcher (after start()), as faust's consumer thread uses it."""
    return consumer._fetcher


def main() -> int:
    """Print each entry's current hash (after an upgrade, once its re-check is done)."""
    return library_internals.print_hashes(INTERNALS)


if __name__ == "__main__":
    sys.exit(main())
