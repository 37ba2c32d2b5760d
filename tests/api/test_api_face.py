"""FaceVerification through the real server: staff enroll a reference photo; the app and
the counter begin a challenge and verify frames that answer it; a MATCH lands on the events
topic as a CertificationRecorded of the caller's face channel. Real photos shipped inside
packages (lifecert_dev.face.photos); the answers are synthetic, made from them
(lifecert_dev.face.synth).

synth's answers are 2-D edits of one photo, which the default liveness refuses (that is
tested here too). To exercise the protocol up to a MATCH, ``protocol`` is a second server
on the same database started with ``--face-min-parallax 0`` and the test-only switch
``LIFECERT_FACE_TEST_ONLY=1`` (refused without it): everything but the parallax check
(challenge, order, deadline, single use, replay, face distance) is the real one.
"""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

import lifecert.face  # noqa: F401 - in the dev install: a broken engine is an error, no skip
from lifecert.api.lockouts import CLIENT_ADDRESS_HEADER
from lifecert.api.protos import face_verification_pb2 as fv
from lifecert.api.protos import face_verification_pb2_grpc as fv_grpc
from lifecert.events import codec
from lifecert.pipeline import broker_clients
from lifecert.pipeline.topics import ALERTS, EVENTS
from lifecert_dev.api_sandbox import Sandbox, SandboxError, ServerProcess


@pytest.fixture(scope="module")
def photos() -> Path:
    from lifecert_dev.face import photos as shipped

    return shipped.ensure_photos()


@pytest.fixture(scope="module")
def frame(photos: Path) -> Image.Image:
    """A 640x480 camera frame of obama3.jpg (the references are obama.jpg)."""
    from lifecert_dev.face import synth

    return synth.fit((photos / "obama3.jpg").read_bytes())


def answer(frame: Image.Image, challenge: fv.Challenge) -> list[bytes]:
    """synth's answer to ``challenge``; with screen colours, each frame lit by its colour
    (synth's light model: the screen's tint on the face, drifting camera gains, noise).

    Taken again (up to 5 times, as an app asks the user to repeat) until the server's own
    motion measure sees the asked actions in the frames: the noise on a 2-D mouth edit
    sometimes hides the open mouth even after synth's retakes (seen once in CI: TURN_RIGHT,
    TURN_LEFT seen for TURN_RIGHT, OPEN_MOUTH, TURN_LEFT). The server still judges every
    answer; a sixth failure is left for it to refuse."""
    import numpy as np

    from lifecert_dev.face import synth

    actions = [fv.ChallengeAction.Name(a) for a in challenge.actions]
    colours = [fv.ScreenColour.Name(c).removeprefix("SCREEN_") for c in challenge.screen_colours]
    for _ in range(5):
        if not colours:
            frames = synth.still_answer(frame, actions, rng=random.Random())
        else:
            # the mouth frames are retaken until dlib sees them open with a margin over the
            # policy's 0.25 (the 2-D edit is marginal; the reorder test re-encodes them)
            frames = synth.lit_still_answer(frame, actions, colours, np.random.default_rng(),
                                            synth.Camera(strength=0.1), degrees=15.0,
                                            mouth=0.35, retake_below=0.31)
        if actions_seen(frames) == actions:
            break
    return frames


def actions_seen(frames: list[bytes]) -> list[str]:
    """The actions dlib sees in ``frames``, in order, by the server's own motion measure."""
    import numpy as np

    from lifecert.face import liveness
    from lifecert_dev.face import synth

    marks = np.array([synth._landmarks(np.asarray(Image.open(io.BytesIO(f)).convert("RGB")))
                      for f in frames])
    states = liveness.frame_states(liveness.motion_features(marks))
    return [state for state, _first, _last in liveness._runs(states)]


def still(frame: Image.Image) -> list[bytes]:
    """The photo held still: seven frames, re-encoded so that none is byte-identical (to
    each other or to another call's)."""
    from lifecert_dev.face import synth

    rng = random.Random()
    return [synth.to_bytes(synth._marked(frame, i, rng)) for i in range(7)]


