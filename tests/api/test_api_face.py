"""FaceVerification through the real server: staff enroll a reference photo, the app and
the counter verify frame sequences; a MATCH lands on the events topic as a
CertificationRecorded of the caller's face channel. Real photos shipped inside packages
(lifecert.face.photos); the live sequences are synthetic head turns made from them
(lifecert.face.synth)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lifecert.api.harness import Sandbox, ServerProcess
from lifecert.api.protos import face_verification_pb2 as fv
from lifecert.api.protos import face_verification_pb2_grpc as fv_grpc
from lifecert.events import codec
from lifecert.pipeline import kafka
from lifecert.pipeline.topics import EVENTS

face = pytest.importorskip("lifecert.face", reason="the face engine is not installed")


@pytest.fixture(scope="module")
def photos() -> Path:
    from lifecert.face import photos as shipped

    return shipped.ensure_photos()


@pytest.fixture(scope="module")
def frames(photos: Path) -> dict[str, list[bytes]]:
    """Five 640x480 frames each: a blink (live), and a still photo repeated."""
    from lifecert.face import synth

    same = synth.fit((photos / "obama3.jpg").read_bytes())
    return {"same_person": synth.blink(same), "still_photo": synth.still(same)}


@pytest.fixture(scope="module")
def staff(server: ServerProcess) -> Iterator[fv_grpc.FaceVerificationStub]:
    with server.channel("FS-HQ-FACE", "STAFF") as channel:
        yield fv_grpc.FaceVerificationStub(channel)


@pytest.fixture(scope="module")
def app(server: ServerProcess) -> Iterator[fv_grpc.FaceVerificationStub]:
    with server.channel("FS-APP", "APP") as channel:
        yield fv_grpc.FaceVerificationStub(channel)


@pytest.fixture(scope="module")
def enrolled(staff: fv_grpc.FaceVerificationStub, photos: Path) -> str:
    reply = staff.Enroll(fv.EnrollRequest(retiree_id="FC-1",
                                          photo=(photos / "obama.jpg").read_bytes()), timeout=60)
    assert reply.enrolled, reply.reason
    return "FC-1"


def certifications(box: Sandbox) -> list[dict[str, Any]]:
    client = kafka.consumer(box.bootstrap)
    try:
        records = kafka.read_to_end(client, box.topics[EVENTS].name)
        events = [codec.decode(r.value) for r in records]
    finally:
        client.close()
    return [e for e in events if e["type"] == "CertificationRecorded"
            and e["channel"] in ("FACE_APP", "FACE_COUNTER")]


def test_same_person_alive_is_certified_once(
    box: Sandbox, app: fv_grpc.FaceVerificationStub, enrolled: str,
    frames: dict[str, list[bytes]],
) -> None:
    request = fv.VerifyRequest(retiree_id=enrolled, frames=frames["same_person"],
                               attempt_id="APP-ATTEMPT-1")
    reply = app.Verify(request, timeout=60)
    assert reply.decision == fv.MATCH, reply.reason
    assert reply.live and 0 < reply.distance <= reply.threshold
    assert reply.certification_id == "APP-ATTEMPT-1" and reply.event_id
    [cert] = [c for c in certifications(box) if c["event_id"] == reply.event_id]
    assert cert["channel"] == "FACE_APP" and cert["agency_id"] == "FS-APP"
    assert cert["retiree_id"] == enrolled
    again = app.Verify(request, timeout=60)  # the same attempt sent twice
    assert again.decision == fv.MATCH and again.event_id == reply.event_id
    assert [c["event_id"] for c in certifications(box)].count(reply.event_id) == 1


def test_counter_match_records_face_counter(
    box: Sandbox, server: ServerProcess, enrolled: str, frames: dict[str, list[bytes]]
) -> None:
    with server.channel("FS-W02", "COUNTER") as channel:
        reply = fv_grpc.FaceVerificationStub(channel).Verify(
            fv.VerifyRequest(retiree_id=enrolled, frames=frames["same_person"]), timeout=60)
    assert reply.decision == fv.MATCH, reply.reason
    assert reply.certification_id.startswith("FS-W02-FACE-")
    [cert] = [c for c in certifications(box) if c["event_id"] == reply.event_id]
    assert cert["channel"] == "FACE_COUNTER"


@pytest.fixture(scope="module")
def enrolled_other(staff: fv_grpc.FaceVerificationStub, photos: Path) -> str:
    """A retiree whose reference is another man's photo."""
    reply = staff.Enroll(fv.EnrollRequest(retiree_id="FC-2",
                                          photo=(photos / "biden.jpg").read_bytes()), timeout=60)
    assert reply.enrolled, reply.reason
    return "FC-2"


