"""The face app and the window cameras as the demo's doors: simulated clients of the API's
FaceVerification service (lifecert/api/face.py), over mutual TLS to the real server, for
the campaign's FACE_APP and FACE_COUNTER certifications.

For each such certification, in the campaign's order:

1. the retiree's reference photo is enrolled by bureau staff (``Enroll``, role STAFF) the
   first time the retiree comes to a face door;
2. the client (role APP, agency ``FS-SIB-FACEAPP``, naming a client address as the app
   must; or role COUNTER, the window's agency) begins a challenge (``BeginChallenge``)
   with the campaign clock at the certification's ``performed_at``;
3. it answers the challenge with frames made from the retiree's probe photo (the actions
   asked, in order; for the app, each frame lit by the screen colour the challenge names)
   and verifies (``Verify``) with the clock at the certification's ``recorded_at`` and the
   campaign's ``certification_id`` as the attempt id. A MATCH makes the server publish the
   CertificationRecorded: performed when the challenge was issued, recorded at the MATCH,
   so the demo's live == replay check compares the campaign's own times.

**Photos.** The face photos that ship inside packages (lifecert_dev.face.photos): a few
photos stand for every retiree of the campaign (each retiree gets one reference and one
probe photo of the same person, by a hash of the id). That is fine for a demo and
nothing more: the server enrolls the same photo for many retirees, which its enrollment
cache (lifecert.face.engine.EnrollmentCache) encodes once.

**Liveness.** The answers are 2-D edits of a still photo (lifecert_dev.face.synth), which
the default parallax check refuses, as it must: no still photo should pass it. The demo's
server is therefore started with ``--face-min-parallax 0`` and the test-only switch
``LIFECERT_FACE_TEST_ONLY=1`` (:func:`server_options`), as tests/api/test_api_face.py
does: everything else (challenge, order of the actions, deadline, single use, frame
replay, screen light for the app, face distance) is the real check. An answer the
server refuses anyway is retried with a new challenge, as a person asked to try again
would, at most ``attempts`` times.

**Cost.** What is costly in making an answer (the 2-D edits, dlib's landmarks, the
screen light) is done once per probe photo (:meth:`FaceDoor._posed`; for the app each pose
under each screen colour, checked by dlib: :meth:`FaceDoor._light`); an answer is then
assembled from those captures in milliseconds, each frame new bytes (:meth:`FaceDoor._frame`).
The server's check, about 0.4 s of a core, is the cost of a face certification.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from lifecert.api.lockouts import CLIENT_ADDRESS_HEADER
from lifecert.api.protos import face_verification_pb2 as fv
from lifecert.api.protos import face_verification_pb2_grpc as fv_grpc
from lifecert.events.catalogue import Event
from lifecert.face.liveness import ChallengePolicy, motion_features
from lifecert_dev.partners.counters import (
    STAFF_AGENCY,
    UNKNOWN_RETIREE,
    ApiDoor,
    ApiServer,
    CounterRefused,
    Door,
    certification,
)

APP_AGENCY = "FS-SIB-FACEAPP"
# (reference photo the staff enroll, probe photo the camera sees): the same person. The
# probe is obama3.jpg, the photo synth's mouth edit is tuned on (on obama.jpg the lit
# open mouth was not seen open in a first demo run: NOT_LIVE, actions missing).
PHOTO_PAIRS: tuple[tuple[str, str], ...] = (
    ("obama.jpg", "obama3.jpg"),
    ("obama2.jpg", "obama3.jpg"),
    ("obama3.jpg", "obama3.jpg"),
)


# A prepared capture is kept when it shows its pose clear of the policy's thresholds by
# this share of them (0.24: a mouth rise of 0.31 for the policy's 0.25, the margin found
# for the lit 2-D edit under the light's noise).
RETAKE_BELOW = 0.24


def pose_margin(state: str, rest: Any, seen: Any, policy: ChallengePolicy | None = None
                ) -> float:
    """How clearly the landmarks ``seen`` show ``state`` (REST, TURN_LEFT, TURN_RIGHT,
    OPEN_MOUTH) against the frame at rest ``rest``, as the server's check judges a frame
    against frame 0 (lifecert.face.liveness.frame_states): the smallest of the relevant
    distances from the policy's thresholds, in shares of them; negative when the server
    would see something else."""
    import numpy as np

    policy = policy or ChallengePolicy()
    features = motion_features(np.array([rest, seen]))
    turn = features["turn"][1]
    rise = features["mouth"][1] - features["mouth"][0]
    still = (policy.turn_min - abs(turn)) / policy.turn_min
    shut = (policy.mouth_open - rise) / policy.mouth_open
    if state == "REST":
        return min(still, shut)
    if state == "OPEN_MOUTH":
        return min((rise - policy.mouth_open) / policy.mouth_open, still)
    side = 1 if state == "TURN_LEFT" else -1
    return min((side * turn - policy.turn_min) / policy.turn_min, shut)


def server_options(face_key: str) -> tuple[list[str], dict[str, str]]:
    """The API server's flags and environment for the face doors (see the module doc):
    the face key, the parallax check off under the test-only switch, the failure budgets
    raised so that a campaign's thousands of verifications by one agency are not taken
    for an attack (the retries stay bounded by :attr:`FaceDoor.attempts`)."""
    return (["--face-min-parallax", "0",
             "--face-failures-per-retiree-day", "1000",
             "--face-failures-per-agency-minute", "1000"],
            {"LIFECERT_FACE_KEY": face_key, "LIFECERT_FACE_TEST_ONLY": "1"})


class _ClientAddress(grpc.UnaryUnaryClientInterceptor):
    """The app acts for the public: every call names the address of the person's phone."""

    def __init__(self) -> None:
        self.address = "198.51.100.1"

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), (CLIENT_ADDRESS_HEADER, self.address)]
        return continuation(details._replace(metadata=metadata), request)


