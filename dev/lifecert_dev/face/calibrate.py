"""Threshold study: false-accept and false-reject rates over the photos of
:mod:`lifecert_dev.face.photos`, and the liveness margins of still-photo presentations.

Every photo is enrolled (as staff would enroll a card photo) and also turned into several
camera-like probe frames (640x480 crop around the face, then JPEG quality 40, darker,
brighter, blurred, half resolution, rotated 8 degrees). Each probe is compared with each
reference through the engine's own pipeline (:meth:`FaceEngine.distance`):

- *genuine, other photo*: reference and probe are different photos of the same person
  (only Barack Obama has several independent photos here: 3 photos, 6 ordered pairs);
- *genuine, same photo*: the probe is derived from the reference photo itself (optimistic:
  it measures robustness to capture degradation, not to ageing, pose or another day);
- *impostor*: reference and probe show different people (11 people).

The six faces of the insightface group photo and its 112x112 crop are smaller than the
engine's 100 px minimum, so the study runs with ``min_face_px=60``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from lifecert.face.engine import FaceEngine, FaceRefused
from lifecert.face.images import decode
from lifecert_dev.face import photos, synth

GROUP = "t1.jpg"
_GROUP_BOXES = (  # the six faces of t1.jpg (dlib boxes, widened 2.4x)
    (1118, 283, 109),
    (67, 283, 109),
    (724, 367, 109),
    (450, 295, 108),
    (870, 67, 130),
    (275, 176, 90),
)


@dataclass(frozen=True)
class Subject:
    label: str
    person: str
    photo: str
    crop: tuple[int, int, int, int] | None = None
    upscale: float = 1.0
    pad: int = 0  # grey border added around the (upscaled) image, pixels


def subjects() -> list[Subject]:
    out = [
        Subject("obama", "Barack Obama", "obama.jpg"),
        Subject("obama2", "Barack Obama", "obama2.jpg"),
        Subject("obama3", "Barack Obama", "obama3.jpg"),
        Subject("biden", "Joe Biden", "biden.jpg"),
        # cropped above the mission patch, which HOG also takes for a face
        Subject("astronaut", "Eileen Collins", "astronaut.png", (96, 0, 416, 320)),
        Subject("grace_hopper", "Grace Hopper", "grace_hopper.jpg"),
        # a tight 112x112 crop: upscaled, with a border so that the face is not at the edge
        Subject("tom_hanks", "Tom Hanks", "Tom_Hanks_54745.png", None, 2.0, 100),
    ]
    for i, (left, top, size) in enumerate(_GROUP_BOXES):
        cx, cy, half = left + size / 2, top + size / 2, 1.2 * size
        box = (int(cx - half), int(cy - half), int(cx + half), int(cy + half))
        out.append(Subject(f"group{i}", f"group photo person {i}", GROUP, box))
    return out


def subject_image(subject: Subject, folder: Path) -> Image.Image:
    image = Image.open(folder / subject.photo).convert("RGB")
    if subject.crop:
        image = image.crop(subject.crop)
    if subject.upscale != 1.0:
        size = (round(image.width * subject.upscale), round(image.height * subject.upscale))
        image = image.resize(size, Image.Resampling.BICUBIC)
    if subject.pad:
        canvas = Image.new(
            "RGB", (image.width + 2 * subject.pad, image.height + 2 * subject.pad), (120, 120, 120)
        )
        canvas.paste(image, (subject.pad, subject.pad))
        image = canvas
    return image


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return synth.to_bytes(image, "JPEG", quality)


def _rotate(image: Image.Image) -> Image.Image:
    return image.rotate(8, resample=Image.Resampling.BILINEAR, fillcolor=(90, 90, 90))


def _half(image: Image.Image) -> Image.Image:
    small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    return small.resize(image.size, Image.Resampling.BILINEAR)


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "plain": lambda im: _jpeg(im),
    "jpeg40": lambda im: _jpeg(im, 40),
    "dark": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(0.55)),
    "bright": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.35)),
    "blur": lambda im: _jpeg(im.filter(ImageFilter.GaussianBlur(1.5))),
    "half": lambda im: _jpeg(_half(im)),
    "rotated": lambda im: _jpeg(_rotate(im)),
}


def camera_frame(image: Image.Image) -> Image.Image:
    """The image as a 640x480 frame (or the image itself, if smaller)."""
    if image.width < 640 or image.height < 480:
        return image
    return synth.fit(_jpeg(image, 95))


@dataclass
class Study:
    thresholds: list[float]
    far: list[float]
    frr_other: list[float]
    frr_same: list[float]
    genuine_other: list[float]
    genuine_same: list[float]
    impostor: list[float]
    closest_impostors: list[tuple[float, str, str]]
    refused: list[str]


def run_study(thresholds: Iterable[float], folder: Path | None = None) -> Study:
    folder = folder or photos.ensure_photos()
    engine = FaceEngine(min_face_px=60)
    subs = subjects()
    refs: dict[str, bytes] = {}
    refused: list[str] = []
    for s in subs:
        try:
            refs[s.label] = engine.enroll(_jpeg(subject_image(s, folder), 95)).encoding
        except FaceRefused as exc:
            refused.append(f"enroll {s.label}: {exc}")
    probes: dict[tuple[str, str], np.ndarray] = {}
    for s in subs:
        frame = camera_frame(subject_image(s, folder))
        for name, make in VARIANTS.items():
            data = make(frame)
            try:
                probes[(s.label, name)] = _probe_encoding(engine, data)
            except FaceRefused as exc:
                refused.append(f"probe {s.label}/{name}: {exc}")
    person = {s.label: s.person for s in subs}
    genuine_other: list[float] = []
    genuine_same: list[float] = []
    impostor: list[tuple[float, str, str]] = []
    for ref_label, ref in refs.items():
        ref_vec = np.frombuffer(ref, dtype="<f8")
        for (label, variant), vec in probes.items():
            d = float(np.linalg.norm(vec - ref_vec))
            if label == ref_label:
                genuine_same.append(d)
            elif person[label] == person[ref_label]:
                genuine_other.append(d)
            else:
                impostor.append((d, ref_label, f"{label}/{variant}"))
    ts = list(thresholds)
    imp = [d for d, _, _ in impostor]
    return Study(
        thresholds=ts,
        far=[_rate(imp, t, below=True) for t in ts],
        frr_other=[_rate(genuine_other, t, below=False) for t in ts],
        frr_same=[_rate(genuine_same, t, below=False) for t in ts],
        genuine_other=sorted(genuine_other),
        genuine_same=sorted(genuine_same),
        impostor=sorted(imp),
        closest_impostors=sorted(impostor)[:5],
        refused=refused,
    )


def _probe_encoding(engine: FaceEngine, data: bytes) -> np.ndarray:
    # The same path as one verification frame: decode, detect, exactly one face, encode.
    decoded = decode(data, max_width=engine.work_width)
    face = engine._one_face(decoded, engine.detection_width, "the probe", "-")
    return engine._encode(decoded.rgb, face.box, 1)


def _rate(values: list[float], threshold: float, *, below: bool) -> float:
    if not values:
        return float("nan")
    hits = sum(1 for v in values if (v <= threshold if below else v > threshold))
    return hits / len(values)


def liveness_margins(seed: int = 2017, sequences: int = 8) -> dict[str, object]:
    """Still-photo presentations (each photo repeated, and waved/tilted at random) and
    synthetic live sequences: the largest nose parallax and smallest blink ratio that the
    still presentations reach, against the policy's thresholds."""
    folder = photos.ensure_photos()
    engine = FaceEngine()
    rng = random.Random(seed)
    still_turn: list[float] = []
    still_blink: list[float] = []
    live_turn: list[float] = []
    live_blink: list[float] = []
    passed_still = 0
    total_still = 0
    stretched = 0
    live_passed = {"turn": 0, "blink": 0}
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "grace_hopper.jpg",
                 "astronaut.png"):  # fmt: skip
        frame = synth.fit((folder / name).read_bytes())
        ref = engine.enroll(_jpeg(frame, 95))
        runs = [synth.still(frame)]
        for _ in range(sequences):
            moves = [
                (
                    rng.uniform(-8, 8),
                    rng.uniform(0.8, 1.05),
                    rng.uniform(0.8, 1.05),
                    rng.uniform(-20, 20),
                    rng.uniform(-15, 15),
                    rng.uniform(0.8, 1.2),
                )
                for _ in range(5)
            ]
            runs.append(synth.handheld(frame, moves))
        for frames in runs:
            v = engine.verify(ref, frames)
            if "yaw_range" not in v.liveness:
                continue
            total_still += 1
            passed_still += v.decision.value != "NOT_LIVE"
            if max(v.liveness["anisotropy"]) <= engine.liveness_policy.max_anisotropy:
                still_turn.append(v.liveness["yaw_range"])
                still_blink.append(v.liveness["blink_ratio_min"] or 1.0)
            else:
                stretched += 1
        turn = engine.verify(ref, synth.head_turn(frame))
        live_turn.append(turn.liveness.get("yaw_range", 0.0))
        live_passed["turn"] += turn.liveness.get("live", False)
        blink = engine.verify(ref, synth.blink(frame))
        live_blink.append(blink.liveness.get("blink_ratio_min") or 1.0)
        live_passed["blink"] += blink.liveness.get("live", False)
    return {
        "still_sequences": total_still,
        "still_passed_liveness": passed_still,
        "still_refused_as_stretched": stretched,
        "still_within_anisotropy_max_yaw_range": round(max(still_turn), 4),
        "still_within_anisotropy_min_blink_ratio": round(min(still_blink), 4),
        "synthetic_live_passed": live_passed,
        "synthetic_turn_yaw_ranges": [round(x, 4) for x in live_turn],
        "synthetic_blink_ratios": [round(x, 4) for x in live_blink],
        "policy": engine.liveness_policy,
    }


