"""Face verification for the FACE_APP and FACE_COUNTER channels (face_recognition / dlib).

- :meth:`FaceEngine.enroll` turns a reference photo (the social-security card photo) into a
  128-d encoding, computed with several jitters; it refuses a photo with no face, several
  faces, a face cut off at the edge, or too little resolution.
- :meth:`FaceEngine.verify` takes a short sequence of camera frames: it downscales each for
  detection, requires exactly one face per frame, judges liveness from the landmarks over
  the frames (see :mod:`lifecert.face.liveness`), and compares the encoding distance of the
  best frame and of the frame that showed the blink or turn with the threshold.

Images are decoded in memory and never stored; only encodings leave this module (seal them
with :func:`lifecert.sealing.seal` before storing them).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from lifecert.face import _lib
from lifecert.face.images import MAX_PIXELS, BadImage, Decoded, decode, downscale
from lifecert.face.liveness import ChallengePolicy, LivenessPolicy, assess, assess_challenge
from lifecert.face.screenlight import LightAnswer, LightPolicy, assess_light, measure

# Chosen from the measured trade-off in docs/face.md (the library's own default is 0.6).
DEFAULT_THRESHOLD = 0.5
MODEL = "dlib_face_recognition_resnet_model_v1/shape_predictor_5_face_landmarks"
ENCODING_DIMS = 128
ENCODING_BYTES = ENCODING_DIMS * 8

Box = tuple[int, int, int, int]  # (top, right, bottom, left), pixels, as face_recognition


class FaceDecision(enum.Enum):
    MATCH = "MATCH"
    NO_MATCH = "NO_MATCH"
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    NOT_LIVE = "NOT_LIVE"
    POOR_QUALITY = "POOR_QUALITY"


class FaceRefused(ValueError):
    """An image that cannot be used; ``decision`` and ``reason`` say why and what to do."""

    def __init__(self, decision: FaceDecision, reason: str) -> None:
        super().__init__(f"{decision.value}: {reason}")
        self.decision = decision
        self.reason = reason

    def __reduce__(self) -> tuple[Any, tuple[FaceDecision, str]]:
        # the same refusal back from a worker process (lifecert.face.pool)
        return (type(self), (self.decision, self.reason))


class EnrollmentRefused(FaceRefused):
    """The reference photo is refused (NO_FACE, MULTIPLE_FACES or POOR_QUALITY)."""


@dataclass(frozen=True)
class Enrollment:
    """A reference encoding: 128 float64, little-endian (``numpy.tobytes``)."""

    encoding: bytes
    model: str
    jitters: int
    face_box: Box  # (top, right, bottom, left) in the original photo's pixels
    image_size: tuple[int, int]  # (width, height) of the original photo

    def vector(self) -> np.ndarray:
        return encoding_vector(self.encoding)


@dataclass(frozen=True)
class Verification:
    decision: FaceDecision
    distance: float | None
    threshold: float
    model: str
    frames: int
    frame_size: tuple[int, int]  # (width, height) of the frames as sent
    liveness: dict[str, Any]
    reason: str

    @property
    def matched(self) -> bool:
        return self.decision is FaceDecision.MATCH

    def as_record(self) -> dict[str, Any]:
        """A JSON-ready record of the decision (no image data), for the audit trail."""
        record = asdict(self)
        record["decision"] = self.decision.value
        record["frame_size"] = list(self.frame_size)
        return record


def encoding_vector(encoding: bytes) -> np.ndarray:
    if len(encoding) != ENCODING_BYTES:
        raise ValueError(
            f"a face encoding is {ENCODING_BYTES} bytes (128 float64), got {len(encoding)}"
        )
    vector = np.frombuffer(encoding, dtype="<f8")
    if not np.all(np.isfinite(vector)):
        raise ValueError("the face encoding contains non-finite values")
    return vector


def encoding_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f8").reshape(ENCODING_DIMS).tobytes()


@dataclass
class _Face:
    box: Box  # in working pixels
    score: float
    landmarks: np.ndarray | None = field(default=None)


@dataclass
class _Attempt:
    """A verification as far as it has got: what its refusal or decision reports."""

    threshold: float
    model: str
    frames: int
    evidence: dict[str, Any]
    frame_size: tuple[int, int] = (0, 0)  # (width, height), once frame 0 is decoded

    def decide(
        self, decision: FaceDecision, reason: str, distance: float | None = None
    ) -> Verification:
        return Verification(decision, distance, self.threshold, self.model, self.frames,
                            self.frame_size, self.evidence, reason)


@dataclass(frozen=True)
class _Live:
    """Liveness as judged: its reason, the frame to match and the event's frame."""

    live: bool
    reason: str
    best: int
    event_frame: int | None


