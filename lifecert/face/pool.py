"""The face engine's CPU-bound work (enroll, verify) in worker processes.

dlib holds Python's GIL while it detects, places landmarks and encodes: threads of one
process share one core (measured: two threads, 8 verifications, 2.49 s -> 2.13 s). A
:class:`EnginePool` runs ``workers`` processes (started with ``spawn``: the server that
owns the pool runs gRPC and asyncio threads, which ``fork`` would copy half-way), each
with its own :class:`~lifecert.face.engine.FaceEngine` built once from the same settings
when the worker starts (its models loaded once); every call goes to an idle worker, so
that as many verifications as there are workers run at once, each on its own core.

What crosses to a worker is what the engine takes (the frames' bytes, a reference
encoding, the challenge's actions and colours) and what it returns (a Verification or an
Enrollment, no image data); refusals (FaceRefused and its kinds) come back as the same
exceptions. Each worker keeps its own enrollment cache (the same photo is encoded once
per worker).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from lifecert.face.engine import Enrollment, FaceEngine, Verification

_ENGINE: FaceEngine | None = None  # a worker's engine, built by _start
STARTUP_S = 600.0  # the longest a worker waits for the others to load their models
PARENT_CHECK_S = 2.0  # how often a worker checks that its server still runs


def _start(settings: dict[str, Any], started: Any) -> None:
    """A worker's start: its engine, then the wait for every other worker's (``started``,
    a barrier of all the workers): no worker takes a call before all have loaded their
    models, so that the pool's first calls are spread over all of them."""
    global _ENGINE
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True,
                     name="face-pool-parent").start()
    _ENGINE = FaceEngine(**settings)
    started.wait(STARTUP_S)


def _exit_with(parent: int) -> None:
    """A worker whose server is gone (killed: it had no time to stop its pool) exits too,
    instead of waiting for calls that never come, its models in memory."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _engine() -> FaceEngine:
    assert _ENGINE is not None, "the worker's engine was not started"
    return _ENGINE


def _ready() -> int:
    _engine()
    return os.getpid()


def _enroll(image: bytes) -> Enrollment:
    return _engine().enroll(image)


def _verify(reference: Enrollment | bytes, frames: Sequence[bytes],
            actions: Sequence[str] | None, colours: Sequence[str] | None) -> Verification:
    return _engine().verify(reference, frames, actions, colours=colours)


class EnginePool:
    """``workers`` processes, each with a FaceEngine made of ``settings`` (FaceEngine's
    keyword arguments). The workers start at once and load their models in parallel
    (:meth:`ready` waits for them)."""

    def __init__(self, workers: int, settings: dict[str, Any]) -> None:
        if workers < 1:
            raise ValueError(f"a face engine pool needs at least 1 worker, not {workers}")
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._barrier = context.Barrier(workers)
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start,
            initargs=(settings, self._barrier))
        # one task per worker, submitted together: each finds no idle worker and starts a
        # process of its own (the executor starts its processes on demand)
        self._started = [self._executor.submit(_ready) for _ in range(workers)]

    def ready(self, timeout: float | None = None) -> None:
        """Once every worker has loaded its models."""
        for started in self._started:
            started.result(timeout)

    def enroll(self, image: bytes) -> Future[Enrollment]:
        return self._executor.submit(_enroll, image)

    def verify(self, reference: Enrollment | bytes, frames: Sequence[bytes],
               actions: Sequence[str] | None = None,
               colours: Sequence[str] | None = None) -> Future[Verification]:
        return self._executor.submit(_verify, reference, list(frames),
                                     None if actions is None else list(actions),
                                     None if colours is None else list(colours))

    def close(self) -> None:
        self._barrier.abort()  # a worker still waiting for the others gives up
        self._executor.shutdown(wait=True, cancel_futures=True)