def _fmt(rate: float) -> str:
    return "n/a" if rate != rate else f"{100 * rate:.1f}%"


def report(study: Study) -> str:
    lines = [
        f"comparisons: {len(study.genuine_other)} genuine (other photo), "
        f"{len(study.genuine_same)} genuine (same photo), {len(study.impostor)} impostor",
        "",
        "| threshold | FAR (impostor accepted) | FRR other photo | FRR same photo |",
        "|---|---|---|---|",
    ]
    for t, far, fo, fs in zip(
        study.thresholds, study.far, study.frr_other, study.frr_same, strict=True
    ):
        lines.append(f"| {t:.2f} | {_fmt(far)} | {_fmt(fo)} | {_fmt(fs)} |")
    lines += [
        "",
        f"genuine other-photo distances: min {min(study.genuine_other):.3f} "
        f"max {max(study.genuine_other):.3f}",
        f"genuine same-photo distances: min {min(study.genuine_same):.3f} "
        f"max {max(study.genuine_same):.3f}",
        f"impostor distances: min {min(study.impostor):.3f} "
        f"median {float(np.median(study.impostor)):.3f}",
        "closest impostors: "
        + "; ".join(f"{d:.3f} {r} vs {p}" for d, r, p in study.closest_impostors),
    ]
    if study.refused:
        lines.append("refused: " + "; ".join(study.refused))
    return "\n".join(lines)


