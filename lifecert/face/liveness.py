"""Liveness from the 68-point landmarks of a short frame sequence.

A live person blinks or turns the head; a photo held up to the camera does neither, however
it is moved. Both signals are measured after an *affine normalisation*: each frame's rigid
anchor points (eye corners, mouth corners, chin) are mapped onto those of the first frame by
a least-squares affine transform, and the eyelids and nose tip are measured in that common
frame. Moving, rotating, scaling, or tilting a flat photo is (close to) an affine transform
of its image, so it is normalised away; closing the eyelids (which moves them relative to the
eye corners) and turning the head (which moves the protruding nose tip relative to the flat
anchors: parallax) are not.

- Eye aspect ratio (EAR, Soukupová and Čech 2016): for eye points p1..p6,
  (|p2-p6| + |p3-p5|) / (2 |p1-p4|). About 0.25-0.35 open, under 0.15 closed.
- Blink: in some frame both eyes' normalised EAR falls to at most ``blink_ratio`` times the
  most open frame's, and the most open frame has EAR >= ``open_ear``.
- Head turn: the nose tip's horizontal offset from the eyes' midpoint, in units of the
  outer-eye-corner distance, spans at least ``turn_range`` over the frames.
- The affine fits must be close to similarity transforms (anisotropy at most
  ``max_anisotropy``): a head turned by 30 degrees narrows the face by cos 30 = 0.87, a
  flat picture tilted further stretches it more, and the landmark model's eyelid and nose
  points then drift enough to mimic a blink or a turn.
- The face must be tracked continuously: between consecutive frames its box may move by at
  most ``max_jump`` box widths and change size by at most ``max_resize`` times.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# 68-point indices (iBUG 300-W markup, as dlib's shape_predictor_68_face_landmarks).
LEFT_EYE = (36, 37, 38, 39, 40, 41)  # the subject's right eye, on the image's left
RIGHT_EYE = (42, 43, 44, 45, 46, 47)
NOSE_TIP = 30
ANCHORS = (36, 39, 42, 45, 48, 54, 8)  # eye corners, mouth corners, chin


@dataclass(frozen=True)
class LivenessPolicy:
    min_frames: int = 3
    open_ear: float = 0.18
    blink_ratio: float = 0.65
    turn_range: float = 0.09
    max_jump: float = 0.5
    max_resize: float = 1.5
    max_anisotropy: float = 1.15


@dataclass(frozen=True)
class LivenessResult:
    live: bool
    reason: str
    best_frame: int  # the frame with the most open eyes, most frontal: the one to match
    event_frame: int | None  # the frame showing the blink or the turn (also matched)
    evidence: dict[str, Any] = field(default_factory=dict)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    p1, p2, p3, p4, p5, p6 = eye
    width = float(np.linalg.norm(p1 - p4))
    if width == 0.0:
        return 0.0
    return float((np.linalg.norm(p2 - p6) + np.linalg.norm(p3 - p5)) / (2.0 * width))


def _similarity_reference(points: np.ndarray) -> np.ndarray:
    """``points`` moved so the outer eye corners sit at (0, 0) and (1, 0)."""
    a, b = points[36], points[45]
    d = b - a
    scale = float(np.hypot(*d)) or 1.0
    cos, sin = d / scale
    rot = np.array([[cos, sin], [-sin, cos]])
    return ((points - a) @ rot.T) / scale


def _affine_to(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x2 least-squares affine matrix M with [src, 1] @ M ~ dst."""
    ones = np.ones((src.shape[0], 1))
    matrix, *_ = np.linalg.lstsq(np.hstack([src, ones]), dst, rcond=None)
    return matrix


