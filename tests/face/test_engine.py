"""Face verification against real photos (face_recognition / dlib, no mocks).

The reference is enrolled from obama.jpg; camera frames are made from *other* photos
(obama3.jpg: the same person on another day; biden.jpg: another person). Live sequences are
synthetic (lifecert_dev.face.synth): a painted blink, or a depth-model head turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from lifecert.face import (
    DEFAULT_THRESHOLD,
    MODEL,
    Enrollment,
    EnrollmentRefused,
    FaceDecision,
    FaceEngine,
)
from lifecert_dev.face import synth
from tests.face.conftest import jpeg, png

Photo = Callable[[str], bytes]
Enrolled = Callable[[str], Enrollment]
Frame = Callable[[str], Image.Image]


def side_by_side(*images: Image.Image, height: int = 400) -> Image.Image:
    scaled = [im.resize((round(im.width * height / im.height), height)) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in scaled), height), (128, 128, 128))
    x = 0
    for im in scaled:
        canvas.paste(im, (x, 0))
        x += im.width
    return canvas


def open_photo(photo: Photo, name: str) -> Image.Image:
    import io

    return Image.open(io.BytesIO(photo(name))).convert("RGB")


# ------------------------------------------------------------------------- enrollment


def test_enrollment_records_a_128d_encoding_and_its_provenance(enrolled: Enrolled) -> None:
    ref = enrolled("obama.jpg")
    assert len(ref.encoding) == 128 * 8
    vector = np.frombuffer(ref.encoding, dtype="<f8")
    assert np.all(np.isfinite(vector)) and 0.5 < np.linalg.norm(vector) < 2.0
    assert ref.model == MODEL
    assert ref.jitters == 10
    assert ref.image_size == (910, 1137)
    top, right, bottom, left = ref.face_box
    assert 0 <= left < right <= 910 and 0 <= top < bottom <= 1137
    assert right - left >= 100


def test_enrollment_refuses_a_photo_without_a_face(engine: FaceEngine, photo: Photo) -> None:
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(photo("coffee.png"))  # a cup of coffee, no face
    assert refused.value.decision is FaceDecision.NO_FACE
    assert "no face found in the reference photo" in refused.value.reason


def test_enrollment_refuses_a_plain_texture(engine: FaceEngine) -> None:
    ramp = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(png(Image.fromarray(ramp).convert("RGB")))
    assert refused.value.decision is FaceDecision.NO_FACE


def test_enrollment_refuses_two_faces_side_by_side(engine: FaceEngine, photo: Photo) -> None:
    pair = side_by_side(open_photo(photo, "obama.jpg"), open_photo(photo, "biden.jpg"))
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(jpeg(pair))
    assert refused.value.decision is FaceDecision.MULTIPLE_FACES
    assert refused.value.reason.startswith("2 faces found in the reference photo")
    assert "exactly one person" in refused.value.reason


def test_enrollment_refuses_a_group_photo(engine: FaceEngine, photo: Photo) -> None:
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(photo("t1.jpg"))
    assert refused.value.decision is FaceDecision.MULTIPLE_FACES
    assert refused.value.reason.startswith("6 faces found")


def test_enrollment_refuses_too_little_resolution(engine: FaceEngine, photo: Photo) -> None:
    small = open_photo(photo, "obama.jpg").resize((150, 187))
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(jpeg(small))
    assert refused.value.decision is FaceDecision.POOR_QUALITY
    assert "below the 100 px minimum" in refused.value.reason
    assert "higher resolution" in refused.value.reason


def test_enrollment_refuses_a_face_cut_off_at_the_edge(engine: FaceEngine, photo: Photo) -> None:
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(photo("obama_partial_face.jpg"))
    assert refused.value.decision is FaceDecision.POOR_QUALITY
    assert "cut off at the image edge" in refused.value.reason


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"GIF89a" + b"\0" * 40])
def test_enrollment_refuses_bytes_that_are_not_jpeg_or_png(engine: FaceEngine, data: bytes) -> None:
    with pytest.raises(EnrollmentRefused) as refused:
        engine.enroll(data)
    assert refused.value.decision is FaceDecision.POOR_QUALITY
    assert "JPEG or PNG" in refused.value.reason


# ------------------------------------------------------------------------ distances


@pytest.mark.parametrize(
    ("reference", "probe", "same"),
    [
        ("obama.jpg", "obama2.jpg", True),
        ("obama.jpg", "obama3.jpg", True),
        ("obama.jpg", "biden.jpg", False),
        ("grace_hopper.jpg", "biden.jpg", False),
        ("grace_hopper.jpg", "obama3.jpg", False),
    ],
)
def test_distance_separates_people_at_the_default_threshold(
    engine: FaceEngine, enrolled: Enrolled, photo: Photo, reference: str, probe: str, same: bool
) -> None:
    distance = engine.distance(enrolled(reference), photo(probe))
    assert (distance <= DEFAULT_THRESHOLD) is same, distance


# ---------------------------------------------------------------------- verification


def test_same_person_with_a_blink_matches(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.blink(frame("obama3.jpg")))
    assert result.decision is FaceDecision.MATCH, result.reason
    assert result.distance is not None and result.distance <= result.threshold
    assert result.threshold == DEFAULT_THRESHOLD
    assert result.model == MODEL
    assert result.frames == 5
    assert result.frame_size == (640, 480)
    assert result.liveness["blink_detected"] is True
    assert result.liveness["blink_frame"] == 2
    assert len(result.liveness["ear"]) == 5
    assert set(result.liveness["distances"]) == {"0", "2"}  # best frame and the blink


def test_same_person_with_a_head_turn_matches(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.head_turn(frame("obama3.jpg")))
    assert result.decision is FaceDecision.MATCH, result.reason
    assert result.liveness["head_turn_detected"] is True
    assert result.liveness["yaw_range"] >= engine.liveness_policy.turn_range
    assert "head turn seen" in result.reason


def test_another_person_does_not_match(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.head_turn(frame("biden.jpg")))
    assert result.decision is FaceDecision.NO_MATCH, result.reason
    assert result.distance is not None and result.distance > 0.7
    assert "not the enrolled person" in result.reason
    assert result.liveness["live"] is True


def test_a_still_photo_repeated_as_frames_is_not_live(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.still(frame("obama3.jpg")))
    assert result.decision is FaceDecision.NOT_LIVE
    assert "no blink and no head turn" in result.reason
    # the right person, and still refused; the distance is recorded as evidence
    assert result.distance is not None and result.distance <= result.threshold
    assert result.liveness["blink_detected"] is False
    assert result.liveness["head_turn_detected"] is False
    assert result.liveness["yaw_range"] == 0.0


def test_a_photo_waved_and_tilted_in_front_of_the_camera_is_not_live(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.handheld(frame("obama3.jpg")))
    assert result.decision is FaceDecision.NOT_LIVE, result.reason
    raw = result.liveness["ear_raw"]
    norm = result.liveness["ear"]
    # tilting the sheet changes the raw eye aspect ratio a lot; the normalised one much less
    assert max(raw) - min(raw) > 1.5 * (max(norm) - min(norm))


def test_a_spliced_sequence_does_not_match(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    # an impostor turns the head in frames 1-3; frames 0 and 4 show the enrolled person
    frames = synth.head_turn(frame("biden.jpg"))
    still = synth.still(frame("obama3.jpg"))
    spliced = [still[0], *frames[1:4], still[4]]
    result = engine.verify(enrolled("obama.jpg"), spliced)
    assert result.decision in (FaceDecision.NOT_LIVE, FaceDecision.NO_MATCH), result.reason


def test_a_frame_without_a_face_is_no_face(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame, photo: Photo
) -> None:
    frames = synth.still(frame("obama3.jpg"))
    frames[3] = jpeg(open_photo(photo, "coffee.png").resize((640, 480)))
    result = engine.verify(enrolled("obama.jpg"), frames)
    assert result.decision is FaceDecision.NO_FACE
    assert result.reason.startswith("no face found in frame 3")
    assert result.distance is None


def test_two_faces_in_a_frame_are_refused(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    two = side_by_side(frame("obama3.jpg"), frame("biden.jpg"), height=480).resize((640, 240))
    pair = jpeg(two)
    result = engine.verify(enrolled("obama.jpg"), [pair] * 5)
    assert result.decision is FaceDecision.MULTIPLE_FACES
    assert result.reason.startswith("2 faces found in frame 0")


def test_a_face_too_small_in_the_frame_is_poor_quality(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    far = frame("obama3.jpg").resize((240, 180))
    result = engine.verify(enrolled("obama.jpg"), [jpeg(far)] * 5)
    assert result.decision is FaceDecision.POOR_QUALITY
    assert "below the 100 px minimum" in result.reason


def test_frames_of_different_sizes_are_poor_quality(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    frames = synth.still(frame("obama3.jpg"))
    frames[1] = jpeg(frame("obama3.jpg").resize((600, 450)))
    result = engine.verify(enrolled("obama.jpg"), frames)
    assert result.decision is FaceDecision.POOR_QUALITY
    assert "send frames of one capture" in result.reason


def test_one_frame_is_not_enough_for_liveness(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.still(frame("obama3.jpg"), 1))
    assert result.decision is FaceDecision.NOT_LIVE
    assert "at least 3 frames" in result.reason


def test_the_threshold_is_configurable_and_recorded(enrolled: Enrolled, frame: Frame) -> None:
    strict = FaceEngine(threshold=0.2)
    result = strict.verify(enrolled("obama.jpg"), synth.blink(frame("obama3.jpg")))
    assert result.decision is FaceDecision.NO_MATCH
    assert result.threshold == 0.2
    assert result.distance is not None and result.distance > 0.2


def test_a_raw_encoding_is_accepted_as_reference(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    frames = synth.blink(frame("obama3.jpg"))
    by_enrollment = engine.verify(enrolled("obama.jpg"), frames)
    by_bytes = engine.verify(enrolled("obama.jpg").encoding, frames)
    assert by_bytes.decision is by_enrollment.decision is FaceDecision.MATCH
    assert by_bytes.distance == pytest.approx(by_enrollment.distance)


def test_bad_references_and_frame_lists_are_caller_errors(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    frames = synth.still(frame("obama3.jpg"))
    with pytest.raises(ValueError, match="1024 bytes"):
        engine.verify(b"\0" * 100, frames)
    other = Enrollment(b"\0" * 1024, "another-model", 1, (0, 1, 1, 0), (1, 1))
    with pytest.raises(ValueError, match="enroll the retiree again"):
        engine.verify(other, frames)
    with pytest.raises(ValueError, match="no frames"):
        engine.verify(enrolled("obama.jpg"), [])
    with pytest.raises(ValueError, match="at most 12"):
        engine.verify(enrolled("obama.jpg"), frames * 3)


def test_a_decision_is_recorded_as_json_without_images(
    engine: FaceEngine, enrolled: Enrolled, frame: Frame
) -> None:
    result = engine.verify(enrolled("obama.jpg"), synth.still(frame("obama3.jpg")))
    record = json.loads(json.dumps(result.as_record()))
    assert record["decision"] == "NOT_LIVE"
    assert record["model"] == MODEL
    assert record["threshold"] == DEFAULT_THRESHOLD
    assert record["distance"] == pytest.approx(result.distance)
    assert record["liveness"]["frames"] == 5
    assert len(json.dumps(record)) < 8000  # evidence, not pixels