# ------------------------------------------------------------------ challenge study

STUDY_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "grace_hopper.jpg",
                "astronaut.png")  # fmt: skip


@dataclass
class Tally:
    """How many presentations of one kind were tried, passed, and why the others failed."""

    tried: int = 0
    passed: int = 0
    matched: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)  # turn parallax seen, where measured

    def add(self, live: bool, matched: bool, reason: str, evidence: dict[str, Any]) -> None:
        self.tried += 1
        self.passed += live
        self.matched += matched
        if not live:
            key = ("actions missing, extra or out of order" if reason.startswith("the frames show")
                   else reason.split(":")[0].split("(")[0].strip()[:70])
            self.reasons[key] = self.reasons.get(key, 0) + 1
        self.values += [p for p in evidence.get("parallax") or [] if p is not None]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tried": self.tried, "passed": self.passed,
                               "matched": self.matched, "refused_because": self.reasons}
        if self.values:
            out["turn_parallax"] = {"min": round(min(self.values), 3),
                                    "max": round(max(self.values), 3), "n": len(self.values)}
        return out


def _landmarks_of(engine: FaceEngine, data: bytes) -> np.ndarray:
    decoded = decode(data, max_width=engine.work_width)
    face = engine._one_face(decoded, engine.detection_width, "the frame", "show one face")
    return engine._landmarks(decoded.rgb, face.box)