@dataclass
class _Poses:
    """One probe photo as a camera frame, at rest and in each action (``images``, RGB
    arrays), made once; for the app, each of them also captured once under each screen
    colour of the palette (``lit``), checked by dlib (:meth:`FaceDoor._light`)."""

    images: dict[str, Any]
    lit: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass
class FaceStats:
    enrolled: int = 0
    verified: int = 0
    retried: int = 0  # answers refused (not a MATCH) and tried again with a new challenge
    seconds: float = 0.0
    decisions: dict[str, int] = field(default_factory=dict)


class FaceDoor(ApiDoor):
    """The face clients of one channel (FACE_APP: the app; FACE_COUNTER: the windows)."""

    attempts = 6

    def __init__(self, server: ApiServer, channel: str, photos: Path,
                 references: set[str] | None = None, timeout: float = 60.0) -> None:
        """``references``: the retirees whose reference photo staff have enrolled, shared by
        the doors (a retiree of the app may come to a window too)."""
        role = "APP" if channel == "FACE_APP" else "COUNTER"
        super().__init__(server, Door(role, frozenset({("CertificationRecorded", channel)}),
                                      certification), timeout)
        self.channel, self.role, self.photos = channel, role, photos
        self.stats = FaceStats()
        self.rng = random.Random(channel)
        self._poses: dict[tuple[str, bool], _Poses] = {}
        self._stubs: dict[tuple[str, str], tuple[fv_grpc.FaceVerificationStub,
                                                  _ClientAddress | None]] = {}
        self._references = set() if references is None else references
        # (agency, certification id) it got a MATCH for: the API keys a certification by
        # both (two agencies may use the same id: rule 11), so the id alone is not a resend
        self._certified: set[tuple[str, str]] = set()
        self._camera = secrets.token_hex(8)  # this run's camera: frame numbers restart
        self._shots = itertools.count()

    # ------------------------------------------------------------------ clients
    def _stub(self, agency: str, role: str) -> tuple[fv_grpc.FaceVerificationStub,
                                                     _ClientAddress | None]:
        if (agency, role) not in self._stubs:
            assert self.server.server is not None, "the API server is not running"
            channel = self.server.server.channel(agency, role)
            self.server.channels[agency, "face:" + role] = channel  # closed by stop()
            address = _ClientAddress() if role == "APP" else None
            if address is not None:
                channel = grpc.intercept_channel(channel, address)
            self._stubs[agency, role] = (fv_grpc.FaceVerificationStub(channel), address)
        return self._stubs[agency, role]

    def _pair(self, retiree_id: str) -> tuple[str, str]:
        h = int.from_bytes(hashlib.sha256(retiree_id.encode()).digest()[:4], "big")
        return PHOTO_PAIRS[h % len(PHOTO_PAIRS)]

    def _posed(self, probe: str, lit: bool) -> _Poses:
        """The probe photo's frames, prepared once per probe photo (the costly part: the
        2-D edits, dlib's landmarks, the screen light): for the app (``lit``) the milder
        edits the screen light keeps readable, as tests/api/test_api_face.py answers (a
        mouth opened wider is seen less open under the light: tried), each lit by every
        colour of the palette (:meth:`_light`)."""
        if (probe, lit) not in self._poses:
            import numpy as np

            from lifecert_dev.face import synth

            frame = synth.fit((self.photos / probe).read_bytes())
            degrees, mouth = (15.0, 0.35) if lit else (20.0, 0.5)
            images = {"REST": frame, "TURN_LEFT": synth.turn_head(frame, degrees),
                      "TURN_RIGHT": synth.turn_head(frame, -degrees),
                      "OPEN_MOUTH": synth.open_mouth(frame, mouth)}
            poses = _Poses({k: np.asarray(v) for k, v in images.items()})
            if lit:
                poses.lit = self._light(images)
            self._poses[probe, lit] = poses
        return self._poses[probe, lit]

    def _light(self, images: dict[str, Any]) -> dict[tuple[str, str], Any]:
        """Each pose captured under each screen colour of the palette (the screen's light,
        the camera's gains and noise: lifecert_dev.face.synth.screen_lit), once: 4 poses x
        6 colours. A capture is kept when dlib, on its JPEG, sees against every colour's
        capture at rest what the pose is, clear of the policy's thresholds by a quarter
        of them (:func:`pose_margin`), else captured again, up to 8 times (the best kept),
        as an app prompts "open wider" or "turn further": under some colours the 2-D mouth
        edit is not seen open. Any answer assembled from these captures then shows its
        actions to the server's own check (frame i judged against frame 0 alone)."""
        import numpy as np
        from PIL import Image

        from lifecert.face.screenlight import COLOURS, PALETTE
        from lifecert_dev.face import synth

        camera = synth.Camera(strength=0.1)
        rng = np.random.default_rng(self.rng.getrandbits(64))
        marks = {k: synth._landmarks(np.asarray(v)) for k, v in images.items()}

        def capture(state: str, colour: str) -> tuple[Any, Any]:
            gains = synth.drifting_gains(1, camera, rng)[0]
            lit = np.asarray(synth.screen_lit(images[state], marks[state], PALETTE[colour],
                                              camera, rng, gains))
            jpeg = synth.to_bytes(Image.fromarray(lit), quality=camera.quality)
            return lit, synth._landmarks(np.asarray(Image.open(io.BytesIO(jpeg))))

        out: dict[tuple[str, str], Any] = {}
        seen: dict[tuple[str, str], Any] = {}
        for colour in COLOURS:
            out["REST", colour], seen["REST", colour] = capture("REST", colour)
        rests = [seen["REST", c] for c in COLOURS]
        for state in images:
            for colour in COLOURS:
                best, best_margin = None, -np.inf
                for _ in range(8):
                    taken = (out["REST", colour], seen["REST", colour]) \
                        if state == "REST" and best is None else capture(state, colour)
                    margin = min(pose_margin(state, rest, taken[1]) for rest in rests)
                    if margin > best_margin:
                        best, best_margin = taken, margin
                    if margin >= RETAKE_BELOW:
                        break
                assert best is not None
                out[state, colour], seen[state, colour] = best
                if state == "REST":
                    rests = [seen["REST", c] for c in COLOURS]
        return out

    def answer(self, probe: str, challenge: fv.Challenge) -> list[bytes]:
        """Frames answering ``challenge``: at rest, each action in order with a frame at
        rest between, at rest; assembled from the probe's prepared poses (for the app, the
        pose captured under the frame's screen colour), each frame marked afresh and
        encoded (:meth:`_frame`): a few milliseconds a frame, none byte-identical to
        another, here or in any answer."""
        actions = [fv.ChallengeAction.Name(a) for a in challenge.actions]
        layout = ["REST"]
        for i, action in enumerate(actions):
            layout += (["REST"] if i else []) + [action]
        layout.append("REST")
        poses = self._posed(probe, bool(challenge.screen_colours))
        if not challenge.screen_colours:
            return [self._frame(poses.images[k], i, 90) for i, k in enumerate(layout)]
        colours = [fv.ScreenColour.Name(c).removeprefix("SCREEN_")
                   for c in challenge.screen_colours]
        if len(colours) != len(layout):
            raise CounterRefused(f"the challenge names {len(colours)} screen colours for "
                                 f"{len(actions)} actions: the app answers 2 x actions + 1")
        return [self._frame(poses.lit[k, c], i, 85)
                for i, (k, c) in enumerate(zip(layout, colours, strict=True))]

    def _frame(self, image: Any, index: int, quality: int) -> bytes:
        """``image`` (an RGB array) as a new camera frame: its top-left pixel set from the
        frame's index and at random (as lifecert_dev.face.synth._marked), encoded as JPEG
        with the capture's frame number in its comment (as a camera writes its time and
        counter in EXIF): no two frames are byte-identical, within an answer or across
        answers, the server's check against replay (it remembers every frame's SHA-256)."""
        from PIL import Image

        out = image.copy()
        out[0, 0] = ((40 * index) % 256, self.rng.randrange(256), self.rng.randrange(256))
        data = io.BytesIO()
        Image.fromarray(out).save(data, "JPEG", quality=quality,
                                  comment=f"lifecert-demo {self._camera} {next(self._shots)}")
        return data.getvalue()

    # --------------------------------------------------------------- the flow
    def _submit(self, event: Event) -> None:
        started = time.monotonic()
        try:
            self._certify(event)
        finally:
            self.stats.seconds += time.monotonic() - started

    def _certify(self, event: Event) -> None:
        retiree_id = str(event["retiree_id"])
        agency = APP_AGENCY if self.role == "APP" else str(event["agency_id"])
        reference, probe = self._pair(retiree_id)
        if not self._retry_unknown(event, lambda: self._enroll(retiree_id, reference)):
            return
        stub, address = self._stub(agency, self.role)
        if address is not None:  # the retiree's own phone
            h = hashlib.sha256(retiree_id.encode()).digest()
            address.address = f"203.0.113.{h[0]}" if h[1] & 1 else f"198.51.100.{h[0]}"
        # the frames' poses are ready before the challenge: a challenge lasts 30 s
        self._posed(probe, lit=self.role == "APP")
        last = ""
        for _attempt in range(self.attempts):
            self.server.at(event["performed_at"])
            challenge = self._retry_unknown(event, lambda: stub.BeginChallenge(
                fv.BeginChallengeRequest(retiree_id=retiree_id), timeout=30))
            if challenge is None:
                return
            frames = self.answer(probe, challenge)
            self.server.at(event["recorded_at"])
            self.calls += 2
            try:
                reply = stub.Verify(fv.VerifyRequest(
                    retiree_id=retiree_id, frames=frames, challenge_id=challenge.challenge_id,
                    attempt_id=str(event["certification_id"])), timeout=120)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                # the challenge expired (a slow machine): begin a new one, as a person
                # told to try again would
                self.stats.retried += 1
                last = f"{error.code().name}: {error.details()}"
                continue
            decision = fv.FaceDecision.Name(reply.decision)
            self.stats.decisions[decision] = self.stats.decisions.get(decision, 0) + 1
            if reply.decision == fv.MATCH:
                self.stats.verified += 1
                if (agency, reply.certification_id) in self._certified:
                    # the campaign's resend (same agency and certification, a new event id
                    # in the file): the server recorded it once
                    self.absorbed.append(str(event["event_id"]))
                self._certified.add((agency, reply.certification_id))
                return
            self.stats.retried += 1
            last = f"{decision}: {reply.reason}"
        raise CounterRefused(
            f"face verification of {event['type']} {event['event_id']} ({self.channel}, "
            f"agency {agency}) did not match in {self.attempts} attempts; last: {last}")

    def _enroll(self, retiree_id: str, photo: str) -> bool:
        if retiree_id in self._references:
            return True
        staff, _ = self._stub(STAFF_AGENCY, "STAFF")
        reply = staff.Enroll(fv.EnrollRequest(retiree_id=retiree_id,
                                              photo=(self.photos / photo).read_bytes()),
                             timeout=120)
        if not reply.enrolled:
            raise CounterRefused(f"staff could not enroll {photo} as a reference photo: "
                                 f"{reply.refusal}: {reply.reason}")
        self._references.add(retiree_id)
        self.stats.enrolled += 1
        return True

    def _retry_unknown(self, event: Event, call: Callable[[], Any]) -> Any:
        """``call()``; while the server's directory has not read the retiree's enrolment,
        again (as a clerk would retry), never longer than ``timeout``; None when nobody
        is enrolled by that id in the campaign (the event is absorbed: replay refuses it
        too)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return call()
            except grpc.RpcError as error:
                details = str(error.details() or "")
                unknown = (error.code() == grpc.StatusCode.NOT_FOUND
                           and "no retiree with this id" in details)
                if not unknown:
                    raise CounterRefused(
                        f"the API refused {event['type']} {event['event_id']} "
                        f"({self.channel}): {error.code().name}: {details}") from None
                if event["retiree_id"] not in self.enrolled:
                    self.absorbed.append(str(event["event_id"]))
                    return None
                if time.monotonic() > deadline:
                    raise CounterRefused(
                        f"{UNKNOWN_RETIREE}: the API's directory did not know retiree of "
                        f"{event['type']} {event['event_id']} within {self.timeout:.0f} s"
                    ) from None
                time.sleep(0.1)


def face_doors(server: ApiServer, photos: Path) -> dict[str, FaceDoor]:
    """Door name (the demo's table) -> the face door of each channel."""
    enrolled: set[str] = set()
    return {"face-app": FaceDoor(server, "FACE_APP", photos, enrolled),
            "face-counters": FaceDoor(server, "FACE_COUNTER", photos, enrolled)}


def describe(doors: Sequence[FaceDoor]) -> str:
    parts = []
    for door in doors:
        s = door.stats
        per = s.seconds / s.verified if s.verified else 0.0
        decisions = ", ".join(f"{k} {v}" for k, v in sorted(s.decisions.items()))
        parts.append(f"{door.channel}: {s.verified:,} matched ({decisions}), {s.retried} "
                     f"retried, {s.enrolled:,} enrolled, {s.seconds:.0f} s "
                     f"({per:.2f} s each)")
    return "face doors: " + "; ".join(parts)

