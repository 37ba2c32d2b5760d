"""The screen-light check (lifecert.face.screenlight): colours derived from the nonce, the
chroma arithmetic on measured arrays, and on pixels lit by synth's light model through the
engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from lifecert.face import FaceEngine
from lifecert.face.liveness import ChallengePolicy
from lifecert.face.screenlight import (
    COLOURS,
    DIRECTIONS,
    LightPolicy,
    assess_light,
    colours_for,
    measure,
)
from lifecert_dev.face import synth

COLOURS7 = ["RED", "CYAN", "BLUE", "YELLOW", "MAGENTA", "GREEN", "RED"]


def ideal(colours: list[str], amplitude: float = 0.05) -> np.ndarray:
    return np.stack([amplitude * DIRECTIONS[c] for c in colours])


def test_colours_come_from_the_nonce_never_twice_in_a_row() -> None:
    ids = [f"challenge-{i:04d}-abcdefgh" for i in range(300)]
    sequences = [tuple(colours_for(i, 7)) for i in ids]
    assert sequences[0] == tuple(colours_for(ids[0], 7))  # recomputed at Verify
    for seq in sequences:
        assert len(seq) == 7 and set(seq) <= set(COLOURS)
        assert all(a != b for a, b in itertools.pairwise(seq))
    assert len(set(sequences)) >= 295  # of 93,750 sequences: a birthday collision or two
    first = [seq[0] for seq in sequences]
    assert min(first.count(c) for c in COLOURS) > 25  # 50 expected each
    with pytest.raises(ValueError, match="at least two frames"):
        colours_for(ids[0], 1)


def test_a_face_following_the_colours_passes_whatever_its_own_colour() -> None:
    rng = np.random.default_rng(1)
    skin = np.array([0.45, -0.6])  # the face's log-chroma against the room's, any value
    measured = skin + ideal(COLOURS7) + rng.normal(0, 0.004, (7, 2))
    answer = assess_light(measured, COLOURS7)
    assert answer.lit, answer.reason
    assert answer.evidence["correlation"] > 0.95
    assert answer.evidence["nearest"] == COLOURS7


def test_another_challenges_colours_are_refused() -> None:
    other = ["BLUE", "RED", "YELLOW", "CYAN", "GREEN", "MAGENTA", "BLUE"]
    answer = assess_light(ideal(other), COLOURS7)
    assert not answer.lit
    assert "do not follow this challenge's screen colours" in answer.reason


def test_one_frame_lit_by_a_neighbouring_colour_is_refused_by_the_per_frame_check() -> None:
    """Six frames right and one lit by a colour 45 degrees off: the correlation alone
    would pass; the frame is named."""
    lit = list(COLOURS7)
    lit[2] = "MAGENTA"  # BLUE asked
    answer = assess_light(ideal(lit), COLOURS7)
    assert answer.evidence["correlation"] >= LightPolicy().min_correlation
    assert not answer.lit
    assert answer.reason.startswith("frame 2 was lit by MAGENTA, not by BLUE")


def test_a_face_whose_colour_does_not_change_is_refused() -> None:
    rng = np.random.default_rng(2)
    flat = np.array([0.4, -0.5]) + rng.normal(0, 0.0005, (7, 2))  # a printed photo
    answer = assess_light(flat, COLOURS7)
    assert not answer.lit
    assert "does not change with the screen's" in answer.reason


def test_one_frame_per_colour() -> None:
    answer = assess_light(ideal(COLOURS7[:6]), COLOURS7)
    assert not answer.lit
    assert answer.reason.startswith("6 frames for 7 screen colours")
    with pytest.raises(ValueError, match="unknown screen colours"):
        assess_light(ideal(COLOURS7), [*COLOURS7[:6], "WHITE"])


@pytest.fixture(scope="module")
def lit_frames(frame: Callable[[str], Image.Image]) -> tuple[list[bytes], np.ndarray]:
    """Seven frames of obama3 lit by COLOURS7 (synth's light model, with drifting camera
    gains, noise and JPEG), and the photo's landmarks."""
    image = frame("obama3.jpg")
    marks = synth._landmarks(np.asarray(image))
    camera = synth.Camera(strength=0.08, noise=4.0, quality=80)
    data = synth.lit_answer([image] * 7, [marks] * 7, COLOURS7, camera,
                            np.random.default_rng(3))
    return data, marks


def _measured(engine: FaceEngine, frames: list[bytes]) -> np.ndarray:
    from lifecert.face.images import decode

    out = []
    for data in frames:
        decoded = decode(data, max_width=engine.work_width)
        face = engine._one_face(decoded, engine.detection_width, "frame", "-")
        out.append(measure(decoded.rgb, engine._landmarks(decoded.rgb, face.box)))
    return np.stack(out)