def _reordered(marks: np.ndarray, boxes: list[Any], actions: list[str],
               policy: Any) -> tuple[np.ndarray, list[Any]] | None:  # fmt: skip
    """A recorded answer's frames cut into its actions and put together in the order of
    ``actions`` (frame 0, then each action's frames with a neutral frame between), or None
    when the recording lacks one of them."""
    from lifecert.face.liveness import NEUTRAL, _runs, frame_states, motion_features

    states = frame_states(motion_features(marks), policy)
    segments: dict[str, list[int]] = {}
    for state, first, last in _runs(states):
        segments.setdefault(state, list(range(first, last + 1)))
    neutral = [i for i, state in enumerate(states) if state == NEUTRAL and i > 0] or [0]
    if any(a not in segments for a in actions):
        return None
    order = [0]
    for k, action in enumerate(actions):
        if k:
            order.append(neutral[k % len(neutral)])
        order += segments[action]
    order.append(neutral[-1])
    return marks[order], [boxes[i] for i in order]


def challenge_study(seed: int = 2026, live_per_photo: int = 20,
                    lit_per_photo: int = 15) -> dict[str, Any]:  # fmt: skip
    """The figures of docs/face.md, Challenge-response: on the photos of
    :data:`STUDY_PHOTOS`, how many (a) synthetic head turns from stills, (b) replayed
    answers to an earlier challenge, (c) still-photo sequences pass a challenge, and (d) how
    many genuine-like live answers are refused. (a) and (c) go through the engine's whole
    path (decode, detect, landmarks, liveness, encodings) against a reference enrolled
    from the same photo; (b) and (d) are landmark-level
    (see :func:`synth.live_answer_landmarks`). The screen-light figures (b'), (b'') and
    (d') are :func:`light_study`'s, with their own random draws (seed + 1), so that the
    figures above stay those of the same draws."""
    from lifecert.face.liveness import assess_challenge, fresh_actions, random_actions

    folder = photos.ensure_photos()
    engine = FaceEngine()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    synthetic, old_turn, still, live = Tally(), Tally(), Tally(), Tally()
    replay, replay_any, recut = Tally(), Tally(), Tally()
    for name in STUDY_PHOTOS:
        frame = synth.fit((folder / name).read_bytes())
        ref = engine.enroll(_jpeg(frame, 95))
        # (a) the attacker answers random challenges with 2-D edits of the photo
        for degrees in (12.0, 20.0, 30.0) * 2:
            actions = random_actions(3, rng)
            v = engine.verify(ref, synth.still_answer(frame, actions, degrees), actions)
            synthetic.add(v.liveness.get("live", False), v.matched, v.reason, v.liveness)
        # ... and the project's original synthetic head turn, against a random challenge
        actions = random_actions(3, rng)
        v = engine.verify(ref, synth.head_turn(frame, (0.0, 10.0, 20.0, 10.0, 0.0, -10.0,
                                                       -20.0)), actions)  # fmt: skip
        old_turn.add(v.liveness.get("live", False), v.matched, v.reason, v.liveness)
        # (c) the photo held still (re-encoded so that no two frames are byte-identical)
        # and waved/tilted, 7 frames, against random challenges
        runs = [[_jpeg(frame, 95 - i) for i in range(7)]]
        for _ in range(4):
            moves = [(rng.uniform(-8, 8), rng.uniform(0.8, 1.05), rng.uniform(0.8, 1.05),
                      rng.uniform(-20, 20), rng.uniform(-15, 15), rng.uniform(0.8, 1.2))
                     for _ in range(7)]  # fmt: skip
            runs.append(synth.handheld(frame, moves))
        for frames in runs:
            actions = random_actions(3, rng)
            try:
                v = engine.verify(ref, frames, actions)
            except ValueError as exc:  # pragma: no cover - a refusal is a result too
                still.add(False, False, str(exc), {})
                continue
            still.add(v.liveness.get("live", False), v.matched, v.reason, v.liveness)
        # (d) genuine-like answers, landmark level; (b) each replayed to a new challenge
        points = _landmarks_of(engine, _jpeg(frame, 95))
        for _ in range(live_per_photo):
            actions = random_actions(3, rng)
            marks, boxes = synth.live_answer_landmarks(points, actions, nprng)
            a = assess_challenge(marks, boxes, actions, engine.challenge_policy)
            live.add(a.live, False, a.reason, a.evidence)
            if not a.live:
                continue
            # (b) the recorded answer sent whole to the retiree's next challenge, which the
            # server draws among the sequences not answered lately ...
            later = fresh_actions(3, rng, {tuple(actions): 0})
            b = assess_challenge(marks, boxes, later, engine.challenge_policy)
            replay.add(b.live, False, b.reason, {})
            # ... and, without that rule, to any random challenge
            anyone = random_actions(3, rng)
            b = assess_challenge(marks, boxes, anyone, engine.challenge_policy)
            replay_any.add(b.live, False, b.reason, {})
            # (b') the recorded answer cut into its actions and re-ordered for the challenge
            cut = _reordered(marks, boxes, later, engine.challenge_policy)
            if cut is None:
                recut.add(False, False, "the recording lacks an action the challenge asks", {})
            else:
                b = assess_challenge(cut[0], cut[1], later, engine.challenge_policy)
                recut.add(b.live, False, b.reason, {})
    return {
        "photos": list(STUDY_PHOTOS),
        **light_study(engine, folder, seed + 1, lit_per_photo),
        "a_synthetic_turns_from_stills": synthetic.as_dict(),
        "a_original_synthetic_head_turn": old_turn.as_dict(),
        "b_replayed_to_a_new_challenge_landmarks": replay.as_dict(),
        "b_replayed_without_the_sequence_memory": replay_any.as_dict(),
        "b_cut_and_reordered_landmarks": recut.as_dict(),
        "c_still_photo_sequences": still.as_dict(),
        "d_genuine_like_live_answers_landmarks": live.as_dict(),
        "policy": engine.challenge_policy,
    }