@pytest.mark.parametrize(
    ("who", "sequence", "decision"),
    [("other", "same_person", fv.NO_MATCH), ("same", "still_photo", fv.NOT_LIVE)],
)
def test_refused_verifications_certify_nothing(
    box: Sandbox, app: fv_grpc.FaceVerificationStub, enrolled: str, enrolled_other: str,
    frames: dict[str, list[bytes]], who: str, sequence: str, decision: int,
) -> None:
    before = len(certifications(box))
    retiree_id = enrolled if who == "same" else enrolled_other
    reply = app.Verify(fv.VerifyRequest(retiree_id=retiree_id, frames=frames[sequence]),
                       timeout=60)
    assert reply.decision == decision, reply.reason
    assert not reply.event_id and not reply.certification_id
    assert len(certifications(box)) == before


@pytest.mark.parametrize(
    ("photo", "refusal"),
    [("coffee.png", fv.NO_FACE), ("t1.jpg", fv.MULTIPLE_FACES),
     ("Tom_Hanks_54745.png", fv.POOR_QUALITY)],
)
def test_enrollment_refuses_unusable_photos(
    staff: fv_grpc.FaceVerificationStub, photos: Path, photo: str, refusal: int
) -> None:
    reply = staff.Enroll(fv.EnrollRequest(retiree_id="FC-3",
                                          photo=(photos / photo).read_bytes()), timeout=60)
    assert not reply.enrolled and reply.refusal == refusal and reply.reason


def test_face_roles_and_missing_reference(
    server: ServerProcess, app: fv_grpc.FaceVerificationStub, photos: Path,
    frames: dict[str, list[bytes]],
) -> None:
    with pytest.raises(grpc.RpcError) as denied:
        app.Enroll(fv.EnrollRequest(retiree_id="FC-3", photo=(photos / "obama.jpg")
                                    .read_bytes()), timeout=30)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not call FaceVerification/Enroll" in denied.value.details()
    with server.channel("MO-SSF", "MACAU_SSF") as channel, pytest.raises(grpc.RpcError) as no:
        fv_grpc.FaceVerificationStub(channel).Verify(
            fv.VerifyRequest(retiree_id="FC-3", frames=frames["same_person"]), timeout=30)
    assert no.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as missing:
        app.Verify(fv.VerifyRequest(retiree_id="FC-3", frames=frames["same_person"]),
                   timeout=30)
    assert missing.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_only_sealed_encodings_and_evidence_are_stored(
    box: Sandbox, enrolled: str, app: fv_grpc.FaceVerificationStub,
    frames: dict[str, list[bytes]],
) -> None:
    [(sealed, _model)] = box.query(
        "SELECT sealed, model FROM api_face_references WHERE retiree_id = %s", (enrolled,))
    assert bytes(sealed).startswith(b"LCF1") and len(bytes(sealed)) < 1200  # no image
    rows = box.query("SELECT operation, decision, model, threshold, distance, live, evidence "
                     "FROM api_face_decisions")
    decisions = {r[1] for r in rows}
    assert {"ENROLLED", "MATCH", "NO_MATCH", "NOT_LIVE", "NO_FACE"} <= decisions
    for operation, decision, model_, threshold, distance, live, evidence in rows:
        if operation == "VERIFY":
            assert model_ and threshold and evidence is not None
            if decision in ("MATCH", "NO_MATCH"):
                assert distance is not None and live is not None