def normalise(landmarks: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """All frames' landmarks mapped into the first frame's eye-corner coordinates by an
    affine fit on the rigid anchors; each frame's fit residual (anchor RMS error); and each
    fit's anisotropy (ratio of the singular values of its linear part: 1 for a mere move,
    turn or zoom, more when the face is stretched one way, as a tilted flat picture is)."""
    reference = _similarity_reference(landmarks[0])
    anchors = list(ANCHORS)
    out = np.empty_like(landmarks, dtype=float)
    residuals: list[float] = []
    anisotropy: list[float] = []
    for i, points in enumerate(landmarks):
        matrix = _affine_to(points[anchors].astype(float), reference[anchors])
        mapped = np.hstack([points.astype(float), np.ones((68, 1))]) @ matrix
        out[i] = mapped
        residuals.append(float(np.sqrt(np.mean((mapped[anchors] - reference[anchors]) ** 2))))
        singular = np.linalg.svd(matrix[:2, :2], compute_uv=False)
        anisotropy.append(float(singular[0] / max(singular[1], 1e-9)))
    return out, residuals, anisotropy


def _r(values: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


def _track(boxes: Sequence[tuple[int, int, int, int]]) -> tuple[list[float], list[float]]:
    """Between consecutive frames: how far the face box moves (in box widths) and how
    much its width changes (a ratio >= 1). A splice of another capture shows in both."""
    jumps: list[float] = []
    resizes: list[float] = []
    for (t0, r0, b0, l0), (t1, r1, b1, l1) in itertools.pairwise(boxes):
        w0, w1 = max(1, r0 - l0), max(1, r1 - l1)
        c0 = np.array([(l0 + r0) / 2, (t0 + b0) / 2])
        c1 = np.array([(l1 + r1) / 2, (t1 + b1) / 2])
        jumps.append(float(np.linalg.norm(c1 - c0)) / w0)
        resizes.append(max(w0, w1) / min(w0, w1))
    return jumps, resizes


def _mean_ears(landmarks: np.ndarray) -> list[float]:
    """Each frame's eye aspect ratio, both eyes averaged."""
    return [
        (eye_aspect_ratio(f[list(LEFT_EYE)]) + eye_aspect_ratio(f[list(RIGHT_EYE)])) / 2
        for f in landmarks
    ]


@dataclass(frozen=True)
class _Signals:
    """What the normalised frames show: the most open eyes, a blink, a head turn."""

    open_i: int  # the frame with the most open eyes
    open_ear: float
    blink_i: int | None  # the frame of the blink, if any
    ratios: list[float]  # each frame's eye opening against the most open frame's
    yaw_range: float
    median_yaw: float
    turn_i: int  # the frame farthest from the median yaw
    turned: bool


def _signals(left: list[float], right: list[float], ear: list[float], yaw: list[float],
             policy: LivenessPolicy) -> _Signals:
    open_i = int(np.argmax(ear))
    open_ear = ear[open_i]
    blink_i: int | None = None
    ratios: list[float] = []
    if open_ear >= policy.open_ear:
        for i in range(len(ear)):
            lr = left[i] / max(left[open_i], 1e-9)
            rr = right[i] / max(right[open_i], 1e-9)
            ratios.append(max(lr, rr))
        closest = int(np.argmin(ratios))
        if ratios[closest] <= policy.blink_ratio:
            blink_i = closest
    yaw_range = max(yaw) - min(yaw)
    median_yaw = float(np.median(yaw))
    turn_i = int(np.argmax([abs(y - median_yaw) for y in yaw]))
    return _Signals(open_i, open_ear, blink_i, ratios, yaw_range, median_yaw, turn_i,
                    yaw_range >= policy.turn_range)


def _thresholds(policy: LivenessPolicy) -> dict[str, float]:
    return {
        "open_ear": policy.open_ear,
        "blink_ratio": policy.blink_ratio,
        "turn_range": policy.turn_range,
        "max_jump": policy.max_jump,
        "max_resize": policy.max_resize,
        "max_anisotropy": policy.max_anisotropy,
    }


def assess(
    landmarks: np.ndarray,
    boxes: Sequence[tuple[int, int, int, int]],
    policy: LivenessPolicy = LivenessPolicy(),
) -> LivenessResult:
    """Judge liveness from ``landmarks`` (frames x 68 x 2, any pixel scale) and the face
    boxes (top, right, bottom, left) of the same frames."""
    n = int(landmarks.shape[0])
    evidence: dict[str, Any] = {
        "method": "affine-normalised eye aspect ratio (blink) and nose-tip parallax (head turn)",
        "frames": n,
        "ear_raw": _r(_mean_ears(landmarks)),
    }
    if n < policy.min_frames:
        return LivenessResult(
            False,
            f"liveness needs at least {policy.min_frames} frames of one capture, got {n}",
            0,
            None,
            evidence,
        )

    # Track continuity: the same face throughout, no splice.
    jumps, resizes = _track(boxes)
    continuous = all(j <= policy.max_jump for j in jumps) and all(
        s <= policy.max_resize for s in resizes
    )
    evidence["track_jumps"] = _r(jumps)
    evidence["track_continuous"] = continuous

    norm, residuals, anisotropy = normalise(landmarks)
    left = [eye_aspect_ratio(f[list(LEFT_EYE)]) for f in norm]
    right = [eye_aspect_ratio(f[list(RIGHT_EYE)]) for f in norm]
    ear = [(a + b) / 2 for a, b in zip(left, right, strict=True)]
    eye_mid_x = [(f[36, 0] + f[39, 0] + f[42, 0] + f[45, 0]) / 4 for f in norm]
    yaw = [float(f[NOSE_TIP, 0] - m) for f, m in zip(norm, eye_mid_x, strict=True)]
    evidence.update(
        {
            "ear_left": _r(left),
            "ear_right": _r(right),
            "ear": _r(ear),
            "yaw_offset": _r(yaw),
            "affine_residual": _r(residuals),
            "anisotropy": _r(anisotropy),
        }
    )

    seen = _signals(left, right, ear, yaw, policy)
    evidence.update(
        {
            "blink_ratio_min": round(min(seen.ratios), 4) if seen.ratios else None,
            "blink_detected": seen.blink_i is not None,
            "blink_frame": seen.blink_i,
            "yaw_range": round(seen.yaw_range, 4),
            "head_turn_detected": seen.turned,
            "thresholds": _thresholds(policy),
        }
    )
    # Best frame to match: eyes open (>= 90% of the most open) and most frontal.
    candidates = [i for i in range(n) if ear[i] >= 0.9 * seen.open_ear] or [seen.open_i]
    best = min(candidates, key=lambda i: abs(yaw[i] - seen.median_yaw))
    evidence["best_frame"] = best
    return _verdict(seen, continuous, max(anisotropy), best, evidence, policy)


def _verdict(seen: _Signals, continuous: bool, anisotropy: float, best: int,
             evidence: dict[str, Any], policy: LivenessPolicy) -> LivenessResult:
    """Live or not, and why, from the signals and the track (``anisotropy``: the
    largest of the frames')."""
    if not continuous:
        return LivenessResult(
            False,
            "the face jumps or changes size between frames: send consecutive frames of one "
            "continuous capture",
            best,
            None,
            evidence,
        )
    if anisotropy > policy.max_anisotropy:
        return LivenessResult(
            False,
            f"the face is stretched between frames (anisotropy {anisotropy:.2f} > "
            f"{policy.max_anisotropy}) the way a tilted flat picture is: hold the camera "
            "steady, facing it",
            best,
            None,
            evidence,
        )
    if seen.blink_i is not None:
        return LivenessResult(True, f"blink seen in frame {seen.blink_i}", best, seen.blink_i,
                              evidence)
    if seen.turned:
        return LivenessResult(
            True, f"head turn seen (nose parallax {seen.yaw_range:.3f})", best, seen.turn_i,
            evidence
        )
    if seen.open_ear < policy.open_ear:
        reason = (
            f"eyes never open enough (EAR {seen.open_ear:.2f} < {policy.open_ear}): look at "
            "the camera with open eyes, then blink"
        )
    else:
        reason = (
            "no blink and no head turn across the frames (a still picture?): blink once or "
            "turn the head slightly while the frames are taken"
        )
    return LivenessResult(False, reason, best, None, evidence)


# ------------------------------------------------------------------ challenge-response
#
# The server asks for a random sequence of actions (see lifecert/api/challenges.py); the
# frames must show them in that order. Frame 0 is the neutral pose (facing the camera,
# mouth closed) and every other frame is judged against it, after the affine
# normalisation above:
#
# - a head turn moves the nose tip against the eyes (``turn``: the nose tip's horizontal
#   shift, in eye-corner distances) and, because the head turns about the neck, far behind
#   the face, it swings the eyes, mouth and chin across the nearly still face contour by
#   more than the nose moves against them. After the normalisation on those anchors, the
#   contour near the ears moves against the nose by ``parallax`` = -contour shift / nose
#   shift (about 2 for a rigid head, see docs/face.md). A 2-D warp of one photo moves the
#   nose and barely moves the anchors: its parallax stays near or below 1.
# - an open mouth raises the inner lips' aspect ratio (|62-66| / |60-64|) over frame 0's
#   (which may be a smile showing the teeth).
#
# Actions are named from the person's own side: TURN_LEFT is the person turning to their
# own left, which moves the nose towards the right edge of an unmirrored camera frame.

TURN_LEFT = "TURN_LEFT"
TURN_RIGHT = "TURN_RIGHT"
OPEN_MOUTH = "OPEN_MOUTH"
ACTIONS = (TURN_LEFT, TURN_RIGHT, OPEN_MOUTH)
NEUTRAL = "NEUTRAL"
# Face contour points near the ears and temples (the side of the face's silhouette).
SIDE_CONTOUR = (0, 1, 2, 3, 13, 14, 15, 16)


@dataclass(frozen=True)
class ChallengePolicy:
    turn_min: float = 0.05  # nose-tip shift (eye-corner distances) that makes a frame a turn
    min_parallax: float = 1.5  # contour-against-nose parallax a turn must show
    mouth_open: float = 0.25  # rise of the inner lips' aspect ratio over frame 0's
    max_jump: float = 0.5
    max_resize: float = 1.5
    max_anisotropy: float = 1.35
    # A turned action frame must match the reference within the threshold plus this
    # (turned faces lie farther from a frontal reference: docs/face.md).
    turned_margin: float = 0.1


@dataclass(frozen=True)
class ChallengeAnswer:
    live: bool
    reason: str
    best_frame: int  # a neutral frame with the eyes most open: the one to match
    action_frames: list[int]  # the peak frame of each action, in order (also matched)
    evidence: dict[str, Any] = field(default_factory=dict)


def mouth_aspect_ratio(points: np.ndarray) -> float:
    width = float(np.linalg.norm(points[60] - points[64]))
    if width == 0.0:
        return 0.0
    return float(np.linalg.norm(points[62] - points[66]) / width)


def motion_features(landmarks: np.ndarray) -> dict[str, list[float]]:
    """Per frame, against frame 0 (after the affine normalisation): the nose tip's
    horizontal shift against the eyes, the side contour's horizontal shift, the mouth's
    aspect ratio and the fit's anisotropy."""
    norm, _residuals, anisotropy = normalise(landmarks)
    eye_mid = norm[:, [36, 39, 42, 45], 0].mean(axis=1)
    nose = norm[:, NOSE_TIP, 0] - eye_mid
    contour = norm[:, list(SIDE_CONTOUR), 0].mean(axis=1)
    return {
        "turn": [float(v) for v in nose - nose[0]],
        "contour": [float(v) for v in contour - contour[0]],
        "mouth": [mouth_aspect_ratio(f) for f in norm],
        "anisotropy": anisotropy,
    }


def parallax(turn: float, contour: float) -> float:
    return -contour / turn if turn else 0.0


def frame_states(
    features: dict[str, list[float]], policy: ChallengePolicy = ChallengePolicy()
) -> list[str]:
    """What each frame shows: NEUTRAL, TURN_LEFT, TURN_RIGHT, OPEN_MOUTH, or MIXED (a turn
    and an open mouth at once)."""
    states = []
    rest = features["mouth"][0]
    for turn, mouth in zip(features["turn"], features["mouth"], strict=True):
        turned = abs(turn) >= policy.turn_min
        opened = mouth - rest >= policy.mouth_open
        if turned and opened:
            states.append("MIXED")
        elif turned:
            states.append(TURN_LEFT if turn > 0 else TURN_RIGHT)
        elif opened:
            states.append(OPEN_MOUTH)
        else:
            states.append(NEUTRAL)
    return states


def _runs(states: Sequence[str]) -> list[tuple[str, int, int]]:
    """Consecutive frames of one non-neutral state: (state, first, last)."""
    out: list[tuple[str, int, int]] = []
    for i, state in enumerate(states):
        if state == NEUTRAL:
            continue
        if out and out[-1][0] == state and out[-1][2] == i - 1:
            out[-1] = (state, out[-1][1], i)
        else:
            out.append((state, i, i))
    return out


def assess_challenge(
    landmarks: np.ndarray,
    boxes: Sequence[tuple[int, int, int, int]],
    actions: Sequence[str],
    policy: ChallengePolicy = ChallengePolicy(),
    one_frame_each: bool = False,
) -> ChallengeAnswer:
    """Judge whether ``landmarks`` (frames x 68 x 2) answer ``actions`` in order, each turn
    with the parallax of a real head. With ``one_frame_each`` (a screen-light challenge:
    one frame per colour) the frames must be exactly :func:`frame_layout`: at rest, action
    1, at rest, action 2, ..., at rest, so that each action sits under its own colour."""
    n = int(landmarks.shape[0])
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown challenge actions {unknown}")
    evidence: dict[str, Any] = {
        "method": "challenge-response: ordered actions against frame 0; turns need the "
                  "contour parallax of a rigid head",
        "frames": n, "actions": list(actions),
        "thresholds": {
            "turn_min": policy.turn_min, "min_parallax": policy.min_parallax,
            "mouth_open": policy.mouth_open,
            "max_jump": policy.max_jump, "max_resize": policy.max_resize,
            "max_anisotropy": policy.max_anisotropy,
        },
    }

    def refuse(reason: str, best: int = 0) -> ChallengeAnswer:
        return ChallengeAnswer(False, reason, best, [], evidence)

    if n < len(actions) + 1:
        return refuse(f"{n} frames cannot answer {len(actions)} actions: send a neutral "
                      "frame first, then at least one frame per action")
    jumps, resizes = _track(boxes)
    evidence["track_jumps"] = _r(jumps)
    features = motion_features(landmarks)
    states = frame_states(features, policy)
    ear = _mean_ears(landmarks)
    neutral = [i for i, s in enumerate(states) if s == NEUTRAL]
    best = max(neutral, key=lambda i: ear[i]) if neutral else 0
    evidence.update({
        "turn": _r(features["turn"]), "contour": _r(features["contour"]),
        "mouth": _r(features["mouth"]), "anisotropy": _r(features["anisotropy"]),
        "states": states, "best_frame": best,
    })
    if any(j > policy.max_jump for j in jumps) or any(s > policy.max_resize for s in resizes):
        return refuse("the face jumps or changes size between frames: send consecutive "
                      "frames of one continuous capture", best)
    if max(features["anisotropy"]) > policy.max_anisotropy:
        return refuse(f"the face is stretched between frames (anisotropy "
                      f"{max(features['anisotropy']):.2f} > {policy.max_anisotropy}) the way "
                      "a tilted flat picture is: hold the camera steady, facing it", best)
    runs = _runs(states)
    evidence["seen"] = [state for state, _, _ in runs]
    mixed = [first for state, first, _ in runs if state == "MIXED"]
    if mixed:
        return refuse(f"frame {mixed[0]} shows a head turn and an open mouth at once: do "
                      "one action at a time, in the order asked", best)
    seen = [state for state, _, _ in runs]
    if seen != list(actions):
        return refuse(f"the frames show {' then '.join(seen) or 'no action'}; the challenge "
                      f"asked for {' then '.join(actions)}, in that order", best)
    off_layout = _off_layout(states, actions) if one_frame_each else None
    if off_layout is not None:
        return refuse(off_layout, best)
    peaks, parallaxes = _peaks(runs, features)
    evidence["action_frames"] = peaks
    evidence["parallax"] = parallaxes
    for (_state, first, last), value in zip(runs, parallaxes, strict=True):
        if value is not None and value < policy.min_parallax:
            return refuse(
                f"the head turn in frames {first}-{last} moves the nose but not the face "
                f"around it the way a turning head does (parallax {value:.2f} < "
                f"{policy.min_parallax}): a picture made to look turned? Turn the head "
                "itself, from the neck", best)
    return ChallengeAnswer(True, f"answered {' then '.join(actions)} in order", best, peaks,
                           evidence)


def _off_layout(states: Sequence[str], actions: Sequence[str]) -> str | None:
    """Why the frames of a screen-light answer are not :func:`frame_layout`, or None."""
    n = len(states)
    layout = frame_layout(actions)
    off = [i for i, (s, want) in enumerate(itertools.zip_longest(states, layout))
           if s != want]
    if not off:
        return None
    i = off[0]
    return (f"frame {i} shows {states[i] if i < n else 'nothing'} where this "
            f"challenge's frame {i} is {layout[i] if i < len(layout) else 'none'}"
            ": one frame per screen colour, at rest, then each action with a "
            "frame at rest after it")


def _peaks(runs: Sequence[tuple[str, int, int]],
           features: dict[str, list[float]]) -> tuple[list[int], list[float | None]]:
    """Each action's peak frame (the widest mouth, the farthest turn) and, for a turn,
    the parallax there."""
    peaks: list[int] = []
    parallaxes: list[float | None] = []
    for state, first, last in runs:
        span = range(first, last + 1)
        if state == OPEN_MOUTH:
            peaks.append(max(span, key=lambda i: features["mouth"][i]))
            parallaxes.append(None)
            continue
        peak = max(span, key=lambda i: abs(features["turn"][i]))
        peaks.append(peak)
        parallaxes.append(round(parallax(features["turn"][peak], features["contour"][peak]), 4))
    return peaks, parallaxes


def frame_layout(actions: Sequence[str]) -> list[str]:
    """The frames of a screen-light answer, one per colour: at rest, each action with a
    frame at rest after it (2 x actions + 1)."""
    out = [NEUTRAL]
    for action in actions:
        out += [action, NEUTRAL]
    return out


def sequences(count: int) -> list[tuple[str, ...]]:
    """Every challenge of ``count`` actions: no action twice in a row, at least one turn."""
    return [
        seq for seq in itertools.product(ACTIONS, repeat=count)
        if all(a != b for a, b in itertools.pairwise(seq))
        and (TURN_LEFT in seq or TURN_RIGHT in seq)
    ]


def fresh_actions(count: int, rng: Any, answered: Mapping[tuple[str, ...], Any]) -> list[str]:
    """A random challenge of ``count`` actions that is not among the sequences ``answered``
    lately for this retiree (sequence -> when), so that an answer recorded then cannot be
    replayed whole; when every sequence was answered, the least recently answered one."""
    fresh = [seq for seq in sequences(count) if seq not in answered]
    if fresh:
        return list(rng.choice(fresh))
    oldest = min(answered, key=lambda seq: answered[seq])
    return list(oldest)


def random_actions(count: int, rng: Any) -> list[str]:
    """``count`` actions drawn with ``rng.choice`` (pass ``secrets.SystemRandom()`` in
    production), never the same action twice in a row, so that each action is a visible
    change from the one before; with three actions there are 12 sequences, each with at
    least one head turn."""
    if count < 2:
        raise ValueError("a challenge has at least two actions")
    out: list[str] = []
    while len(out) < count:
        action = rng.choice(ACTIONS)
        if out and action == out[-1]:
            continue
        out.append(action)
    if TURN_LEFT not in out and TURN_RIGHT not in out:  # only possible with two actions
        out[int(rng.choice((0, 1)))] = rng.choice((TURN_LEFT, TURN_RIGHT))
    return out