def challenge_report(study: dict[str, Any]) -> str:
    def line(label: str, key: str, passed: str = "passed") -> str:
        t = study[key]
        share = t["passed"] / t["tried"] if t["tried"] else float("nan")
        if passed == "refused":
            refused = t["tried"] - t["passed"]
            share = refused / t["tried"] if t["tried"] else float("nan")
            return f"{label}: {refused} of {t['tried']} refused ({_fmt(share)})"
        return (f"{label}: {t['passed']} of {t['tried']} passed liveness ({_fmt(share)}), "
                f"{t['matched']} certified")

    lines = [
        "challenge-response liveness on " + ", ".join(study["photos"]),
        line("(a) synthetic head turns from stills (2-D warp, 12/20/30 degrees)",
             "a_synthetic_turns_from_stills"),
        line("    the original synthetic head turn against a random challenge",
             "a_original_synthetic_head_turn"),
        line("(b) live answers replayed whole to the next challenge (landmark level)",
             "b_replayed_to_a_new_challenge_landmarks"),
        line("    the same, if challenges were drawn without the sequence memory",
             "b_replayed_without_the_sequence_memory"),
        line("    live answers cut into their actions and re-ordered (landmark level)",
             "b_cut_and_reordered_landmarks"),
        line("(c) still-photo sequences (held still, waved and tilted)",
             "c_still_photo_sequences"),
        line("(d) genuine-like live answers (landmark level), false refusals",
             "d_genuine_like_live_answers_landmarks", "refused"),
        "screen light (a colour per frame; motion at landmark level, light on pixels):",
        line("(b') live answers re-ordered for the next challenge, best colours first",
             "b_prime_reordered_with_colours"),
        line("(b'') the same, each frame digitally re-tinted to the new colours",
             "b_second_reordered_and_retinted"),
        line("(d') genuine-like answers lit by the right colours, false refusals",
             "d_prime_genuine_like_lit_answers", "refused"),
        "refused by the light check alone (the motion passed): "
        + ", ".join(f"{k} {v}" for k, v in study["refused_by_light_alone"].items()),
        "light correlation: " + "; ".join(
            f"{k} " + " ".join(f"{q} {v}" for q, v in spread.items())
            for k, spread in study["correlation"].items()),
        f"frames lit exactly by one challenge's colours passing another's light check: "
        f"{100 * study['chance_random_colours_pass']:.3f}% "
        f"(policy {study['light_policy']})",
        "best re-ordering of one recording, ideal measurements: {trials} trials, actions "
        "present {actions_present:.1%}, light check passed {passed:.3%}".format(
            **study["chance_best_reordering_passes"]),
    ]
    for key in ("a_synthetic_turns_from_stills", "d_genuine_like_live_answers_landmarks"):
        if "turn_parallax" in study[key]:
            p = study[key]["turn_parallax"]
            lines.append(f"turn parallax, {key[:1]}: min {p['min']} max {p['max']} "
                         f"over {p['n']} turns (threshold {study['policy'].min_parallax})")
    for key in ("a_synthetic_turns_from_stills", "b_replayed_to_a_new_challenge_landmarks",
                "b_cut_and_reordered_landmarks", "c_still_photo_sequences",
                "d_genuine_like_live_answers_landmarks", "b_prime_reordered_with_colours",
                "b_second_reordered_and_retinted", "d_prime_genuine_like_lit_answers"):
        for reason, count in sorted(study[key]["refused_because"].items(),
                                    key=lambda kv: -kv[1]):
            label = key.split("_")[0] + ("'" if "_prime_" in key
                                         else "''" if "_second_" in key else "")
            lines.append(f"  {label} refused {count}: {reason}")
    return "\n".join(lines)


