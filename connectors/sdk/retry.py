"""Retries with exponential backoff and full jitter (each wait is uniform in [0, cap],
the cap doubling from ``initial`` up to ``maximum``), interruptible by a stop event."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from connectors.sdk.errors import PartnerUnavailable
from lifecert.datakeys import KeyStoreError
from lifecert.pipeline.broker_errors import KafkaUnavailable

T = TypeVar("T")
# What is worth retrying: the partner, the broker or the key store being away for a while.
TRANSIENT: tuple[type[BaseException], ...] = (PartnerUnavailable, KafkaUnavailable,
                                              KeyStoreError)


# A wait to retry is cut in slices this long, for on_wait (e.g. to let go of a stuck broker
# connection while the partner is away).
WAIT_SLICE_S = 1.0


class Stopped(Exception):
    """The stop event was set while waiting to retry."""


class Backoff:
    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_ceiling(self) -> float:
        """The longest wait of this attempt (doubling from ``initial`` up to ``maximum``),
        and on to the next attempt."""
        cap = min(self.maximum, self.initial * (2 ** self.attempt))
        self.attempt += 1
        return cap

    def next_delay(self) -> float:
        """A wait drawn below this attempt's ceiling (full jitter), and on to the next."""
        return self._rng.uniform(0, self.next_ceiling())

    def reset(self) -> None:
        self.attempt = 0


def retrying(
    step: Callable[[], T],
    what: str,
    *,
    backoff: Backoff,
    stop: threading.Event,
    log: logging.Logger,
    on_retry: Callable[[BaseException], None] = lambda _exc: None,
    on_wait: Callable[[], None] = lambda: None,
) -> T:
    """``step()``, retried on a transient failure until it succeeds; raises
    :class:`Stopped` if ``stop`` is set meanwhile. Other exceptions pass through.
    ``on_wait`` is called about every :data:`WAIT_SLICE_S` seconds of a wait to retry."""
    backoff.reset()
    failing_since: float | None = None
    while True:
        try:
            result = step()
        except TRANSIENT as exc:
            on_retry(exc)
            delay = backoff.next_delay()
            now = time.monotonic()
            failing_since = failing_since or now
            log.warning("%s failed (%s); retry %d in %.1f s (failing for %.0f s)",
                        what, exc, backoff.attempt, delay, now - failing_since)
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                if stop.wait(min(left, WAIT_SLICE_S)):
                    raise Stopped from exc
                on_wait()
            continue
        if failing_since is not None:
            log.warning("%s recovered after %d retries", what, backoff.attempt)
        return result
