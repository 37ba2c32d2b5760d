"""The face engine's pool of worker processes (lifecert.face.pool.EnginePool), as the API
server runs it (``--face-workers``): each worker its own process with its own engine; the
decisions are the engine's own, a refusal comes back as the same refusal."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from lifecert.api.protos import face_verification_pb2 as fv
from lifecert.face import EnrollmentRefused, FaceDecision
from lifecert.face.liveness import ChallengePolicy, random_actions
from lifecert.face.pool import EnginePool
from lifecert_dev.partners.faces import FaceDoor

Answer = tuple[list[bytes], list[str]]


@pytest.fixture(scope="module")
def answers(photo_dir: Path) -> list[Answer]:
    """Four window-camera answers (the demo's door, lifecert_dev.partners.faces) made from
    obama3.jpg, each to its own challenge."""
    door = FaceDoor(None, "FACE_COUNTER", photo_dir)  # type: ignore[arg-type]
    rng = random.Random(5)
    out = []
    for _ in range(4):
        actions = random_actions(3, rng)
        challenge = fv.Challenge(challenge_id=secrets.token_hex(16),
                                 actions=[fv.ChallengeAction.Value(a) for a in actions])
        out.append((door.answer("obama3.jpg", challenge), actions))
    return out


def test_the_pools_workers_decide_as_the_engine_does(
    photo: Callable[[str], bytes], answers: list[Answer],
) -> None:
    """Two workers (the parallax check off, as the demo's server under the test-only
    switch): the same person's answers MATCH, sent together; another man's reference is a
    NO_MATCH; a photo without a face is refused NO_FACE, raised as in the engine."""
    pool = EnginePool(2, {"challenge": ChallengePolicy(min_parallax=0.0)})
    try:
        pool.ready(timeout=300)
        workers = {p.pid for p in multiprocessing.active_children()}
        assert len(workers) == 2 and os.getpid() not in workers, "two processes of its own"
        obama = pool.enroll(photo("obama.jpg")).result(300)
        biden = pool.enroll(photo("biden.jpg")).result(300)
        pending = [pool.verify(obama, frames, actions) for frames, actions in answers]
        other = pool.verify(biden, *answers[0])
        decided = [p.result(300) for p in pending]
        assert [d.decision for d in decided] == [FaceDecision.MATCH] * 4, \
            [d.reason for d in decided]
        refused = other.result(300)
        assert refused.decision is FaceDecision.NO_MATCH, refused.reason
        assert refused.distance is not None and refused.distance > refused.threshold
        blank = io.BytesIO()
        Image.new("RGB", (640, 480), (128, 128, 128)).save(blank, "PNG")
        with pytest.raises(EnrollmentRefused) as no_face:
            pool.enroll(blank.getvalue()).result(300)
        assert no_face.value.decision is FaceDecision.NO_FACE and "no face" in \
            no_face.value.reason
    finally:
        pool.close()


def test_the_pools_engine_keeps_its_default_liveness(
    photo: Callable[[str], bytes], answers: list[Answer],
) -> None:
    """One worker with the engine's default policy: the same answers (2-D edits of a
    still) are NOT_LIVE for the turns' missing parallax."""
    pool = EnginePool(1, {})
    try:
        obama = pool.enroll(photo("obama.jpg")).result(300)
        [frames, actions] = next(a for a in answers if "OPEN_MOUTH" not in a[1][:1])
        result = pool.verify(obama, frames, actions).result(300)
        assert result.decision is FaceDecision.NOT_LIVE and "parallax" in result.reason, \
            result.reason
    finally:
        pool.close()


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least 1 worker"):
        EnginePool(0, {})


def test_the_server_refuses_a_negative_number_of_face_workers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lifecert.api import server

    assert server.main(["--face-workers", "-1"]) != 0
    assert "--face-workers must be 0 (the engine in the server's process) or more, not -1" \
        in capsys.readouterr().err


def test_the_workers_exit_when_their_server_is_killed(tmp_path: Path) -> None:
    """A server killed (SIGKILL: no time to stop its pool) leaves no engine process behind:
    each worker sees its parent gone and exits (before: they waited for calls forever)."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "server.py"
    script.write_text(
        "import sys, time\n"
        "from lifecert.face.pool import EnginePool\n"
        "if __name__ == '__main__':\n"
        "    pool = EnginePool(1, {})\n"
        "    pool.ready(300)\n"
        "    print(' '.join(str(p.pid) for p in __import__('multiprocessing')"
        ".active_children()), flush=True)\n"
        "    time.sleep(600)\n", encoding="utf-8")
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        workers = [int(p) for p in server.stdout.readline().split()]
        assert workers, "the pool started no worker"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [p for p in workers if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1][:3]]
    assert not alive, f"engine processes {alive} outlived their killed server"