# ------------------------------------------------------------------ screen-light study


def _light_measure(engine: FaceEngine, data: bytes) -> np.ndarray:
    """One frame's face-minus-background log-chromaticity, by the engine's own path
    (decode, detect, landmarks) and :func:`screenlight.measure`."""
    from lifecert.face.screenlight import measure

    decoded = decode(data, max_width=engine.work_width)
    face = engine._one_face(decoded, engine.detection_width, "the frame", "show one face")
    return measure(decoded.rgb, engine._landmarks(decoded.rgb, face.box))


def _assemble(states: list[str], colours: list[str], actions: list[str],
              wanted: list[str]) -> list[int] | None:  # fmt: skip
    """The attacker's best re-ordering of a recording for a screen-light challenge, whose
    frames must follow :func:`liveness.frame_layout` (at rest, action 1, at rest, ...): for
    each position, of the recorded frames in the state asked there (repeats allowed), the
    one whose screen colour lies closest to the colour ``wanted`` there (the same colour
    when there is one). None when the recording lacks an action asked."""
    from lifecert.face.liveness import frame_layout
    from lifecert.face.screenlight import DIRECTIONS

    by_state: dict[str, list[int]] = {}
    for i, state in enumerate(states):
        by_state.setdefault(state, []).append(i)
    layout = frame_layout(actions)
    if any(state not in by_state for state in layout):
        return None
    return [max(by_state[state], key=lambda i: float(DIRECTIONS[colours[i]] @ DIRECTIONS[c]))
            for state, c in zip(layout, wanted, strict=True)]


