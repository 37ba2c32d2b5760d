"""Screen-light challenge: frames bound to the challenge by the colour the screen shone on
the face when each was taken.

A challenge's actions (lifecert.face.liveness) say nothing about *which* challenge a frame
answered: a genuine answer recorded earlier can be cut into its actions and put together
in a new order. So the challenge also names a colour for every frame, derived from its
nonce (:func:`colours_for`); the app fills its screen with that colour while it captures
the frame. At arm's length the screen lights the face noticeably and the background, much
farther away, barely: the face's chromaticity moves towards each frame's colour.

The check works in log-chromaticity, (log R/G, log B/G) of a region's mean colour. A light
of colour s = (s_r, s_g, s_b) added to the ambient light moves a surface's log-chromaticity
by about (L / A) (s_r - s_g, s_b - s_g) whatever the surface's own colour (L screen, A
ambient illuminance): the palette's six colours give six directions 45 to 90 degrees apart
(:data:`DIRECTIONS`). Per frame, the face's log-chromaticity minus the background's
(:func:`measure`) cancels what changes the whole frame alike: a camera's white-balance and
exposure gains, which multiply each channel, and slow changes of the ambient light. Over
the frames, that difference centred on its mean must correlate with the expected
directions centred on theirs (:func:`assess_light`): the correlation of the 2N numbers
must be high, and each frame's own shift must point nearer its own colour's direction than
any other colour's (:func:`nearest_colours`), so that a frame lit by a neighbouring colour
is not carried by the others.

What this check does not see is said in docs/face.md (Screen light): it was measured on
synthetic light (lifecert_dev.face.synth.screen_lit), not on real screens, skin tones, rooms
and cameras; and frames tinted digitally by an attacker who knows the colours pass it (an
injection attack, which only device attestation stops).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Fully saturated screen colours (sRGB 0-255): the primaries and secondaries, each a
# different chromaticity direction. White and black are left out: they move no chroma.
PALETTE: dict[str, tuple[int, int, int]] = {
    "RED": (255, 0, 0),
    "YELLOW": (255, 255, 0),
    "GREEN": (0, 255, 0),
    "CYAN": (0, 255, 255),
    "BLUE": (0, 0, 255),
    "MAGENTA": (255, 0, 255),
}
COLOURS = tuple(PALETTE)


def direction(colour: str) -> np.ndarray:
    """The unit direction in which light of ``colour`` moves (log R/G, log B/G)."""
    r, g, b = (v / 255 for v in PALETTE[colour])
    d = np.array([r - g, b - g])
    return d / np.linalg.norm(d)


DIRECTIONS = {c: direction(c) for c in COLOURS}


def colours_for(challenge_id: str, count: int) -> list[str]:
    """The ``count`` screen colours of a challenge, derived from its nonce (the challenge
    id, 128 random bits): SHA-256 of the nonce drives the draws, never the same colour
    twice in a row (each frame is a change of light). The server recomputes them at
    Verify; nothing needs storing. 6 x 5^(count-1) sequences (93,750 for 7 frames)."""
    if count < 2:
        raise ValueError("a screen-light challenge has at least two frames")
    out: list[str] = []
    block = 0
    pool = b""
    while len(out) < count:
        if not pool:
            pool = hashlib.sha256(
                b"lifecert-screen-light\0" + challenge_id.encode() + block.to_bytes(4, "big")
            ).digest()
            block += 1
        byte, pool = pool[0], pool[1:]
        if byte >= 240:  # 240 = 40 x 6: unbiased draws
            continue
        colour = COLOURS[byte % len(COLOURS)]
        if out and colour == out[-1]:
            continue
        out.append(colour)
    return out


# Skin regions of the 68-point markup: the face inside the jaw line and below the brows
# (jaw 1-15, brows 26-17), without the eyes and the mouth (which open, close and show
# teeth or a dark cavity: their colour is not the light's).
_FACE = [*range(1, 16), *range(26, 16, -1)]
_HOLES = (list(range(36, 42)), list(range(42, 48)), list(range(48, 60)))


SHRINK = 0.8


def face_mask(landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean mask (height x width) of the face's skin, from the 68 landmarks: the
    outline drawn ``SHRINK`` of the way from the nose to the jaw and brows (the edges of a
    turned face are its silhouette, with hair and room in them)."""
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    centre = landmarks[30]
    outline = centre + SHRINK * (landmarks[_FACE] - centre)
    draw.polygon([tuple(p) for p in outline.tolist()], fill=1)
    for hole in _HOLES:
        draw.polygon([tuple(p) for p in landmarks[hole].tolist()], fill=0)
    return np.asarray(image, dtype=bool)


