"""Liveness arithmetic on landmark arrays (no images): a flat photo moved in any affine way
stays not live; closing the eyelids or moving the nose tip relative to the face is live."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from lifecert.face.liveness import LivenessPolicy, assess, eye_aspect_ratio


def face() -> np.ndarray:
    """A plausible 68-point face, eyes open, outer eye corners 100 px apart."""
    points = np.zeros((68, 2))
    points[0:17] = [(150 + 100 * np.cos(a), 250 + 100 * np.sin(a))
                    for a in np.linspace(np.pi, 0, 17) * -1 + np.pi]  # fmt: skip
    points[8] = (200, 350)  # chin
    for start, x0 in ((36, 150), (42, 220)):
        w = 30
        points[start : start + 6] = [
            (x0, 200), (x0 + w / 3, 195), (x0 + 2 * w / 3, 195),
            (x0 + w, 200), (x0 + 2 * w / 3, 205), (x0 + w / 3, 205),
        ]  # fmt: skip
    points[36] = (150, 200)
    points[45] = (250, 200)
    points[27:31] = [(200, 200), (200, 215), (200, 230), (200, 245)]
    points[31:36] = [(185, 255), (192, 258), (200, 260), (208, 258), (215, 255)]
    points[48] = (175, 290)
    points[54] = (225, 290)
    return points


def affine(points: np.ndarray, angle: float, sx: float, sy: float, dx: float) -> np.ndarray:
    a = np.radians(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points - 200) @ (rot @ np.diag([sx, sy])).T + 200 + dx


def boxes(frames: np.ndarray) -> list[tuple[int, int, int, int]]:
    out = []
    for f in frames:
        left, top = f.min(axis=0)
        right, bottom = f.max(axis=0)
        out.append((int(top), int(right), int(bottom), int(left)))
    return out


def test_eye_aspect_ratio_of_an_open_and_a_closed_eye() -> None:
    eye = face()[36:42]
    assert eye_aspect_ratio(eye) == pytest.approx(10 / 30, abs=0.02)
    shut = eye.copy()
    shut[[1, 2, 4, 5], 1] = 200
    assert eye_aspect_ratio(shut) == 0.0


def test_identical_frames_are_not_live() -> None:
    frames = np.stack([face()] * 5)
    result = assess(frames, boxes(frames))
    assert not result.live
    assert result.evidence["yaw_range"] == 0.0
    assert result.evidence["blink_ratio_min"] == 1.0


def test_a_flat_photo_rotated_scaled_and_tilted_is_not_live() -> None:
    base = face()
    moves = [(0, 1, 1, 0), (8, 1, 1, 5), (-6, 1, 0.7, -5), (3, 0.75, 1, 3), (0, 1.1, 1.1, 0)]
    frames = np.stack([affine(base, *m) for m in moves])
    result = assess(frames, boxes(frames))
    assert not result.live
    raw = result.evidence["ear_raw"]
    assert max(raw) / min(raw) > 1.3  # a naive EAR threshold would see a "blink"
    assert result.evidence["blink_ratio_min"] == pytest.approx(1.0, abs=0.01)
    assert result.evidence["yaw_range"] == pytest.approx(0.0, abs=1e-6)


def test_closing_both_eyes_in_one_frame_is_a_blink() -> None:
    frames = np.stack([face()] * 5)
    for eye in (slice(37, 39), slice(43, 45)):
        frames[2, eye, 1] += 4  # upper lid down
    frames[2, [40, 41, 46, 47], 1] -= 2  # lower lid up
    result = assess(frames, boxes(frames))
    assert result.live and result.event_frame == 2
    assert result.evidence["blink_detected"] is True
    assert result.best_frame != 2


def test_winking_one_eye_is_not_a_blink() -> None:
    frames = np.stack([face()] * 5)
    frames[2, 37:39, 1] += 4
    frames[2, 40:42, 1] -= 2
    assert not assess(frames, boxes(frames)).live


def test_the_nose_moving_against_the_face_is_a_head_turn() -> None:
    frames = np.stack([face()] * 5)
    for i, shift in enumerate((0, 6, 12, 6, 0)):
        frames[i, 27:36, 0] += shift  # 12 px of nose parallax = 0.12 eye distances
    result = assess(frames, boxes(frames))
    assert result.live and result.evidence["head_turn_detected"] is True
    assert result.evidence["yaw_range"] == pytest.approx(0.12, abs=0.01)


def test_a_jump_between_frames_is_not_live_even_with_a_blink() -> None:
    frames = np.stack([face()] * 5)
    frames[2, 37:39, 1] += 4
    frames[2, 43:45, 1] += 4
    frames[3] += 150  # the face jumps across the frame
    result = assess(frames, boxes(frames))
    assert not result.live
    assert result.evidence["track_continuous"] is False
    assert "one continuous capture" in result.reason


def test_too_few_frames() -> None:
    frames = np.stack([face()] * 2)
    result = assess(frames, boxes(frames), LivenessPolicy(min_frames=3))
    assert not result.live and "at least 3 frames" in result.reason


# ------------------------------------------------------------------ challenge-response

def test_random_actions_never_repeat_and_always_hold_a_turn() -> None:
    import random

    from lifecert.face.liveness import TURN_LEFT, TURN_RIGHT, random_actions

    rng = random.Random(7)
    seen = set()
    for _ in range(300):
        actions = random_actions(3, rng)
        assert len(actions) == 3 and all(a != b for a, b in itertools.pairwise(actions))
        assert {TURN_LEFT, TURN_RIGHT} & set(actions)
        seen.add(tuple(actions))
    assert len(seen) == 12  # every sequence of three without a repeat
    with pytest.raises(ValueError, match="at least two"):
        random_actions(1, rng)


# dlib's 68 landmarks of obama3.jpg as lifecert_dev.face.synth.fit frames it (640x480)
REAL_FACE = np.array([
    (280, 192), (281, 208), (283, 224), (285, 238), (292, 252), (303, 262), (319, 269),
    (334, 273), (351, 275), (367, 275), (379, 269), (389, 260), (397, 249), (402, 237),
    (405, 223), (407, 210), (407, 198), (306, 167), (314, 158), (326, 153), (339, 152),
    (351, 156), (369, 157), (380, 156), (391, 159), (400, 166), (404, 176), (360, 170),
    (361, 177), (362, 185), (363, 193), (343, 204), (351, 206), (359, 208), (365, 208),
    (372, 207), (318, 174), (325, 170), (333, 169), (340, 174), (333, 175), (325, 175),
    (372, 178), (380, 175), (387, 176), (392, 182), (386, 182), (379, 180), (326, 230),
    (338, 222), (349, 218), (356, 221), (363, 220), (371, 226), (378, 236), (369, 237),
    (361, 236), (354, 236), (346, 234), (337, 233), (330, 229), (348, 226), (356, 227),
    (363, 227), (374, 234), (362, 229), (355, 229), (348, 227),
], dtype=float)


def test_fresh_actions_avoid_the_sequences_answered_lately() -> None:
    import random

    from lifecert.face.liveness import fresh_actions, sequences

    rng = random.Random(5)
    everything = sequences(3)
    answered = {seq: i for i, seq in enumerate(everything[:11])}
    for _ in range(20):
        assert tuple(fresh_actions(3, rng, answered)) == everything[11]
    answered[everything[11]] = 99
    assert tuple(fresh_actions(3, rng, answered)) == everything[0]  # the least recent


def live_answer(actions: list[str], seed: int = 3) -> tuple[np.ndarray, list[Any]]:
    from lifecert_dev.face import synth

    return synth.live_answer_landmarks(REAL_FACE, actions, np.random.default_rng(seed))


def test_a_rigid_head_answering_in_order_is_live() -> None:
    from lifecert.face.liveness import assess_challenge

    actions = ["TURN_LEFT", "OPEN_MOUTH", "TURN_RIGHT"]
    marks, found = live_answer(actions)
    result = assess_challenge(marks, found, actions)
    assert result.live, result.reason
    assert len(result.action_frames) == 3 and result.best_frame not in result.action_frames
    assert all(p >= 1.5 for p in result.evidence["parallax"] if p is not None)


def test_actions_out_of_order_or_missing_are_refused() -> None:
    from lifecert.face.liveness import assess_challenge

    marks, found = live_answer(["TURN_LEFT", "OPEN_MOUTH", "TURN_RIGHT"])
    for asked in (["TURN_RIGHT", "OPEN_MOUTH", "TURN_LEFT"],
                  ["TURN_LEFT", "TURN_RIGHT", "OPEN_MOUTH"],
                  ["TURN_LEFT", "OPEN_MOUTH", "TURN_RIGHT", "OPEN_MOUTH"]):
        result = assess_challenge(marks, found, asked)
        assert not result.live and "in that order" in result.reason


def test_a_nose_moving_without_the_face_around_it_is_refused() -> None:
    """A 2-D warp of a photo: the nose moves sideways, the eyes, mouth and contour barely;
    the turn is seen, in order, but without the parallax of a head turning on the neck."""
    from lifecert.face.liveness import assess_challenge

    frames = np.stack([face()] * 5)
    frames[1, 27:36, 0] += 10  # the nose to the image's right: the person's own left
    frames[3, 27:36, 0] -= 10
    frames[[1, 3], 0:17, 0] += np.array([[-2.0], [2.0]])  # the contour a little the other way
    result = assess_challenge(frames, boxes(frames), ["TURN_LEFT", "TURN_RIGHT"])
    assert result.evidence["seen"] == ["TURN_LEFT", "TURN_RIGHT"]
    assert not result.live and "parallax" in result.reason