def _retint(data: bytes, marks: np.ndarray, old: str, new: str,
            rng: np.random.Generator) -> bytes:  # fmt: skip
    """An attacker's digital re-tint of a recorded frame: the old colour's light divided
    out (at a guessed strength) and the new one's added, on the face's region."""
    from lifecert.face.screenlight import PALETTE

    image = Image.open(io.BytesIO(data)).convert("RGB")
    rgb = np.asarray(image).astype(np.float64)
    fall = synth.falloff(marks, image.size, 1.2, 0.03)[..., None]
    strength = 0.12
    rgb = rgb / (1.0 + strength * fall * np.array(PALETTE[old]) / 255.0)
    rgb = rgb * (1.0 + strength * fall * np.array(PALETTE[new]) / 255.0)
    return synth.to_bytes(Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8)))


def chance_colours_agree(policy: Any, frames: int = 7, pairs: int = 20_000,
                         seed: int = 7) -> float:
    """The share of pairs of challenges whose colour sequences are such that frames lit
    exactly (ideal directions) by the first pass the whole light check of the second: how
    often a recording sent unchanged has the right light for another challenge."""
    from lifecert.face.screenlight import DIRECTIONS, assess_light, colours_for

    passed = 0
    for k in range(pairs):
        lit = colours_for(f"pair-{seed}-{k}-a", frames)
        asked = colours_for(f"pair-{seed}-{k}-b", frames)
        measured = np.stack([DIRECTIONS[c] for c in lit])
        passed += assess_light(measured, asked, policy).lit
    return passed / pairs


def _why_refused(engine: FaceEngine, motion: Any, light: Any) -> str:
    """Why an answer of the light study is refused: its motion, else its light (a frame
    lit by another colour, when the colours otherwise correlate)."""
    if not motion.live:
        return str(motion.reason)
    if light.evidence.get("frames_off") and light.evidence["correlation"] >= \
            engine.light_policy.min_correlation:
        return "a frame lit by another colour than the challenge asked"
    return str(light.reason)


def _spread(values: list[float]) -> dict[str, float]:
    """Min, 5th percentile, median, 95th percentile and max, to 3 decimals."""
    if not values:
        return {}
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return dict(zip(("min", "p5", "median", "p95", "max"),
                    (round(float(v), 3) for v in q), strict=True))