class EnrollmentCache:
    """The last ``size`` enrollments, keyed by the SHA-256 of the photo's bytes (a bounded
    LRU, in this process's memory only; never logged, never written anywhere).

    Encoding a reference photo costs about a second (ten jitters); a bureau enrolls the same
    card photo again when it re-enrolls a retiree after a failed upload, a retry or a move,
    and a drill or a demo enrolls the same few photos for many retirees. Only a photo
    identical byte for byte hits: any other photo, however alike, is encoded afresh. The
    entries are biometric data (the encoding of a face), so they live no longer than the
    process and are never persisted (docs/face.md, docs/security.md). Thread-safe: the API
    runs the engine on a pool of threads. ``size`` 0 turns it off."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, Enrollment] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Enrollment | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, enrollment: Enrollment) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._entries[key] = enrollment
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the keys or the encodings
        return f"EnrollmentCache({len(self)}/{self.size} entries, {self.hits} hits)"


class FaceEngine:
    """Enrollment and verification with one configuration.

    ``threshold``: largest encoding distance that still matches. ``detection_width``: frames
    are downscaled to this width for face detection (HOG, no upsampling), so a frame's face
    must be at least about 80/detection_width of its width. ``min_face_px``: smallest face
    box width, in the original image's pixels, for enrollment and verification.
    ``jitters``: re-samplings averaged into the reference encoding.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        *,
        detection_width: int = 320,
        min_face_px: int = 100,
        jitters: int = 10,
        work_width: int = 640,
        enrollment_width: int = 1024,
        max_frames: int = 12,
        liveness: LivenessPolicy | None = None,
        challenge: ChallengePolicy | None = None,
        light: LightPolicy | None = None,
        max_pixels: int = MAX_PIXELS,
        enrollment_cache: int = 256,
    ) -> None:
        if not 0.0 < threshold < 2.0:
            raise ValueError(f"threshold must be between 0 and 2 (a distance), got {threshold}")
        if detection_width < 80 or work_width < detection_width:
            raise ValueError("need 80 <= detection_width <= work_width")
        if jitters < 1 or min_face_px < 1 or max_frames < 1:
            raise ValueError("jitters, min_face_px and max_frames must be positive")
        if enrollment_cache < 0:
            raise ValueError(f"enrollment_cache must be 0 (off) or more, got {enrollment_cache}")
        self._fr: ModuleType = _lib.load()
        import dlib  # after _lib.load() checked it

        self._dlib = dlib
        self.threshold = float(threshold)
        self.detection_width = detection_width
        self.min_face_px = min_face_px
        self.jitters = jitters
        self.work_width = work_width
        self.enrollment_width = enrollment_width
        self.max_frames = max_frames
        self.liveness_policy = liveness or LivenessPolicy()
        self.challenge_policy = challenge or ChallengePolicy()
        self.light_policy = light or LightPolicy()
        self.max_pixels = max_pixels
        self.model = MODEL
        self.enrollments = EnrollmentCache(enrollment_cache)

    # ----------------------------------------------------------------- detection
    def _detect(self, rgb: np.ndarray, width: int, upsample: int) -> list[_Face]:
        small, scale = downscale(rgb, width)
        rects, scores, _ = self._fr.api.face_detector.run(small, upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            faces.append(
                _Face(
                    box=(
                        round(rect.top() / scale),
                        round(rect.right() / scale),
                        round(rect.bottom() / scale),
                        round(rect.left() / scale),
                    ),
                    score=float(score),
                )
            )
        faces.sort(key=lambda f: f.box[1] - f.box[3], reverse=True)
        return faces

    def _one_face(
        self, image: Decoded, width: int, what: str, fix: str, upsample: int = 0
    ) -> _Face:
        """The single usable face of ``image`` or :class:`FaceRefused`."""
        faces = self._detect(image.rgb, width, upsample)
        if not faces and upsample == 0:
            # Look again for smaller faces, to tell "too small" from "none".
            faces = self._detect(image.rgb, width, 1)
        if not faces:
            raise FaceRefused(FaceDecision.NO_FACE, f"no face found in {what}: {fix}")
        if len(faces) > 1:
            raise FaceRefused(
                FaceDecision.MULTIPLE_FACES,
                f"{len(faces)} faces found in {what}: exactly one person may be in the picture",
            )
        face = faces[0]
        top, right, bottom, left = face.box
        height, width_px = image.rgb.shape[:2]
        face_px = round((right - left) / image.scale)
        if face_px < self.min_face_px:
            raise FaceRefused(
                FaceDecision.POOR_QUALITY,
                f"the face in {what} is {face_px} px wide, below the {self.min_face_px} px "
                "minimum: use a higher resolution or move closer to the camera",
            )
        margin = 1
        if top < -margin or left < -margin or bottom > height + margin or right > width_px + margin:
            raise FaceRefused(
                FaceDecision.POOR_QUALITY,
                f"the face in {what} is cut off at the image edge: centre the whole face",
            )
        return face

    def _clip(self, box: Box, rgb: np.ndarray) -> Box:
        height, width = rgb.shape[:2]
        top, right, bottom, left = box
        return (max(top, 0), min(right, width - 1), min(bottom, height - 1), max(left, 0))

    def _encode(self, rgb: np.ndarray, box: Box, jitters: int) -> np.ndarray:
        found = self._fr.face_encodings(
            rgb, known_face_locations=[self._clip(box, rgb)], num_jitters=jitters, model="small"
        )
        return np.asarray(found[0], dtype=np.float64)

    def _landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        top, right, bottom, left = box
        shape = self._fr.api.pose_predictor_68_point(
            rgb, self._dlib.rectangle(left, top, right, bottom)
        )
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    # ---------------------------------------------------------------- enrollment
    def enroll(self, image: bytes) -> Enrollment:
        """The reference encoding of the one face in ``image`` (JPEG or PNG bytes).

        The same photo, byte for byte, is encoded once: the enrollment is kept in memory
        (:class:`EnrollmentCache`, keyed by the SHA-256 of the bytes) and given again."""
        key = hashlib.sha256(image).digest()
        cached = self.enrollments.get(key)
        if cached is not None:
            return cached
        enrollment = self._enroll(image)
        self.enrollments.put(key, enrollment)
        return enrollment

    def _enroll(self, image: bytes) -> Enrollment:
        try:
            decoded = decode(image, max_width=self.enrollment_width)
        except BadImage as exc:
            raise EnrollmentRefused(FaceDecision.POOR_QUALITY, str(exc)) from exc
        try:
            face = self._one_face(
                decoded,
                min(640, self.enrollment_width),
                "the reference photo",
                "use a frontal photo of the retiree's face, well lit, not a document scan "
                "of poor quality",
                upsample=1,  # one photo: also look for small faces in the background
            )
        except FaceRefused as refused:
            raise EnrollmentRefused(refused.decision, refused.reason) from None
        vector = self._encode(decoded.rgb, face.box, self.jitters)
        top, right, bottom, left = (round(v / decoded.scale) for v in face.box)
        return Enrollment(
            encoding=encoding_bytes(vector),
            model=self.model,
            jitters=self.jitters,
            face_box=(top, right, bottom, left),
            image_size=decoded.size,
        )

    def _reference(self, reference: Enrollment | bytes) -> np.ndarray:
        if isinstance(reference, Enrollment):
            if reference.model != self.model:
                raise ValueError(
                    f"the reference was enrolled with model {reference.model!r}, this engine "
                    f"uses {self.model!r}: enroll the retiree again"
                )
            return reference.vector()
        return encoding_vector(bytes(reference))

    def distance(self, reference: Enrollment | bytes, image: bytes) -> float:
        """Encoding distance between the reference and the one face of a single image,
        without liveness (for calibration and diagnostics; never a certification).
        Raises :class:`FaceRefused` when the image has no usable face."""
        ref = self._reference(reference)
        try:
            decoded = decode(image, max_width=self.work_width)
        except BadImage as exc:
            raise FaceRefused(FaceDecision.POOR_QUALITY, str(exc)) from exc
        face = self._one_face(decoded, self.detection_width, "the image", "show one face")
        return float(np.linalg.norm(self._encode(decoded.rgb, face.box, 1) - ref))

    # -------------------------------------------------------------- verification
    def verify(
        self, reference: Enrollment | bytes, frames: Sequence[bytes],
        actions: Sequence[str] | None = None,
        pick: Callable[[Sequence[int]], int] = secrets.choice,
        colours: Sequence[str] | None = None,
    ) -> Verification:
        """Verify that ``frames`` (JPEG/PNG bytes of one short capture, e.g. five frames)
        show the enrolled person, alive. A ``bytes`` reference is a raw encoding.

        With ``actions`` (a challenge, see :func:`lifecert.face.liveness.assess_challenge`)
        the frames must answer them in order; the best neutral frame and the peak frame of
        one action, chosen by ``pick`` (at random: a splice of another face into any action
        is caught with that action's share), are encoded and must both match.

        With ``colours`` (a screen-light challenge, see
        :func:`lifecert.face.screenlight.assess_light`) there is exactly one frame per
        colour and the face's chroma must follow them, frame by frame."""
        ref = self._reference(reference)
        if isinstance(frames, bytes | bytearray):
            raise TypeError("frames is a sequence of images, not one image")
        if not frames:
            raise ValueError("no frames: send a short sequence of camera frames")
        if len(frames) > self.max_frames:
            raise ValueError(f"{len(frames)} frames, at most {self.max_frames} are accepted")
        count = len(frames)
        attempt = _Attempt(self.threshold, self.model, count, {"frames": count})
        evidence = attempt.evidence
        if colours is not None and len(colours) != count:
            evidence["screen_light"] = {"colours": list(colours)}
            return attempt.decide(
                FaceDecision.NOT_LIVE,
                f"{count} frames for {len(colours)} screen colours: send exactly one frame "
                "per colour of the challenge, each taken while the screen shows its colour")
        try:
            decoded = self._decode_frames(frames, attempt)
            faces = self._frame_faces(decoded)
        except FaceRefused as refused:
            return attempt.decide(refused.decision, refused.reason)
        evidence["face_px"] = [round((f.box[1] - f.box[3]) / decoded[0].scale) for f in faces]
        live = self._liveness(decoded, faces, actions, pick, colours, evidence)
        return self._match(ref, decoded, faces, live, actions is not None, attempt)

    def _decode_frames(self, frames: Sequence[bytes], attempt: _Attempt) -> list[Decoded]:
        """The frames decoded, all of one size (``attempt.frame_size``, once frame 0 is
        decoded); :class:`FaceRefused` (POOR_QUALITY) for the first that is not."""
        decoded: list[Decoded] = []
        for i, data in enumerate(frames):
            try:
                decoded.append(decode(data, max_width=self.work_width,
                                      max_pixels=self.max_pixels))
            except BadImage as exc:
                raise FaceRefused(FaceDecision.POOR_QUALITY, f"frame {i}: {exc}") from None
            if i == 0:
                attempt.frame_size = decoded[0].size
            elif decoded[i].size != attempt.frame_size:
                frame_size = attempt.frame_size
                raise FaceRefused(
                    FaceDecision.POOR_QUALITY,
                    f"frame {i} is {decoded[i].size[0]}x{decoded[i].size[1]}, frame 0 is "
                    f"{frame_size[0]}x{frame_size[1]}: send frames of one capture",
                )
        return decoded

    def _frame_faces(self, decoded: list[Decoded]) -> list[_Face]:
        """The one face of each frame, with its landmarks; :class:`FaceRefused` for the
        first frame without exactly one usable face."""
        faces: list[_Face] = []
        for i, image in enumerate(decoded):
            face = self._one_face(
                image,
                self.detection_width,
                f"frame {i}",
                "face the camera, closer and in better light, so that the face fills "
                f"at least {100 * 80 // self.detection_width}% of the frame's width",
            )
            face.landmarks = self._landmarks(image.rgb, face.box)
            faces.append(face)
        return faces

    def _liveness(
        self, decoded: list[Decoded], faces: list[_Face], actions: Sequence[str] | None,
        pick: Callable[[Sequence[int]], int], colours: Sequence[str] | None,
        evidence: dict[str, Any],
    ) -> _Live:
        """Liveness by blink or turn, or by the challenge's actions (and, with
        ``colours``, the screen's light on the face); its evidence goes into ``evidence``."""
        landmarks = np.stack([f.landmarks for f in faces if f.landmarks is not None])
        boxes = [f.box for f in faces]
        event_frame: int | None
        if actions is None:
            live = assess(landmarks, boxes, self.liveness_policy)
            is_live, reason, best, event_frame = (live.live, live.reason, live.best_frame,
                                                   live.event_frame)
            evidence.update(live.evidence)
        else:
            answer = assess_challenge(landmarks, boxes, actions, self.challenge_policy,
                                      one_frame_each=colours is not None)
            is_live, reason, best = answer.live, answer.reason, answer.best_frame
            event_frame = pick(answer.action_frames) if answer.action_frames else None
            evidence.update(answer.evidence)
        if colours is not None:
            try:
                measured = np.stack([measure(decoded[i].rgb, f.landmarks)
                                     for i, f in enumerate(faces) if f.landmarks is not None])
            except ValueError as exc:
                lit = LightAnswer(False, f"{exc}: move closer to the camera", {})
            else:
                lit = assess_light(measured, colours, self.light_policy)
            evidence["screen_light"] = lit.evidence
            if is_live and not lit.lit:
                is_live, reason = False, lit.reason
        evidence["live"] = is_live
        return _Live(is_live, reason, best, event_frame)

    def _match(
        self, ref: np.ndarray, decoded: list[Decoded], faces: list[_Face], live: _Live,
        challenged: bool, attempt: _Attempt,
    ) -> Verification:
        """The decision: the best frame (and the liveness event's frame, when live) encoded
        and compared with the reference."""
        evidence, best, event_frame = attempt.evidence, live.best, live.event_frame
        d_best = float(np.linalg.norm(self._encode(decoded[best].rgb, faces[best].box, 1) - ref))
        distances = {best: d_best}
        if live.live and event_frame is not None and event_frame != best:
            event = event_frame
            distances[event] = float(
                np.linalg.norm(self._encode(decoded[event].rgb, faces[event].box, 1) - ref)
            )
        evidence["distances"] = {str(k): round(v, 4) for k, v in sorted(distances.items())}
        distance = max(distances.values())
        reason = live.reason
        if not live.live:
            return attempt.decide(FaceDecision.NOT_LIVE, reason, distance)
        if challenged and len(distances) == 2:
            # The turned face is compared with a frontal reference: it is farther from it
            # than the frontal frame (docs/face.md), so it gets the splice margin.
            assert event_frame is not None
            turned = evidence["states"][event_frame] in ("TURN_LEFT", "TURN_RIGHT")
            limit = self.threshold + (self.challenge_policy.turned_margin if turned else 0.0)
            evidence["action_frame_limit"] = round(limit, 4)
            if distances[event_frame] > limit:
                return attempt.decide(
                    FaceDecision.NO_MATCH,
                    f"{reason}; but frame {event_frame} (an action) is {distances[event_frame]:.3f}"
                    f" from the reference, above {limit:.3f}: not the same person throughout: "
                    "certify at a counter instead", distance)
            distance = d_best
        if distance <= self.threshold:
            return attempt.decide(
                FaceDecision.MATCH,
                f"{reason}; distance {distance:.3f} <= threshold {self.threshold:.3f}",
                distance,
            )
        return attempt.decide(
            FaceDecision.NO_MATCH,
            f"{reason}; distance {distance:.3f} > threshold {self.threshold:.3f}: not the "
            "enrolled person (or a very different photo): certify at a counter instead",
            distance,
        )