def test_pixels_lit_by_the_screen_follow_its_colours(
    engine: FaceEngine, lit_frames: tuple[list[bytes], np.ndarray]
) -> None:
    """On pixels: the face region moves towards each colour, the background barely; the
    camera's per-frame gains (white balance, exposure) cancel in face minus background."""
    measured = _measured(engine, lit_frames[0])
    answer = assess_light(measured, COLOURS7)
    assert answer.lit, answer.reason
    shuffled = ["GREEN", "BLUE", "RED", "MAGENTA", "CYAN", "YELLOW", "GREEN"]
    assert not assess_light(measured, shuffled).lit


def test_unlit_frames_under_drifting_gains_are_refused(
    engine: FaceEngine, frame: Callable[[str], Image.Image]
) -> None:
    """No screen light, only the camera's white balance and exposure drifting over the
    whole frame: nothing follows the colours."""
    image = frame("obama3.jpg")
    marks = synth._landmarks(np.asarray(image))
    camera = synth.Camera(strength=0.0, gain_drift=0.05, exposure_drift=0.1)
    data = synth.lit_answer([image] * 7, [marks] * 7, COLOURS7, camera,
                            np.random.default_rng(4))
    answer = assess_light(_measured(engine, data), COLOURS7)
    assert not answer.lit
    assert answer.evidence["correlation"] < 0.5, answer.evidence


def test_the_engine_checks_the_light_after_the_actions(
    engine: FaceEngine, frame: Callable[[str], Image.Image], enrolled: Callable[[str], object],
) -> None:
    """A lit answer MATCHes with its own colours and is NOT_LIVE, with the light's reason,
    against another challenge's; a frame count other than the colours' is refused before
    anything is decoded. (Parallax off: synth's turns are 2-D warps.)"""
    permissive = FaceEngine(challenge=ChallengePolicy(min_parallax=0.0))
    actions = ["TURN_LEFT", "OPEN_MOUTH", "TURN_RIGHT"]
    data = synth.lit_still_answer(frame("obama3.jpg"), actions, COLOURS7,
                                  np.random.default_rng(5), synth.Camera(strength=0.1),
                                  degrees=15.0)
    reference = enrolled("obama.jpg")
    right = permissive.verify(reference, data, actions, colours=COLOURS7)
    assert right.decision.value == "MATCH", right.reason
    assert right.liveness["screen_light"]["correlation"] >= 0.8
    other = ["BLUE", "RED", "YELLOW", "CYAN", "GREEN", "MAGENTA", "BLUE"]
    wrong = permissive.verify(reference, data, actions, colours=other)
    assert wrong.decision.value == "NOT_LIVE"
    assert "screen colours" in wrong.reason or "was lit by" in wrong.reason
    short = permissive.verify(reference, data[:6], actions, colours=COLOURS7)
    assert short.decision.value == "NOT_LIVE"
    assert short.reason.startswith("6 frames for 7 screen colours")


def test_with_screen_light_each_action_sits_under_its_own_colour(
    frame: Callable[[str], Image.Image],
) -> None:
    """One frame per colour: at rest, action 1, at rest, action 2, at rest, action 3, at
    rest. The same actions in order but shifted by a frame (so that another colour lights
    them) pass the order check and are refused by the layout, naming the frame."""
    from lifecert.face.liveness import assess_challenge, frame_layout

    points = synth._landmarks(np.asarray(frame("obama3.jpg")))
    actions = ["TURN_LEFT", "OPEN_MOUTH", "TURN_RIGHT"]
    assert frame_layout(actions) == ["NEUTRAL", "TURN_LEFT", "NEUTRAL", "OPEN_MOUTH",
                                     "NEUTRAL", "TURN_RIGHT", "NEUTRAL"]
    marks, boxes = synth.live_answer_landmarks(points, actions, np.random.default_rng(8),
                                               noise=0.0, held=1)
    assert len(marks) == 7
    assert assess_challenge(marks, boxes, actions, one_frame_each=True).live
    shifted = [0, 6, 1, 2, 3, 4, 5]  # a frame at rest first: every action a frame late
    loose = assess_challenge(marks[shifted], [boxes[i] for i in shifted], actions)
    assert loose.live, loose.reason  # without screen light the order is all that counts
    strict = assess_challenge(marks[shifted], [boxes[i] for i in shifted], actions,
                              one_frame_each=True)
    assert not strict.live
    assert strict.reason.startswith("frame 1 shows NEUTRAL where this challenge's frame 1 "
                                    "is TURN_LEFT")