def light_study(engine: FaceEngine, folder: Path, seed: int,
                per_photo: int) -> dict[str, Any]:  # fmt: skip
    """(d') genuine-like answers lit by the right colours, (b') genuine-like recordings
    re-ordered for a new challenge by the best re-ordering (:func:`_assemble`), (b'') the
    same re-tinted to the new colours. Motion at landmark level, as (b) and (d); light on
    pixels: the photo and its 2-D edits for each frame (``synth.answer_images``), lit by
    ``synth.lit_answer`` and measured through the engine's decode, detection and
    landmarks."""
    from lifecert.face.liveness import (
        assess_challenge,
        frame_layout,
        frame_states,
        fresh_actions,
        motion_features,
        random_actions,
    )
    from lifecert.face.screenlight import assess_light, colours_for

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    genuine, reordered, tinted = Tally(), Tally(), Tally()
    r_genuine: list[float] = []
    r_reordered: list[float] = []
    r_tinted: list[float] = []
    light_refused = {"d": 0, "b'": 0, "b''": 0}
    for name in STUDY_PHOTOS:
        frame = synth.fit((folder / name).read_bytes())
        points = _landmarks_of(engine, _jpeg(frame, 95))
        base = {"NEUTRAL": frame, "TURN_LEFT": synth.turn_head(frame, 20.0),
                "TURN_RIGHT": synth.turn_head(frame, -20.0),
                "OPEN_MOUTH": synth.open_mouth(frame, 0.4)}
        base_marks = {k: _landmarks_of(engine, _jpeg(v, 95)) for k, v in base.items()}
        for _ in range(per_photo):
            actions = random_actions(3, rng)
            colours = colours_for(f"study-{rng.getrandbits(64):016x}", 2 * len(actions) + 1)
            marks, boxes = synth.live_answer_landmarks(points, actions, nprng, held=1)
            layout = frame_layout(actions)
            camera = synth.Camera.random(nprng)
            data = synth.lit_answer([base[s] for s in layout], [base_marks[s] for s in layout],
                                    colours, camera, nprng)
            measured = np.stack([_light_measure(engine, d) for d in data])
            motion = assess_challenge(marks, boxes, actions, engine.challenge_policy, True)
            light = assess_light(measured, colours, engine.light_policy)
            r_genuine.append(light.evidence.get("correlation", 0.0))
            light_refused["d"] += motion.live and not light.lit
            ok = motion.live and light.lit
            genuine.add(ok, False, _why_refused(engine, motion, light), {})
            if not motion.live:
                continue
            # (b') the recording re-ordered for the next challenge, best colours first
            later = fresh_actions(3, rng, {tuple(actions): 0})
            wanted = colours_for(f"study-{rng.getrandbits(64):016x}", 2 * len(later) + 1)
            states = frame_states(motion_features(marks), engine.challenge_policy)
            order = _assemble(states, colours, later, wanted)
            if order is None:
                reason = "the recording lacks an action the challenge asks"
                reordered.add(False, False, reason, {})
                tinted.add(False, False, reason, {})
                continue
            m = assess_challenge(marks[order], [boxes[i] for i in order], later,
                                 engine.challenge_policy, True)
            lit = assess_light(measured[order], wanted, engine.light_policy)
            r_reordered.append(lit.evidence.get("correlation", 0.0))
            light_refused["b'"] += m.live and not lit.lit
            reordered.add(m.live and lit.lit, False, _why_refused(engine, m, lit), {})
            # (b'') ... and each frame digitally re-tinted to the new challenge's colour
            retinted = [_retint(data[i], base_marks[layout[i]], colours[i], wanted[p], nprng)
                        for p, i in enumerate(order)]
            lit = assess_light(np.stack([_light_measure(engine, d) for d in retinted]),
                               wanted, engine.light_policy)
            r_tinted.append(lit.evidence.get("correlation", 0.0))
            light_refused["b''"] += m.live and not lit.lit
            tinted.add(m.live and lit.lit, False, _why_refused(engine, m, lit), {})

    return {
        "d_prime_genuine_like_lit_answers": genuine.as_dict(),
        "b_prime_reordered_with_colours": reordered.as_dict(),
        "b_second_reordered_and_retinted": tinted.as_dict(),
        "refused_by_light_alone": light_refused,
        "correlation": {"genuine": _spread(r_genuine), "reordered": _spread(r_reordered),
                        "retinted": _spread(r_tinted)},
        "chance_random_colours_pass": chance_colours_agree(engine.light_policy),
        "chance_best_reordering_passes": chance_reordering_passes(engine.light_policy),
        "light_policy": engine.light_policy,
    }


def chance_reordering_passes(policy: Any, trials: int = 20_000, seed: int = 11,
                             noise: float = 0.1) -> dict[str, float]:  # fmt: skip
    """The best re-ordering (:func:`_assemble`) of one recorded answer (7 frames, each lit
    by its challenge's colour) for a new challenge, judged on ideal measurements (each
    frame's shift the unit direction of its colour plus Gaussian noise of ``noise``): the
    share of trials whose recording holds the actions asked, and the share that passes
    the light check. The motion is taken as passing whenever the actions are there."""
    from lifecert.face.liveness import frame_layout, fresh_actions, random_actions
    from lifecert.face.screenlight import DIRECTIONS, assess_light, colours_for

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    usable = passed = 0
    for t in range(trials):
        actions = random_actions(3, rng)
        colours = colours_for(f"old-{seed}-{t}", 7)
        states = frame_layout(actions)
        later = fresh_actions(3, rng, {tuple(actions): 0})
        wanted = colours_for(f"new-{seed}-{t}", 7)
        order = _assemble(states, colours, later, wanted)
        if order is None:
            continue
        usable += 1
        measured = np.stack([DIRECTIONS[colours[i]] for i in order])
        measured = measured + nprng.normal(0.0, noise, measured.shape)
        passed += assess_light(measured, wanted, policy).lit
    return {"trials": trials, "actions_present": usable / trials, "passed": passed / trials}
