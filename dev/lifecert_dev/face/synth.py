"""Synthetic frame sequences made from one real photo, for tests and the benchmark.

These are honest stand-ins, not recordings:

- :func:`still` repeats the photo (a photo held still in front of the camera);
- :func:`handheld` moves, rotates, scales and tilts the whole photo from frame to frame
  (a printed photo waved in front of the camera): it must fail liveness;
- :func:`blink` paints the eyes shut in the middle frames (skin colour from below the eye
  over the eye opening, a dark lash line along the lower lid): the landmark model then sees
  closed eyelids, so it shows that the pipeline reacts to an eyelid closure, not that a
  real blink in a real video is detected at any measured rate;
- :func:`head_turn` warps the face sideways by a crude depth model (a cylinder and a nose
  ridge), the 2-D parallax a head turn produces (the nose moves more than the eye and
  mouth corners); it is not a 3-D render of a turned head.

Landmarks come from dlib's 68-point model on the photo itself.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lifecert.face import _lib


def _landmarks(rgb: np.ndarray) -> np.ndarray:
    fr = _lib.load()
    import dlib

    rects = fr.api.face_detector(rgb, 1)
    if not rects:
        raise ValueError("no face in the photo to synthesise from")
    rect = max(rects, key=lambda r: r.width())
    shape = fr.api.pose_predictor_68_point(rgb, dlib.rectangle(rect))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def to_bytes(image: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=quality)
    else:
        image.save(out, fmt)
    return out.getvalue()


def fit(photo: bytes, width: int = 640, height: int = 480) -> Image.Image:
    """The photo as a camera frame of ``width`` x ``height``: scaled to cover the frame
    and centre-cropped around the face."""
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    scale = max(width / image.width, height / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    points = _landmarks(np.asarray(image))
    cx, cy = points[:, 0].mean(), points[:, 1].mean()
    left = int(min(max(cx - width / 2, 0), image.width - width))
    top = int(min(max(cy - height / 2, 0), image.height - height))
    return image.crop((left, top, left + width, top + height))


def still(frame: Image.Image, count: int = 5) -> list[bytes]:
    data = to_bytes(frame)
    return [data] * count


def _affine(image: Image.Image, angle: float, scale_x: float, scale_y: float,
            dx: float, dy: float) -> Image.Image:  # fmt: skip
    """The photo rotated/scaled (anisotropically: a tilted sheet) about its centre."""
    w, h = image.size
    cx, cy = w / 2, h / 2
    a = math.radians(angle)
    # forward: p' = R S (p - c) + c + d; PIL wants the inverse mapping.
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.diag(
        [scale_x, scale_y]
    )
    inv = np.linalg.inv(m)
    offset = np.array([cx, cy]) - inv @ np.array([cx + dx, cy + dy])
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    return image.transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR,
                           fillcolor=(90, 90, 90))  # fmt: skip


# (angle degrees, scale x, scale y, shift x, shift y, brightness)
HANDHELD_MOVES: tuple[tuple[float, float, float, float, float, float], ...] = (
    (0.0, 1.0, 1.0, 0, 0, 1.0),
    (4.0, 0.97, 1.0, 12, -6, 0.95),
    (-3.0, 1.0, 0.82, -10, 8, 1.05),  # sheet tilted backwards: vertical squeeze
    (2.0, 0.85, 1.0, 6, 4, 1.0),  # sheet turned about its vertical axis
    (-5.0, 1.05, 1.05, -14, -8, 0.9),
)


def handheld(
    frame: Image.Image, moves: Sequence[tuple[float, ...]] = HANDHELD_MOVES
) -> list[bytes]:
    out = []
    for angle, sx, sy, dx, dy, light in moves:
        moved = _affine(frame, angle, sx, sy, dx, dy)
        moved = Image.fromarray(np.clip(np.asarray(moved) * light, 0, 255).astype(np.uint8))
        out.append(to_bytes(moved))
    return out


def _lid_line(points: np.ndarray, xs: np.ndarray) -> np.ndarray:
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def close_eyes(frame: Image.Image, closure: float = 1.0, lid: float = 0.3) -> Image.Image:
    """The frame with both eyelids pulled down: in each column of an eye, the upper lid
    (with its lashes) is moved down to the lower lid and the lid skin above it is stretched
    to follow, as the upper lid does in a blink; the eye opening disappears."""
    rgb = np.asarray(frame)
    out = rgb.copy()
    points = _landmarks(rgb)
    height = rgb.shape[0]
    for eye in (points[36:42], points[42:48]):
        width = float(np.linalg.norm(eye[0] - eye[3]))
        xs = np.arange(int(eye[:, 0].min()), int(np.ceil(eye[:, 0].max())) + 1)
        upper = _lid_line(eye[[0, 1, 2, 3]], xs) - 0.04 * width  # just above the lashes
        lower = _lid_line(eye[[0, 5, 4, 3]], xs)
        target = upper + closure * (lower - upper)  # where the upper lid ends up
        top = upper - lid * width  # lid skin up to below the brow, stretched
        for j, x in enumerate(xs):
            if x < 0 or x >= rgb.shape[1] or target[j] - upper[j] < 0.5:
                continue
            y0 = max(0, int(np.floor(top[j])))
            y1 = min(height - 1, int(np.ceil(lower[j] + 0.02 * width)))
            ys = np.arange(y0, y1 + 1, dtype=np.float64)
            src = np.where(
                ys <= target[j],
                top[j] + (ys - top[j]) * (upper[j] - top[j]) / (target[j] - top[j]),
                upper[j] + 0.04 * width,  # the lash line fills the rest of the opening
            )
            src = np.clip(np.rint(src), 0, height - 1).astype(int)
            out[y0 : y1 + 1, x] = rgb[src, x]
    return Image.fromarray(out)


def blink(frame: Image.Image, count: int = 5, closed: Sequence[int] = (2,)) -> list[bytes]:
    shut = to_bytes(close_eyes(frame))
    opened = to_bytes(frame)
    return [shut if i in closed else opened for i in range(count)]


def _sample_rows(rgb: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """Bilinear sampling of ``rgb`` at (src_x, row) for every pixel."""
    h, w = rgb.shape[:2]
    x = np.clip(src_x, 0, w - 1.001)
    x0 = np.floor(x).astype(int)
    frac = (x - x0)[..., None]
    rows = np.arange(h)[:, None]
    out = rgb[rows, x0] * (1 - frac) + rgb[rows, x0 + 1] * frac
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def turn_head(frame: Image.Image, degrees: float, nose_height: float = 0.5) -> Image.Image:
    """The frame with the head turned about a vertical axis by roughly ``degrees``, from a
    crude depth model: the head as a vertical cylinder (radius one outer-eye-corner
    distance) plus a nose ridge standing ``nose_height`` of that distance proud of the face.
    Each pixel moves sideways by depth x sin(angle): the nose moves more than the eyes and
    mouth."""
    rgb = np.asarray(frame).astype(np.float64)
    points = _landmarks(np.asarray(frame))
    iod = float(np.linalg.norm(points[45] - points[36]))
    cx = float(points[[36, 45, 48, 54], 0].mean())
    top, bottom = float(points[27, 1]), float(points[33, 1])
    ridge_x = np.interp  # the nose ridge: bridge (27) to tip (30) to base (33)
    h, w = rgb.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    radius = iod
    cylinder = np.sqrt(np.clip(1 - ((xs - cx) / radius) ** 2, 0, 1)) * radius
    face_rows = np.exp(-(((ys - (top + bottom) / 2) / (1.2 * iod)) ** 2))
    nose_line = ridge_x(ys, points[[27, 30, 33], 1], points[[27, 30, 33], 0])
    along = np.clip((ys - top) / max(1.0, bottom - top), 0, 1)
    below = np.exp(-((np.clip(ys - bottom, 0, None) / (0.12 * iod)) ** 2))
    above = np.exp(-((np.clip(top - ys, 0, None) / (0.12 * iod)) ** 2))
    width = 0.22 * iod
    nose = nose_height * iod * along * below * above
    nose = nose * np.exp(-(((xs - nose_line) / width) ** 2))
    depth = (cylinder - radius * 0.6).clip(0) * face_rows + nose
    shift = depth * np.sin(np.radians(degrees))
    return Image.fromarray(_sample_rows(rgb, xs - shift))


def head_turn(
    frame: Image.Image, degrees: Sequence[float] = (0.0, 10.0, 20.0, 10.0, 0.0)
) -> list[bytes]:
    return [to_bytes(turn_head(frame, d) if d else frame) for d in degrees]


# ------------------------------------------------------------------ challenge answers
#
# Two kinds of answer to a challenge (lifecert.face.liveness.assess_challenge):
#
# - :func:`still_answer` is what an attacker holding one photo can make with this module:
#   frame 0 the photo, each turn the 2-D warp of :func:`turn_head`; it must be refused.
# - :func:`live_answer_landmarks` is a genuine-like answer *in landmark space only*: the
#   photo's 68 landmarks lifted to 3-D with a generic head's depths, turned rigidly about
#   the neck's axis with some pitch and roll, projected, plus landmark noise. No pixels:
#   a 3-D render good enough for dlib would itself be an attack from a still photo.

# Depth of each landmark in front of the head's vertical turning axis (the neck, near the
# ears), in outer-eye-corner distances, for a generic adult head (anthropometric averages:
# outer eye corner ~8 cm, inner ~9 cm, nose tip ~11.5 cm, chin ~10 cm in front of the
# tragus; outer-eye-corner distance ~9.5 cm). The face contour's points near the ears lie
# on the silhouette, close to the axis.
def landmark_depths() -> np.ndarray:
    z = np.empty(68)
    for k in range(17):  # jaw: 0.15 at the ears to 1.05 at the chin
        z[k] = 0.15 + 0.9 * ((1 + math.cos(math.pi * (k - 8) / 8)) / 2) ** 1.5
    z[17:27] = [0.75, 0.85, 0.9, 0.95, 0.97, 0.97, 0.95, 0.9, 0.85, 0.75]  # brows
    z[27:31] = [0.98, 1.03, 1.1, 1.2]  # nose bridge to tip
    z[31:36] = [1.0, 1.05, 1.08, 1.05, 1.0]  # nostrils
    z[[36, 45]] = 0.8  # outer eye corners
    z[[39, 42]] = 0.92  # inner eye corners
    z[[37, 38, 40, 41, 43, 44, 46, 47]] = 0.88
    z[48:60] = [0.95, 1.0, 1.04, 1.05, 1.04, 1.0, 0.95, 1.0, 1.03, 1.04, 1.03, 1.0]
    z[60:68] = [0.95, 1.01, 1.02, 1.01, 0.95, 1.01, 1.02, 1.01]
    return z


def rotate_landmarks(points: np.ndarray, yaw: float, pitch: float = 0.0,
                     roll: float = 0.0) -> np.ndarray:  # fmt: skip
    """``points`` (68 x 2, a frontal face) turned as a rigid head by ``yaw`` degrees (the
    person's own left is positive: the nose moves to the image's right), ``pitch`` and
    ``roll``, about axes through the neck; orthographic projection."""
    iod = float(np.linalg.norm(points[45] - points[36]))
    centre = (points[0] + points[16]) / 2
    xyz = np.column_stack([points - centre, landmark_depths() * iod])
    a, b, c = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    turned = xyz @ (rz @ ry @ rx).T
    return turned[:, :2] + centre


def open_mouth_landmarks(points: np.ndarray, rise: float) -> np.ndarray:
    """``points`` with the lower lip and chin dropped until the inner lips' aspect ratio
    (|62-66| / |60-64|) has risen by ``rise``."""
    out = points.copy()
    drop = rise * float(np.linalg.norm(points[60] - points[64]))
    out[[65, 66, 67]] += (0, drop)
    out[[55, 56, 57, 58, 59]] += (0, drop)
    out[[5, 6, 7, 8, 9, 10, 11]] += (0, 0.8 * drop)
    return out


def live_answer_landmarks(
    points: np.ndarray, actions: Sequence[str], rng: np.random.Generator,
    noise: float = 0.012, held: int | None = None,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:  # fmt: skip
    """A genuine-like answer to ``actions`` from a frontal face's landmarks: a neutral
    frame, then each action held for one or two frames with a neutral frame between
    actions, as a person following the prompts would. Turns of 15 to 30 degrees, with
    pitch and roll of up to 5 degrees and a drift of the head in the frame; mouth
    openings raising the inner lips' aspect ratio by 0.35 to 0.8; Gaussian landmark noise
    of ``noise`` eye-corner distances per coordinate (dlib's jitter between frames). With
    ``held``, each action is held for that many frames (1: one frame per screen colour of a
    screen-light challenge, 2 x actions + 1 frames). Returns the landmark frames and face
    boxes (top, right, bottom, left)."""
    iod = float(np.linalg.norm(points[45] - points[36]))

    def pose(yaw: float = 0.0, mouth: float | None = None) -> np.ndarray:
        base = open_mouth_landmarks(points, mouth) if mouth is not None else points
        moved = rotate_landmarks(base, yaw, rng.uniform(-5, 5), rng.uniform(-5, 5))
        moved = moved + rng.normal(0, 0.03 * iod, 2) + rng.normal(0, noise * iod, (68, 2))
        return moved

    frames = [pose()]
    for i, action in enumerate(actions):
        if i:
            frames.append(pose())
        hold = held if held is not None else int(rng.integers(1, 3))
        if action == "OPEN_MOUTH":
            frames += [pose(mouth=rng.uniform(0.35, 0.8)) for _ in range(hold)]
        else:
            side = 1 if action == "TURN_LEFT" else -1
            angle = rng.uniform(15, 30)
            frames += [pose(yaw=side * angle * (1 - 0.2 * j)) for j in range(hold)]
    frames.append(pose())
    boxes = []
    for f in frames:
        left, top = f.min(axis=0)
        right, bottom = f.max(axis=0)
        boxes.append((int(top), int(right), int(bottom), int(left)))
    return np.stack(frames), boxes


def _marked(image: Image.Image, index: int, rng: random.Random | None) -> Image.Image:
    """``image`` with its top-left pixel set from ``index`` (and at random, when ``rng`` is
    given): no two frames of an answer, nor of two answers, are then byte-identical, as a
    camera's frames are not."""
    out = image.copy()
    salt = (rng.randrange(256), rng.randrange(256)) if rng else (0, 0)
    out.putpixel((0, 0), ((40 * index) % 256, *salt))
    return out


def still_answer(frame: Image.Image, actions: Sequence[str], degrees: float = 20.0,
                 rng: random.Random | None = None) -> list[bytes]:  # fmt: skip
    """An attacker's answer made from one photo: the photo, then each turn as the 2-D warp
    of :func:`turn_head` (TURN_LEFT moves the nose to the image's right), each open mouth
    the 2-D edit of :func:`open_mouth`, with the photo between actions (each frame marked, so that
    no two frames are byte-identical; with ``rng``, not across answers either)."""
    images = answer_images(frame, actions, degrees, mouth=0.5)  # open_mouth's default
    return [to_bytes(_marked(image, i, rng)) for i, image in enumerate(images)]


def open_mouth(frame: Image.Image, opening: float = 0.5) -> Image.Image:
    """The frame with the mouth opened by a crude 2-D edit: everything below the lips'
    meeting line, between the mouth corners (fading out towards the jaw), is moved down by
    ``opening`` mouth widths, and the gap is painted as a dark mouth cavity."""
    rgb = np.asarray(frame)
    out = rgb.copy()
    points = _landmarks(rgb)
    h, w = rgb.shape[:2]
    left, right = points[48, 0], points[54, 0]
    width = right - left
    drop = opening * width
    meet = _lid_line(points[[60, 61, 62, 63, 64]], np.arange(w, dtype=np.float64))
    chin = float(points[8, 1])
    for x in range(max(0, int(left - 0.3 * width)), min(w, int(right + 0.3 * width) + 1)):
        inside = 1.0 - max(0.0, max(left - x, x - right) / (0.3 * width))
        if x < left or x > right:
            inside *= 0.5  # lip corners stay
        d = drop * inside
        if d < 0.5:
            continue
        y0 = int(np.floor(meet[x]))
        y1 = min(h - 1, int(chin + 0.6 * width))
        ys = np.arange(y0, y1 + 1, dtype=np.float64)
        # rows below the meeting line come from higher up (stretched towards the chin)
        gap = ys < y0 + d
        src = np.clip(np.rint(y0 + (ys - y0 - d) * (y1 - y0) / max(1.0, y1 - y0 - d)), 0, h - 1)
        column = rgb[src.astype(int), x].copy()
        column[gap] = (45, 18, 18)
        out[y0 : y1 + 1, x] = column
    return Image.fromarray(out)


# ------------------------------------------------------------------ screen light
#
# The genuine-like light of a screen-light challenge (lifecert.face.screenlight), a model,
# not a measurement of real screens: each pixel's colour is its surface's colour under the
# ambient light, so a screen of colour s (0 or 1 per channel) adds ``strength`` x falloff
# x that colour x s, where the falloff is 1 at the face's centre, a Gaussian of the
# distance in face widths (``reach``), and never below ``floor`` (the room behind, lit a
# little). Then the camera: per-channel gains (white balance and exposure drifting with the
# ambient light, the same over the whole frame), Gaussian noise, JPEG.


@dataclass(frozen=True)
class Camera:
    """One capture's conditions: the screen's light relative to the ambient at the face,
    how the camera's gains drift from frame to frame, its noise."""

    strength: float = 0.12
    reach: float = 1.2
    floor: float = 0.03
    gain_drift: float = 0.02  # per channel and frame, a random walk (white balance)
    exposure_drift: float = 0.04  # all channels alike, per frame
    noise: float = 3.0  # pixel values, per channel
    quality: int = 85

    @staticmethod
    def random(rng: np.random.Generator) -> Camera:
        """A genuine-like capture: the screen 6% to 20% of the ambient light at the face
        (a phone at 25-40 cm indoors), gains drifting, noise of 2 to 5 levels."""
        return Camera(strength=float(rng.uniform(0.06, 0.20)),
                      reach=float(rng.uniform(0.9, 1.5)),
                      noise=float(rng.uniform(2.0, 5.0)),
                      quality=int(rng.integers(75, 95)))


def falloff(landmarks: np.ndarray, size: tuple[int, int], reach: float,
            floor: float) -> np.ndarray:  # fmt: skip
    width, height = size
    centre = landmarks.mean(axis=0)
    face_width = float(np.ptp(landmarks[:, 0])) or 1.0
    ys, xs = np.ogrid[0:height, 0:width]
    d2 = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (reach * face_width) ** 2
    return np.maximum(np.exp(-d2), floor).astype(np.float32)


def screen_lit(frame: Image.Image, landmarks: np.ndarray, colour: tuple[int, int, int],
               camera: Camera, rng: np.random.Generator,
               gains: np.ndarray | None = None) -> Image.Image:  # fmt: skip
    """``frame`` as captured while the screen shone ``colour`` (RGB 0-255) on the face
    whose landmarks are given; ``gains``: this frame's per-channel camera gains."""
    rgb = np.asarray(frame).astype(np.float32)
    fall = falloff(landmarks, frame.size, camera.reach, camera.floor)[..., None]
    screen = np.array(colour, dtype=np.float32) / 255.0
    lit = rgb * (1.0 + np.float32(camera.strength) * fall * screen)
    if gains is not None:
        lit = lit * gains.astype(np.float32)
    lit += np.float32(camera.noise) * rng.standard_normal(lit.shape, dtype=np.float32)
    return Image.fromarray(np.clip(lit + 0.5, 0, 255).astype(np.uint8))


def drifting_gains(count: int, camera: Camera, rng: np.random.Generator) -> list[np.ndarray]:
    """Per-frame camera gains: a per-channel random walk and an exposure jitter."""
    walk = np.ones(3)
    out = []
    for _ in range(count):
        walk = walk * (1.0 + rng.normal(0.0, camera.gain_drift, 3))
        out.append(walk * (1.0 + rng.normal(0.0, camera.exposure_drift)))
    return out


def lit_answer(images: Sequence[Image.Image], landmarks: Sequence[np.ndarray],
               colours: Sequence[str], camera: Camera,
               rng: np.random.Generator) -> list[bytes]:  # fmt: skip
    """A capture's frames (JPEG), frame i lit by the screen colour ``colours[i]`` (names of
    lifecert.face.screenlight.PALETTE), under drifting camera gains."""
    gains = drifting_gains(len(images), camera, rng)
    return [lit_frame(im, marks, c, camera, rng, g)
            for im, marks, c, g in zip(images, landmarks, colours, gains, strict=True)]


def lit_frame(image: Image.Image, landmarks: np.ndarray, colour: str, camera: Camera,
              rng: np.random.Generator, gains: np.ndarray) -> bytes:  # fmt: skip
    """One frame of :func:`lit_answer`: ``image`` lit by the screen colour named ``colour``
    under this frame's camera ``gains``, as the camera's JPEG."""
    from lifecert.face.screenlight import PALETTE

    lit = screen_lit(image, landmarks, PALETTE[colour], camera, rng, gains)
    return to_bytes(lit, quality=camera.quality)


def answer_images(frame: Image.Image, actions: Sequence[str], degrees: float = 20.0,
                  mouth: float = 0.4) -> list[Image.Image]:  # fmt: skip
    """The unlit images of :func:`still_answer` (the photo, each action's 2-D edit, the
    photo between actions and at the end): one frame per screen colour of a challenge of
    ``len(actions)`` actions. The mouth opens by ``mouth`` mouth widths (less than
    :func:`still_answer`'s: on obama3.jpg dlib then sees it opened clear of the
    threshold, also under the light's noise)."""
    images = [frame]
    for i, action in enumerate(actions):
        if i:
            images.append(frame)
        if action == "TURN_LEFT":
            images.append(turn_head(frame, degrees))
        elif action == "TURN_RIGHT":
            images.append(turn_head(frame, -degrees))
        else:
            images.append(open_mouth(frame, mouth))
    images.append(frame)
    return images


def lit_still_answer(frame: Image.Image, actions: Sequence[str], colours: Sequence[str],
                     rng: np.random.Generator, camera: Camera | None = None,
                     degrees: float = 20.0, mouth: float = 0.4,
                     retake_below: float | None = None) -> list[bytes]:  # fmt: skip
    """:func:`still_answer` as captured under a screen-light challenge: each frame lit by
    its colour (the 2-D edits still fail the default parallax check).

    With ``retake_below``, a mouth frame in which dlib sees the inner lips' aspect ratio
    risen less than that over frame 0 is captured again (new noise, up to 8 times), as an
    app prompts "open wider": the 2-D edit saturates at a rise of about 0.33 on obama3.jpg
    and the light's noise moves it by +-0.07, so a mouth drawn once is sometimes not seen
    open (policy: 0.25)."""
    from lifecert.face.liveness import motion_features

    images = answer_images(frame, actions, degrees, mouth)
    marks = [_landmarks(np.asarray(im)) for im in images]
    camera = camera or Camera.random(rng)
    gains = drifting_gains(len(images), camera, rng)

    def capture(i: int) -> bytes:
        return lit_frame(images[i], marks[i], colours[i], camera, rng, gains[i])

    frames = [capture(i) for i in range(len(images))]
    if retake_below is None:
        return frames
    rest = _landmarks(np.asarray(Image.open(io.BytesIO(frames[0])).convert("RGB")))
    for k, action in enumerate(actions):
        if action != "OPEN_MOUTH":
            continue
        i = 2 * k + 1
        for _ in range(8):
            seen = _landmarks(np.asarray(Image.open(io.BytesIO(frames[i])).convert("RGB")))
            rise = motion_features(np.array([rest, seen]))["mouth"]
            if rise[1] - rise[0] >= retake_below:
                break
            frames[i] = capture(i)
    return frames
