"""The engine's enrollment cache (lifecert.face.engine.EnrollmentCache): the same photo,
byte for byte, is encoded once; any other photo is encoded afresh, never answered from the
cache; the cache is bounded (LRU) and shows nothing of what it holds."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from lifecert.face import FaceEngine
from lifecert_dev.face import synth

Photo = Callable[[str], bytes]


def test_the_same_photo_is_encoded_once_and_another_photo_never_comes_from_the_cache(
    photo: Photo,
) -> None:
    engine = FaceEngine(enrollment_cache=2)
    obama = photo("obama.jpg")
    started = time.perf_counter()
    first = engine.enroll(obama)
    encoding_time = time.perf_counter() - started
    started = time.perf_counter()
    again = engine.enroll(obama)
    cached_time = time.perf_counter() - started
    assert again == first and engine.enrollments.hits == 1
    assert cached_time < encoding_time / 10, (cached_time, encoding_time)

    # Another man's photo: a miss, his own encoding, far from the cached one.
    biden = engine.enroll(photo("biden.jpg"))
    assert engine.enrollments.hits == 1 and engine.enrollments.misses == 2
    assert np.linalg.norm(biden.vector() - first.vector()) > engine.threshold

    # The same picture re-encoded (other bytes, the same face): a miss, encoded afresh
    # (close to the first, not identical: it is not the cached encoding).
    recoded = synth.to_bytes(synth.fit(obama, 900, 900), quality=80)
    fresh = engine.enroll(recoded)
    assert engine.enrollments.hits == 1 and engine.enrollments.misses == 3
    assert fresh.encoding != first.encoding
    assert np.linalg.norm(fresh.vector() - first.vector()) < engine.threshold


def test_the_cache_is_bounded_least_recently_used_first(photo: Photo) -> None:
    engine = FaceEngine(enrollment_cache=2)
    a, b, c = photo("obama.jpg"), photo("biden.jpg"), photo("grace_hopper.jpg")
    engine.enroll(a)
    engine.enroll(b)
    engine.enroll(a)  # a is now the most recent
    engine.enroll(c)  # evicts b
    assert len(engine.enrollments) == 2 and engine.enrollments.hits == 1
    engine.enroll(a)
    assert engine.enrollments.hits == 2
    engine.enroll(b)
    assert engine.enrollments.hits == 2, "b was evicted: encoded again"
    assert repr(engine.enrollments) == "EnrollmentCache(2/2 entries, 2 hits)", \
        "its repr shows counts only: no digest, no encoding"


def test_a_refused_photo_is_not_cached_and_size_zero_turns_the_cache_off(photo: Photo) -> None:
    from lifecert.face import EnrollmentRefused

    engine = FaceEngine(enrollment_cache=0)
    engine.enroll(photo("obama.jpg"))
    engine.enroll(photo("obama.jpg"))
    assert len(engine.enrollments) == 0 and engine.enrollments.hits == 0
    cached = FaceEngine(enrollment_cache=4)
    for _ in range(2):
        with pytest.raises(EnrollmentRefused):
            cached.enroll(photo("coffee.png"))
    assert len(cached.enrollments) == 0
    with pytest.raises(ValueError, match="enrollment_cache must be 0"):
        FaceEngine(enrollment_cache=-1)