@pytest.fixture(scope="module")
def protocol(box: Sandbox, face_key: str) -> Iterator[ServerProcess]:
    server = box.start_server("--face-min-parallax", "0",
                              "--face-failures-per-retiree-day", "1000",
                              "--face-failures-per-agency-minute", "1000",
                              env={"LIFECERT_FACE_KEY": face_key,
                                   "LIFECERT_FACE_TEST_ONLY": "1"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited(box: Sandbox, face_key: str) -> Iterator[ServerProcess]:
    # the engine in the server's own process (--face-workers 0); the other servers run
    # it in a pool of processes (the default: one per CPU)
    server = box.start_server("--face-concurrency", "1", "--face-failures-per-retiree-day", "3",
                              "--face-failures-per-agency-minute", "4", "--face-workers", "0",
                              env={"LIFECERT_FACE_KEY": face_key})
    yield server
    server.stop()


@pytest.mark.stack
@pytest.mark.parametrize("parallax", ["0", "-1"])
def test_a_weaker_parallax_is_refused_without_the_test_only_switch(
    box: Sandbox, face_key: str, parallax: str,
) -> None:
    with pytest.raises(SandboxError) as refused:
        box.start_server("--face-min-parallax", parallax,
                         env={"LIFECERT_FACE_KEY": face_key, "LIFECERT_FACE_TEST_ONLY": ""})
    assert f"--face-min-parallax {float(parallax)} is below" in str(refused.value)
    assert "LIFECERT_FACE_TEST_ONLY=1" in str(refused.value)


@pytest.mark.stack
def test_a_negative_parallax_is_refused_even_with_the_switch(
    box: Sandbox, face_key: str,
) -> None:
    with pytest.raises(SandboxError, match=r"--face-min-parallax -0\.5 is below"):
        box.start_server("--face-min-parallax", "-0.5",
                         env={"LIFECERT_FACE_KEY": face_key, "LIFECERT_FACE_TEST_ONLY": "1"})


@pytest.mark.stack
def test_weaker_liveness_settings_are_logged_as_warnings(protocol: ServerProcess) -> None:
    log = protocol.log()
    assert "face liveness weaker than its default: --face-min-parallax 0.0" in log
    assert "--face-failures-per-retiree-day 1000 (default 5)" in log


# The app acts for the public: every call names the address of the person behind it
# (lifecert-client-address); a test that names another address passes its own metadata.
APP_CLIENT_ADDRESS = "198.51.100.20"


class _ClientAddress(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or ())
        if not any(k == CLIENT_ADDRESS_HEADER for k, _ in metadata):
            metadata.append((CLIENT_ADDRESS_HEADER, APP_CLIENT_ADDRESS))
        return continuation(details._replace(metadata=metadata), request)


def stub(server: ServerProcess, agency: str, role: str) -> fv_grpc.FaceVerificationStub:
    channel = server.channel(agency, role)
    if role == "APP":
        channel = grpc.intercept_channel(channel, _ClientAddress())
    return fv_grpc.FaceVerificationStub(channel)


@pytest.fixture(scope="module")
def staff(server: ServerProcess) -> fv_grpc.FaceVerificationStub:
    return stub(server, "FS-HQ-FACE", "STAFF")


@pytest.fixture(scope="module")
def enrolled(staff: fv_grpc.FaceVerificationStub, photos: Path) -> dict[str, str]:
    """FC-1, FC-4 to FC-7: obama.jpg; FC-2: another man (biden.jpg)."""
    references = {"FC-1": "obama.jpg", "FC-2": "biden.jpg", "FC-4": "obama.jpg",
                  "FC-5": "obama.jpg", "FC-6": "obama.jpg", "FC-7": "obama.jpg"}
    for retiree_id, photo in references.items():
        reply = staff.Enroll(fv.EnrollRequest(retiree_id=retiree_id,
                                              photo=(photos / photo).read_bytes()), timeout=60)
        assert reply.enrolled, reply.reason
    return references


def certifications(box: Sandbox) -> list[dict[str, Any]]:
    client = broker_clients.consumer(box.bootstrap)
    try:
        records = broker_clients.read_to_end(client, box.topics[EVENTS].name)
        events = [codec.decode(r.value) for r in records]
    finally:
        client.close()
    return [e for e in events if e["type"] == "CertificationRecorded"
            and e["channel"] in ("FACE_APP", "FACE_COUNTER")]


def alerts(box: Sandbox) -> list[dict[str, Any]]:
    client = broker_clients.consumer(box.bootstrap)
    try:
        records = broker_clients.read_to_end(client, box.topics[ALERTS].name)
        return [codec.decode(r.value) for r in records]
    finally:
        client.close()


def refusal(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call(*args, timeout=60, **kwargs)
    return refused.value


@pytest.fixture(scope="module")
def matched(box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str],
            frame: Image.Image) -> tuple[fv.VerifyRequest, fv.VerifyResponse]:
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-1"), timeout=30)
    request = fv.VerifyRequest(retiree_id="FC-1", frames=answer(frame, challenge),
                               attempt_id="APP-ATTEMPT-1", challenge_id=challenge.challenge_id)
    return request, app.Verify(request, timeout=60)


@pytest.mark.stack
def test_challenge_response_match_is_certified_once(
    box: Sandbox, matched: tuple[fv.VerifyRequest, fv.VerifyResponse],
) -> None:
    _request, reply = matched
    assert reply.decision == fv.MATCH, reply.reason
    assert reply.live and 0 < reply.distance <= reply.threshold
    assert reply.certification_id == "APP-ATTEMPT-1" and reply.event_id
    [cert] = [c for c in certifications(box) if c["event_id"] == reply.event_id]
    assert cert["channel"] == "FACE_APP" and cert["agency_id"] == "FS-APP"
    assert cert["retiree_id"] == "FC-1"


@pytest.mark.stack
def test_a_challenge_has_random_ordered_actions_and_a_short_deadline(
    protocol: ServerProcess, enrolled: dict[str, str],
) -> None:
    app = stub(protocol, "FS-APP", "APP")
    issued = [app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
              for _ in range(8)]
    assert len({c.challenge_id for c in issued}) == 8
    assert len({tuple(c.actions) for c in issued}) > 1
    for c in issued:
        assert len(c.actions) == 3 and all(a != fv.CHALLENGE_ACTION_UNSPECIFIED for a in c.actions)
        assert {fv.TURN_LEFT, fv.TURN_RIGHT} & set(c.actions)
        left = c.deadline.ToDatetime().timestamp() - time.time()
        assert 0 < left <= 31


@pytest.mark.stack
def test_a_replayed_answer_is_refused(
    box: Sandbox, protocol: ServerProcess, matched: tuple[fv.VerifyRequest, fv.VerifyResponse],
) -> None:
    request, _reply = matched
    before = len(certifications(box))
    app = stub(protocol, "FS-APP", "APP")
    used = refusal(app.Verify, request)  # the same request again: the challenge is spent
    assert used.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already answered" in used.details()
    fresh = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-1"), timeout=30)
    [(answered,)] = box.query("SELECT actions FROM api_face_challenges WHERE challenge_id = %s",
                              (request.challenge_id,))
    assert [fv.ChallengeAction.Name(a) for a in fresh.actions] != list(answered)
    replayed = app.Verify(fv.VerifyRequest(
        retiree_id="FC-1", frames=request.frames, challenge_id=fresh.challenge_id), timeout=60)
    assert replayed.decision == fv.NOT_LIVE and "sent before" in replayed.reason
    assert not replayed.event_id and len(certifications(box)) == before


@pytest.mark.stack
def test_attempt_id_reused_for_another_retiree_is_refused(
    box: Sandbox, protocol: ServerProcess, matched: tuple[fv.VerifyRequest, fv.VerifyResponse],
    frame: Image.Image,
) -> None:
    request, _reply = matched
    before = len(certifications(box))
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    reused = refusal(app.Verify, fv.VerifyRequest(
        retiree_id="FC-4", frames=answer(frame, challenge), attempt_id=request.attempt_id,
        challenge_id=challenge.challenge_id))
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "another retiree" in reused.details()
    assert len(certifications(box)) == before


@pytest.mark.stack
def test_a_malformed_attempt_id_is_refused_before_the_challenge_is_used(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    """An attempt_id that is no certification id would MATCH and then fail to be recorded
    (the challenge spent, no decision): refused first, naming the field."""
    before = len(certifications(box))
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    for bad in ("APP 2026/42", "A" * 65, "-leading-dash"):
        refused = refusal(app.Verify, fv.VerifyRequest(
            retiree_id="FC-4", frames=answer(frame, challenge), attempt_id=bad,
            challenge_id=challenge.challenge_id))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
        assert "attempt_id" in refused.details()
        assert "not a valid certification_id" in refused.details()
    assert box.query("SELECT used_at IS NULL FROM api_face_challenges WHERE challenge_id = %s",
                     (challenge.challenge_id,)) == [(True,)]
    assert len(certifications(box)) == before


def test_the_derived_certification_id_fits_its_pattern_for_any_agency() -> None:
    from lifecert.api.face import _attempt_id
    from lifecert.events import bounds

    for agency in ("FS-APP", "A" * 64, "a.b_c-d" * 9):
        derived = _attempt_id(agency, "C" * 64)
        assert bounds.id_problem("certification_id", derived) is None, derived
    assert _attempt_id("FS-APP", "C" * 22) != _attempt_id("FS-APP-2", "C" * 22)


@pytest.mark.stack
@pytest.mark.parametrize("retiree_id", ["FC 1", "FC/1", "F" * 33, "-FC-1"])
def test_a_retiree_id_outside_its_pattern_is_refused(
    protocol: ServerProcess, retiree_id: str,
) -> None:
    app = stub(protocol, "FS-APP", "APP")
    refused = refusal(app.BeginChallenge, fv.BeginChallengeRequest(retiree_id=retiree_id))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid retiree_id" in refused.details()


@pytest.mark.stack
def test_challenge_refusals(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    app = stub(protocol, "FS-APP", "APP")
    counter = stub(protocol, "FS-W02", "COUNTER")
    frames = still(frame)

    def verify(challenge_id: str, retiree_id: str = "FC-4") -> grpc.RpcError:
        return refusal(app.Verify, fv.VerifyRequest(retiree_id=retiree_id, frames=frames,
                                                    challenge_id=challenge_id))

    none = verify("")
    assert none.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "begin a challenge first" in none.details()
    assert verify("not a challenge!").code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = verify("A" * 22)
    assert unknown.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no challenge with this challenge_id" in unknown.details()
    theirs = counter.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    other_agency = verify(theirs.challenge_id)
    assert "no challenge with this challenge_id" in other_agency.details()
    other = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    assert "another retiree" in verify(other.challenge_id).details()
    late = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    box.query("UPDATE api_face_challenges SET deadline = now() - interval '1 second' "
              "WHERE challenge_id = %s RETURNING challenge_id", (late.challenge_id,))
    assert "expired" in verify(late.challenge_id).details()
    # the refused ones were not consumed: their rightful owners may still answer them
    assert box.query("SELECT count(*) FROM api_face_challenges WHERE challenge_id IN "
                     "(%s, %s) AND used_at IS NULL", (theirs.challenge_id, other.challenge_id)
                     ) == [(2,)]
    identical = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    reply = app.Verify(fv.VerifyRequest(retiree_id="FC-4", frames=[frames[0]] * 7,
                                        challenge_id=identical.challenge_id), timeout=60)
    assert reply.decision == fv.NOT_LIVE and "byte for byte" in reply.reason


@pytest.mark.stack
def test_actions_missing_or_out_of_order_are_not_live(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    asked = list(challenge.actions)
    wrong = list(reversed(asked))
    if wrong == asked:  # e.g. LEFT, RIGHT, LEFT: rotated instead (one frame per colour)
        wrong = asked[1:] + asked[:1]
    backwards = fv.Challenge(actions=wrong, screen_colours=challenge.screen_colours)
    reply = app.Verify(fv.VerifyRequest(retiree_id="FC-4", frames=answer(frame, backwards),
                                        challenge_id=challenge.challenge_id), timeout=60)
    assert reply.decision == fv.NOT_LIVE, reply.reason
    assert "in that order" in reply.reason and not reply.event_id


@pytest.mark.stack
def test_a_challenge_names_a_screen_colour_per_frame(
    protocol: ServerProcess, enrolled: dict[str, str],
) -> None:
    """The app is asked for one colour per frame (2 x 3 actions + 1), derived from the
    nonce; the window camera, supervised by staff, by default is not."""
    from lifecert.face.screenlight import colours_for

    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    names = [fv.ScreenColour.Name(c) for c in challenge.screen_colours]
    assert names == [f"SCREEN_{c}" for c in colours_for(challenge.challenge_id, 7)]
    assert challenge.screen_settle_ms == 150
    counter = stub(protocol, "FS-W02", "COUNTER")
    at_window = counter.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"), timeout=30)
    assert not at_window.screen_colours and at_window.screen_settle_ms == 0


@pytest.mark.stack
def test_an_earlier_answer_reordered_for_a_new_challenge_is_refused(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    """A genuine (here: synthetic, parallax off) answer that MATCHed, cut into its actions,
    re-ordered for the retiree's next challenge and re-encoded (no byte-identical frame):
    the actions are in the new order, the light is the old challenge's: NOT_LIVE, naming
    the light. Without the screen light this certified (issue 11: 66 of 114)."""
    from lifecert_dev.face import synth

    app = stub(protocol, "FS-APP", "APP")
    for _ in range(50):  # an earlier challenge with all three actions, to cut from
        first = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-7"), timeout=30)
        if len(set(first.actions)) == 3:
            break
    recorded = answer(frame, first)
    reply = app.Verify(fv.VerifyRequest(retiree_id="FC-7", frames=recorded,
                                        challenge_id=first.challenge_id), timeout=60)
    assert reply.decision == fv.MATCH, reply.reason
    before = len(certifications(box))
    second = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-7"), timeout=30)
    assert list(second.actions) != list(first.actions)
    # frames: 0 at rest, action k at 2k+1, at rest at 2k+2
    where = {action: 2 * k + 1 for k, action in enumerate(first.actions)}
    order = [0, where[second.actions[0]], 2, where[second.actions[1]], 4,
             where[second.actions[2]], 6]
    # re-encoded so that no frame is byte-identical (an action asked twice); the attacker
    # checks the result against dlib as the server will and re-encodes again until the
    # motion is the one asked (the 2-D mouth edit is bistable under re-encoding), so that
    # only the light is left to refuse it
    wanted = [fv.ChallengeAction.Name(a) for a in second.actions]
    for attempt in range(6):
        reordered = [synth.to_bytes(Image.open(io.BytesIO(recorded[i])), quality=95 - p - attempt)
                     for p, i in enumerate(order)]
        if actions_seen(reordered) == wanted:
            break
    replayed = app.Verify(fv.VerifyRequest(retiree_id="FC-7", frames=reordered,
                                           challenge_id=second.challenge_id), timeout=60)
    assert replayed.decision == fv.NOT_LIVE, replayed.reason
    assert ("screen colours" in replayed.reason or "was lit by" in replayed.reason), \
        replayed.reason
    assert "frames lit for another challenge?" in replayed.reason
    assert not replayed.event_id and len(certifications(box)) == before


@pytest.mark.stack
def test_a_head_turn_warped_from_a_still_is_not_live(
    box: Sandbox, server: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    """The default server: synth's 2-D warp answers the challenge in order, and is refused
    for lack of the parallax of a turning head."""
    before = len(certifications(box))
    app = stub(server, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    reply = app.Verify(fv.VerifyRequest(retiree_id="FC-5", frames=answer(frame, challenge),
                                        challenge_id=challenge.challenge_id), timeout=60)
    assert reply.decision == fv.NOT_LIVE, reply.reason
    # synth's 2-D mouth edit is marginal under the light's noise (docs/face.md): when the
    # challenge asks for OPEN_MOUTH the answer may be refused for the missing mouth first;
    # otherwise it must be the turns' missing parallax.
    mouth_missed = ("OPEN_MOUTH" in reply.reason.split("asked for")[-1]
                    and "OPEN_MOUTH" not in reply.reason.split("asked for")[0])
    assert "parallax" in reply.reason or mouth_missed, reply.reason
    assert len(certifications(box)) == before


@pytest.mark.stack
def test_match_after_not_live_raises_an_alert(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    """At a counter: a still photo (NOT_LIVE), then an answer that matches: the MATCH
    certifies (FACE_COUNTER) and a FraudSuspected lands on lifecert.alerts."""
    counter = stub(protocol, "FS-W02", "COUNTER")
    first = counter.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    photo = counter.Verify(fv.VerifyRequest(retiree_id="FC-5", frames=still(frame),
                                            challenge_id=first.challenge_id), timeout=60)
    assert photo.decision == fv.NOT_LIVE, photo.reason
    assert not [a for a in alerts(box) if a["retiree_id"] == "FC-5"]
    second = counter.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    reply = counter.Verify(fv.VerifyRequest(retiree_id="FC-5", frames=answer(frame, second),
                                            challenge_id=second.challenge_id), timeout=60)
    assert reply.decision == fv.MATCH, reply.reason
    assert reply.certification_id.startswith("FACE-")
    [cert] = [c for c in certifications(box) if c["event_id"] == reply.event_id]
    assert cert["channel"] == "FACE_COUNTER"
    [alert] = [a for a in alerts(box) if a["retiree_id"] == "FC-5"]
    assert alert["type"] == "FraudSuspected" and alert["reason"] == "FACE_MATCH_AFTER_NOT_LIVE"
    assert alert["certification_id"] == reply.certification_id
    assert set(alert) == {"type", "event_id", "recorded_at", "source_agency", "retiree_id",
                          "certification_id", "reason"}


@pytest.mark.stack
def test_failure_budgets_per_retiree_and_per_agency(
    limited: ServerProcess, enrolled: dict[str, str],
) -> None:
    """``limited``: 3 failures per retiree a day, 4 per agency a minute. Made-up challenge
    ids count for the agency that sends them, not against the retiree."""
    app = stub(limited, "FS-APP-B", "APP")
    other = stub(limited, "FS-APP-C", "APP")
    dark = io.BytesIO()
    Image.new("RGB", (64, 48)).save(dark, "PNG")

    def made_up(client: fv_grpc.FaceVerificationStub, retiree_id: str) -> None:
        refused = refusal(client.Verify, fv.VerifyRequest(
            retiree_id=retiree_id, frames=[dark.getvalue()], challenge_id="B" * 22))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.details()

    for _ in range(3):
        made_up(other, "FC-6")
    for _ in range(3):  # three answers without a face
        challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-6"), timeout=30)
        reply = app.Verify(fv.VerifyRequest(
            retiree_id="FC-6", challenge_id=challenge.challenge_id,
            frames=[synth_png(i) for i in range(7)]), timeout=60)  # one per colour
        assert reply.decision == fv.NO_FACE, reply.reason
    spent = refusal(app.BeginChallenge, fv.BeginChallengeRequest(retiree_id="FC-6"))
    assert spent.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("this retiree by your agency from this client address in the last 24 hours"
            in spent.details())
    made_up(app, "FC-7")  # the agency's fourth failure this minute
    busy = refusal(app.BeginChallenge, fv.BeginChallengeRequest(retiree_id="FC-7"))
    assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "by this agency in the last minute" in busy.details()
    # the other agency (3 failures) is not held up
    assert other.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-7"), timeout=30)


@pytest.mark.stack
def test_one_agencys_failures_do_not_close_face_verification_to_another(
    limited: ServerProcess, enrolled: dict[str, str],
) -> None:
    """``limited``: 3 failures per retiree a day, counted per caller (agency, and the client
    address behind the app), like the second-factor lockouts: agency B's failures (any
    face-role agency may try any retiree) leave agency A's attempts open, and one client
    address of the app does not close the retiree to another."""
    b = stub(limited, "FS-W-D", "COUNTER")
    a = stub(limited, "FS-W-E", "COUNTER")
    app = stub(limited, "FS-APP-E", "APP")

    def fail(client: fv_grpc.FaceVerificationStub, **kw: Any) -> None:
        challenge = client.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"),
                                          timeout=30, **kw)
        reply = client.Verify(fv.VerifyRequest(
            retiree_id="FC-5", challenge_id=challenge.challenge_id,
            frames=[synth_png(i) for i in range(7)]), timeout=60, **kw)
        assert reply.decision == fv.NO_FACE, reply.reason

    for _ in range(3):
        fail(b)
    closed = refusal(b.BeginChallenge, fv.BeginChallengeRequest(retiree_id="FC-5"))
    assert closed.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert a.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    assert "by your agency in the last 24 hours" in closed.details()
    here = [("lifecert-client-address", "203.0.113.7")]
    there = [("lifecert-client-address", "203.0.113.8")]
    for _ in range(3):
        fail(app, metadata=here)
    closed_here = refusal(app.BeginChallenge, fv.BeginChallengeRequest(retiree_id="FC-5"),
                          metadata=here)
    assert closed_here.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "from this client address" in closed_here.details()
    assert app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30,
                              metadata=there)


def synth_png(i: int) -> bytes:
    """A small grey frame without a face, never the same twice."""
    out = io.BytesIO()
    rng = random.Random()
    Image.new("RGB", (160, 120), (100 + i, rng.randrange(256), rng.randrange(256))).save(
        out, "PNG")
    return out.getvalue()


@pytest.mark.stack
def test_concurrent_face_calls_per_agency_are_capped(
    limited: ServerProcess, enrolled: dict[str, str], photos: Path,
) -> None:
    """``limited`` allows one face call at a time per agency: of two enrollments sent
    together (each ~1.5 s of CPU), one is refused RESOURCE_EXHAUSTED."""
    staff = stub(limited, "FS-HQ-FACE", "STAFF")
    photo = (photos / "biden.jpg").read_bytes()  # FC-2's reference again

    def enroll(delay: float) -> Any:
        time.sleep(delay)
        try:
            return staff.Enroll(fv.EnrollRequest(retiree_id="FC-2", photo=photo), timeout=60)
        except grpc.RpcError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(enroll, (0.0, 0.4)))
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(refused) == 1, results
    assert refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "face calls in progress" in refused[0].details()
    assert [r.enrolled for r in results if not isinstance(r, grpc.RpcError)] == [True]


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but whose pixel data is a few
    bytes of garbage: decoding it would fail with another error than the pixel cap's."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage")
            + chunk(b"IEND", b""))


@pytest.mark.stack
def test_a_huge_frame_is_refused_from_its_header(
    server: ServerProcess, enrolled: dict[str, str],
) -> None:
    app = stub(server, "FS-APP", "APP")
    ok = io.BytesIO()
    Image.new("RGB", (64, 48)).save(ok, "PNG")
    for size, words in (((50000, 50000), "more pixels than any camera frame"),
                        ((5000, 4000), "5000x4000 pixels, more than 12000000")):
        refused = refusal(app.Verify, fv.VerifyRequest(
            retiree_id="FC-4", frames=[ok.getvalue(), _png_header(*size)],
            challenge_id="C" * 22))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.details().startswith("frame 1: ") and words in refused.details()


@pytest.mark.stack
def test_refused_verifications_certify_nothing(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str], frame: Image.Image,
) -> None:
    """Another man's reference: the answer is live but NO_MATCH."""
    before = len(certifications(box))
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-2"), timeout=30)
    reply = app.Verify(fv.VerifyRequest(retiree_id="FC-2", frames=answer(frame, challenge),
                                        challenge_id=challenge.challenge_id), timeout=60)
    assert reply.decision == fv.NO_MATCH, reply.reason
    assert not reply.event_id and not reply.certification_id
    assert len(certifications(box)) == before


@pytest.mark.stack
@pytest.mark.parametrize(
    ("photo", "refusal_"),
    [("coffee.png", fv.NO_FACE), ("t1.jpg", fv.MULTIPLE_FACES),
     ("Tom_Hanks_54745.png", fv.POOR_QUALITY)],
)
def test_enrollment_refuses_unusable_photos(
    staff: fv_grpc.FaceVerificationStub, photos: Path, photo: str, refusal_: int
) -> None:
    reply = staff.Enroll(fv.EnrollRequest(retiree_id="FC-3",
                                          photo=(photos / photo).read_bytes()), timeout=60)
    assert not reply.enrolled and reply.refusal == refusal_ and reply.reason


@pytest.mark.stack
def test_face_roles_and_missing_reference(
    server: ServerProcess, photos: Path, frame: Image.Image,
) -> None:
    app = stub(server, "FS-APP", "APP")
    denied = refusal(app.Enroll, fv.EnrollRequest(
        retiree_id="FC-3", photo=(photos / "obama.jpg").read_bytes()))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not call FaceVerification/Enroll" in denied.details()
    macau = stub(server, "MO-SSF", "MACAU_SSF")
    no = refusal(macau.BeginChallenge, fv.BeginChallengeRequest(retiree_id="FC-3"))
    assert no.code() == grpc.StatusCode.PERMISSION_DENIED
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-3"), timeout=30)
    missing = refusal(app.Verify, fv.VerifyRequest(retiree_id="FC-3", frames=still(frame),
                                                   challenge_id=challenge.challenge_id))
    assert missing.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no face reference" in missing.details()


@pytest.mark.stack
def test_only_sealed_encodings_and_evidence_are_stored(
    box: Sandbox, enrolled: dict[str, str],
    matched: tuple[fv.VerifyRequest, fv.VerifyResponse],
) -> None:
    [(sealed, _model)] = box.query(
        "SELECT sealed, model FROM api_face_references WHERE retiree_id = %s", ("FC-1",))
    assert bytes(sealed).startswith(b"LCF1") and len(bytes(sealed)) < 1200  # no image
    rows = box.query("SELECT operation, decision, model, threshold, distance, live, evidence "
                     "FROM api_face_decisions")
    decisions = {r[1] for r in rows}
    assert {"ENROLLED", "MATCH", "NO_FACE"} <= decisions
    for operation, decision, model_, threshold, _distance, live, evidence in rows:
        if operation == "VERIFY" and decision in ("MATCH", "NO_MATCH"):
            assert model_ and threshold and evidence is not None and live is not None
            assert evidence["actions"] and evidence["parallax"]
    digests = box.query("SELECT digest FROM api_face_frame_digests")
    assert digests and all(len(bytes(d)) == 32 for (d,) in digests)  # digests, no image


@pytest.mark.stack
def test_a_match_is_performed_when_its_challenge_began_and_recorded_when_answered(
    box: Sandbox, face_key: str, enrolled: dict[str, str], frame: Image.Image,
    tmp_path: Path,
) -> None:
    """On a campaign clock (``--clock-file``: a sandbox, a drill, the demo's face doors), a
    MATCH's certification is performed when its challenge was issued and recorded when the
    answer arrived, both on that clock; here the two straddle the end of March 31, and the
    challenge's deadline still runs on the wall clock (the clock jumped 100 s)."""
    from datetime import datetime

    from lifecert.events.time import SHANGHAI
    from lifecert.pipeline.campaign_clock import CampaignClock

    clock = tmp_path / "clock.json"
    begun = datetime(2017, 3, 31, 23, 59, 50, tzinfo=SHANGHAI)
    answered = datetime(2017, 4, 1, 0, 1, 30, tzinfo=SHANGHAI)
    CampaignClock.starting(begun).write(clock)
    server = box.start_server("--clock-file", str(clock), "--face-min-parallax", "0",
                              env={"LIFECERT_FACE_KEY": face_key,
                                   "LIFECERT_FACE_TEST_ONLY": "1"}, timeout=240)
    try:
        app = stub(server, "FS-APP", "APP")
        CampaignClock.starting(begun).write(clock)  # the clock runs on from when written
        challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-4"),
                                       timeout=30)
        frames = answer(frame, challenge)
        CampaignClock.starting(answered).write(clock)
        reply = app.Verify(fv.VerifyRequest(retiree_id="FC-4", frames=frames,
                                            attempt_id="APP-CLOCKED-1",
                                            challenge_id=challenge.challenge_id), timeout=60)
    finally:
        server.stop()
    assert reply.decision == fv.MATCH, reply.reason
    [cert] = [c for c in certifications(box) if c["event_id"] == reply.event_id]
    performed, recorded = cert["performed_at"], cert["recorded_at"]
    assert begun <= performed < begun + timedelta(seconds=5), performed
    assert answered <= recorded < answered + timedelta(seconds=5), recorded
    assert reply.recorded_at.ToDatetime(tzinfo=SHANGHAI) == recorded


# ------------------------------------------------------ the demo's cheap face answers
#
# The demo's face doors (lifecert_dev.partners.faces.FaceDoor) prepare each probe photo's
# poses once (for the app, under every screen colour, checked by dlib) and assemble every
# answer from them: the server must still decide on each answer for real.


@pytest.fixture(scope="module")
def demo_doors(photos: Path) -> dict[str, Any]:
    """The demo's app and window camera, their probe photo (obama3.jpg) prepared."""
    from lifecert_dev.partners.faces import FaceDoor

    doors = {"APP": FaceDoor(None, "FACE_APP", photos),  # type: ignore[arg-type]
             "COUNTER": FaceDoor(None, "FACE_COUNTER", photos)}  # type: ignore[arg-type]
    for role, door in doors.items():
        door._posed("obama3.jpg", lit=role == "APP")
    return doors


def cheap_answer(door: Any, challenge: fv.Challenge, monkeypatch: pytest.MonkeyPatch
                 ) -> list[bytes]:
    """``door``'s answer to ``challenge``, dlib forbidden meanwhile: nothing costly is
    done per answer."""
    from lifecert_dev.face import synth

    def no_dlib(_rgb: Any) -> Any:
        raise AssertionError("dlib ran while assembling an answer")

    with monkeypatch.context() as patched:
        patched.setattr(synth, "_landmarks", no_dlib)
        return door.answer("obama3.jpg", challenge)


@pytest.mark.stack
@pytest.mark.parametrize(("role", "agency", "retiree_id"),
                         [("APP", "FS-APP", "FC-6"), ("COUNTER", "FS-W05", "FC-7")])
def test_the_demo_doors_answers_are_new_bytes_each_and_match(
    protocol: ServerProcess, enrolled: dict[str, str], demo_doors: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, role: str, agency: str, retiree_id: str,
) -> None:
    """Three answers from the prepared poses: every frame's bytes new (within an answer
    and across answers), each a MATCH of the real server (the test-only parallax switch
    alone): challenge, order, screen light (the app), replay and face distance checked."""
    client = stub(protocol, agency, role)
    sent: list[bytes] = []
    for n in range(3):
        challenge = client.BeginChallenge(fv.BeginChallengeRequest(retiree_id=retiree_id),
                                          timeout=30)
        assert bool(challenge.screen_colours) == (role == "APP")
        frames = cheap_answer(demo_doors[role], challenge, monkeypatch)
        assert len(frames) == 2 * len(challenge.actions) + 1
        sent += frames
        reply = client.Verify(fv.VerifyRequest(
            retiree_id=retiree_id, frames=frames, challenge_id=challenge.challenge_id,
            attempt_id=f"DEMO-{role}-{n}"), timeout=60)
        assert reply.decision == fv.MATCH, reply.reason
    assert len(set(sent)) == len(sent) == 21


@pytest.mark.stack
def test_the_demo_doors_answer_for_another_man_is_no_match(
    box: Sandbox, protocol: ServerProcess, enrolled: dict[str, str],
    demo_doors: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FC-2's reference is biden.jpg: the app's answer made from obama3.jpg is live (the
    switch) and refused as another person; nothing is certified."""
    before = len(certifications(box))
    app = stub(protocol, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-2"), timeout=30)
    reply = app.Verify(fv.VerifyRequest(
        retiree_id="FC-2", frames=cheap_answer(demo_doors["APP"], challenge, monkeypatch),
        challenge_id=challenge.challenge_id), timeout=60)
    assert reply.decision == fv.NO_MATCH, reply.reason
    assert reply.live and reply.distance > reply.threshold
    assert len(certifications(box)) == before


@pytest.mark.stack
def test_the_demo_doors_answer_is_not_live_for_the_default_server(
    box: Sandbox, server: ServerProcess, enrolled: dict[str, str],
    demo_doors: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the test-only switch, the same kind of answer is refused: its actions are
    seen in order (the prepared poses are checked for that), and its turns lack the
    parallax of a turning head, as any answer made from a still photo must."""
    before = len(certifications(box))
    app = stub(server, "FS-APP", "APP")
    challenge = app.BeginChallenge(fv.BeginChallengeRequest(retiree_id="FC-5"), timeout=30)
    reply = app.Verify(fv.VerifyRequest(
        retiree_id="FC-5", frames=cheap_answer(demo_doors["APP"], challenge, monkeypatch),
        challenge_id=challenge.challenge_id), timeout=60)
    assert reply.decision == fv.NOT_LIVE and "parallax" in reply.reason, reply.reason
    assert len(certifications(box)) == before