def background_mask(landmarks: np.ndarray, size: tuple[int, int],
                    spread: float = 1.0) -> np.ndarray:  # fmt: skip
    """Boolean mask of what lies farther than ``spread`` face widths outside the face's
    landmark box (hair, shoulders and the room behind), never empty: if the face fills
    the frame, the frame's outer tenth."""
    width, height = size
    left, top = landmarks.min(axis=0)
    right, bottom = landmarks.max(axis=0)
    margin = spread * (right - left)
    outside = np.ones((height, width), dtype=bool)
    x0, x1 = max(0, int(left - margin)), max(0, int(np.ceil(right + margin)) + 1)
    y0, y1 = max(0, int(top - margin)), max(0, int(np.ceil(bottom + margin)) + 1)
    outside[y0:y1, x0:x1] = False
    if outside.sum() >= 0.05 * width * height:
        return outside
    edge = max(1, min(width, height) // 10)
    outside[:] = True
    outside[edge:height - edge, edge:width - edge] = False
    return outside


def log_chroma(pixels: np.ndarray) -> np.ndarray:
    """(log R/G, log B/G) of the mean colour of ``pixels`` (n x 3)."""
    r, g, b = pixels.reshape(-1, 3).astype(np.float64).mean(axis=0) + 1.0
    return np.array([np.log(r / g), np.log(b / g)])


def measure(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face's log-chromaticity minus the background's, for one frame (height x width
    x 3 RGB, with the face's 68 landmarks in the same pixels)."""
    size = (rgb.shape[1], rgb.shape[0])
    face = face_mask(landmarks, size)
    if face.sum() < 50:
        raise ValueError("the face region is too small to measure the screen's light")
    return log_chroma(rgb[face]) - log_chroma(rgb[background_mask(landmarks, size)])


@dataclass(frozen=True)
class LightPolicy:
    # The threshold was chosen from `lifecert bench face --challenge-study` (docs/face.md,
    # Screen light): genuine-like answers' correlations against those of re-ordered
    # recordings of an earlier challenge.
    min_correlation: float = 0.7
    # The face's chroma must actually move: the root-mean-square of the centred
    # differences, in log units (0.01 is about a 1% change of R/G).
    min_response: float = 0.004


@dataclass(frozen=True)
class LightAnswer:
    lit: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def correlation(measured: np.ndarray, colours: Sequence[str]) -> float:
    """The correlation of the centred measured differences (frames x 2) with the centred
    expected directions of ``colours``; 0 when either does not vary."""
    expected = np.stack([DIRECTIONS[c] for c in colours])
    m = measured - measured.mean(axis=0)
    e = expected - expected.mean(axis=0)
    denom = float(np.sqrt((m**2).sum() * (e**2).sum()))
    return float((m * e).sum() / denom) if denom > 0 else 0.0


def nearest_colours(measured: np.ndarray, colours: Sequence[str]) -> list[str]:
    """For each frame, the palette colour whose direction (centred like the expected
    ones) lies at the smallest angle from the frame's centred measured shift."""
    expected = np.stack([DIRECTIONS[c] for c in colours])
    mean = expected.mean(axis=0)
    candidates = np.stack([DIRECTIONS[c] - mean for c in COLOURS])
    candidates /= np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)
    centred = measured - measured.mean(axis=0)
    return [COLOURS[int(np.argmax(candidates @ m))] for m in centred]


def assess_light(measured: np.ndarray, colours: Sequence[str],
                 policy: LightPolicy = LightPolicy()) -> LightAnswer:  # fmt: skip
    """Whether the face's chroma, frame by frame (``measured``: frames x 2, from
    :func:`measure`), followed the screen colours of the challenge."""
    unknown = [c for c in colours if c not in PALETTE]
    if unknown:
        raise ValueError(f"unknown screen colours {unknown}")
    if len(measured) != len(colours):
        return LightAnswer(False, f"{len(measured)} frames for {len(colours)} screen colours: "
                           "send exactly one frame per colour of the challenge, in order")
    centred = measured - measured.mean(axis=0)
    response = float(np.sqrt((centred**2).sum(axis=1).mean()))
    r = correlation(measured, colours)
    seen = nearest_colours(measured, colours)
    off = [i for i, (s, c) in enumerate(zip(seen, colours, strict=True)) if s != c]
    evidence = {
        "method": "screen light: face minus background log-chromaticity, correlated with "
                  "the challenge's colours",
        "colours": list(colours), "correlation": round(r, 4), "response": round(response, 5),
        "shift": [[round(float(v), 4) for v in row] for row in centred],
        "nearest": seen, "frames_off": off,
        "thresholds": {"min_correlation": policy.min_correlation,
                       "min_response": policy.min_response},
    }
    if response < policy.min_response:
        return LightAnswer(False, f"the face's colour does not change with the screen's "
                           f"(response {response:.4f} < {policy.min_response}): fill the "
                           "screen with each colour of the challenge while its frame is "
                           "taken, close to the face, with white balance and exposure locked",
                           evidence)
    if r < policy.min_correlation:
        return LightAnswer(False, f"the face's colour changes do not follow this challenge's "
                           f"screen colours (correlation {r:.2f} < {policy.min_correlation}): "
                           "frames lit for another challenge? Capture new frames, one per "
                           "colour, in order", evidence)
    if off:
        return LightAnswer(False, f"frame {off[0]} was lit by {seen[off[0]]}, not by "
                           f"{colours[off[0]]} as this challenge asked"
                           + (f" ({len(off)} frames off)" if len(off) > 1 else "")
                           + ": frames lit for another challenge? Capture new frames, one per "
                           "colour, in order", evidence)
    return LightAnswer(True, f"the face followed the screen's colours (correlation {r:.2f})",
                       evidence)
