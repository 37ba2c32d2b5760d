"""FaceVerification: Enroll (staff), BeginChallenge and Verify (app, counter) over the face
engine of ``lifecert.face`` (FaceEngine: enroll / verify, seal / unseal).

Verify answers a challenge: BeginChallenge stores a random sequence of actions for one
retiree and the asking agency in PostgreSQL (lifecert.api.challenges); Verify consumes it
once, before its deadline, and the frames must show the actions in order with the parallax
of a real head (lifecert.face.liveness.assess_challenge). For the app (and the window
camera when ``face_screen_light_counter`` is set) the challenge also names a screen colour
per frame, derived from its nonce, and the face's chroma must follow them
(lifecert.face.screenlight): frames recorded for another challenge carry its colours.
Failed attempts are budgeted per day for each retiree and caller (agency, and for the app
the client address it names: lifecert.api.lockouts.Caller) and per agency per minute; a MATCH after
recent NOT_LIVE results for the same retiree raises a FraudSuspected
(FACE_MATCH_AFTER_NOT_LIVE) on lifecert.alerts.
Frames are size-checked from their headers before any decoding, and each agency may run a
few face calls at once.

Images are decoded in memory by the engine and dropped; only the reference encoding is
stored, sealed with AES-GCM under ``LIFECERT_FACE_KEY`` and bound to the retiree id.
Every decision is recorded in ``api_face_decisions`` with model, threshold, distance and
the liveness evidence. A MATCH records a CertificationRecorded (FACE_APP for the app
role, FACE_COUNTER for a counter), published and acknowledged by the broker before the
answer, idempotent by the attempt id (bound to the retiree: reusing it for another retiree
is refused), or by the challenge when no attempt id is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from psycopg2.extras import Json

from lifecert.api import authz, challenges, db, lockouts
from lifecert.api.gate import Call, Gate
from lifecert.api.partner import event_id_for, timestamp
from lifecert.api.protos import face_verification_pb2, face_verification_pb2_grpc
from lifecert.api.publisher import Publisher, Written
from lifecert.api.server_config import ApiConfig
from lifecert.domain.fold import uuid5
from lifecert.events import bounds
from lifecert.events.time import isoformat_local
from lifecert.events.typed import parse_typed
from lifecert.face import (
    DEFAULT_THRESHOLD,
    EnrollmentRefused,
    FaceDecision,
    FaceEngine,
    Verification,
)
from lifecert.face.engine import Enrollment
from lifecert.face.images import BadImage, check_pixels
from lifecert.face.key import FaceKeyError, key_from_env
from lifecert.face.liveness import ChallengePolicy, fresh_actions
from lifecert.face.pool import EnginePool
from lifecert.face.screenlight import colours_for
from lifecert.pipeline.campaign_clock import Clock, wall_clock
from lifecert.sealing import SealError, seal, unseal

log = logging.getLogger("lifecert.api")
pb = face_verification_pb2


def _associated(retiree_id: str) -> bytes:
    return b"lifecert-face-reference\0" + retiree_id.encode("utf-8")


class FaceService(face_verification_pb2_grpc.FaceVerificationServicer):
    def __init__(
        self, gate: Gate, database: db.Database, publisher: Publisher, config: ApiConfig,
        *, threshold: float | None = None, clock: Clock = wall_clock,
    ) -> None:
        """``clock``: the time the certifications of a MATCH are stamped with (performed_at:
        when BeginChallenge arrived; recorded_at: when Verify arrived); a campaign clock in a
        sandbox or a drill (``--clock-file``). Challenge deadlines, budgets and retention
        always run on the wall clock."""
        try:
            self.key = key_from_env()
        except FaceKeyError as exc:
            raise ImportError(str(exc)) from None  # not served, with the reason
        self.gate = gate
        self.clock = clock
        self.db = database
        self.publisher = publisher
        self.limits = config.limits
        settings: dict[str, Any] = {
            "threshold": DEFAULT_THRESHOLD if threshold is None else threshold,
            "max_frames": config.limits.max_frames,
            "max_pixels": config.limits.max_frame_pixels,
            "challenge": (ChallengePolicy() if config.face_min_parallax is None
                          else ChallengePolicy(min_parallax=config.face_min_parallax)),
        }
        # In this process: the model, the threshold, and the checks when there is no pool.
        self.engine = FaceEngine(**settings)
        self._running: Counter[str] = Counter()  # face calls in progress, per agency
        workers = ((os.cpu_count() or 1) if config.face_workers is None
                   else config.face_workers)
        # dlib is CPU-bound and holds the GIL: threads share one core; the pool's
        # processes each use one (lifecert.face.pool).
        self.pool = EnginePool(workers, settings) if workers > 0 else None
        self.workers = (f"{workers} engine processes" if self.pool is not None
                        else "in the server's process")
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="api-face")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _engine_enroll(self, photo: bytes) -> Enrollment:
        if self.pool is None:
            return await self._run(self.engine.enroll, photo)
        return await asyncio.wrap_future(self.pool.enroll(photo))

    async def _engine_verify(self, encoding: bytes, frames: list[bytes], actions: list[str],
                      colours: list[str] | None) -> Verification:
        if self.pool is None:
            return await self._run(
                lambda: self.engine.verify(encoding, frames, actions, colours=colours))
        return await asyncio.wrap_future(self.pool.verify(encoding, frames, actions, colours))

    def close(self) -> None:
        """Stop the engine's worker processes (the server's stop)."""
        if self.pool is not None:
            self.pool.close()
        self._executor.shutdown(wait=False)

    @asynccontextmanager
    async def _slot(self, call: Call, retiree_id: str) -> AsyncIterator[None]:
        """One of the agency's concurrent face calls (RESOURCE_EXHAUSTED beyond the cap).
        All calls run on this process's event loop, so the counter needs no lock."""
        agency = call.agency or ""
        cap = self.limits.face_concurrent_per_agency
        if self._running[agency] >= cap:
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this agency already has {cap} face calls in progress: wait for one to "
                "finish, then retry", detail="FACE_CONCURRENCY", subject=retiree_id)
        self._running[agency] += 1
        try:
            yield
        finally:
            self._running[agency] -= 1
            if self._running[agency] <= 0:
                del self._running[agency]

    async def _caller(self, call: Call, context: grpc.aio.ServicerContext,
                      retiree_id: str) -> lockouts.Caller:
        """Whose failures these are: the retiree (keyed hash), the calling agency and, for
        a role that acts for the public (the app), the client address it names; the key
        of the second-factor lockouts (lifecert.api.lockouts), so that no agency can close
        face verification for a retiree to anyone else."""
        assert call.rules is not None
        try:
            address = lockouts.client_of(context.invocation_metadata(), call.role, call.rules)
        except lockouts.ClientAddressError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc), subject=retiree_id)
        return lockouts.caller(self.gate.subject_key, retiree_id, call.agency or "", address)

    async def _budget(self, call: Call, retiree_id: str,
                      who: lockouts.Caller) -> challenges.Failures:  # fmt: skip
        """Refuse when this caller's daily failures for the retiree, or the agency's
        per-minute failures, are spent."""
        window = timedelta(seconds=self.limits.face_alert_window_seconds)
        now = datetime.now(UTC)
        spent = await self.db.run(lambda c: challenges.failures(c, who, now, window))
        if spent.retiree_day >= self.limits.face_failures_per_retiree_day:
            by = "your agency" + (" from this client address" if who.client else "")
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{spent.retiree_day} failed face verifications of this retiree by {by} in "
                "the last 24 hours: face verification of this retiree is closed to you "
                "until tomorrow; certify at a counter with an identity document",
                detail="FACE_RETIREE_BUDGET", subject=retiree_id)
        if spent.agency_minute >= self.limits.face_failures_per_agency_minute:
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{spent.agency_minute} failed face verifications by this agency in the last "
                "minute: wait a minute, then retry", detail="FACE_AGENCY_BUDGET",
                subject=retiree_id)
        return spent

    async def _retiree(self, call: Call, retiree_id: str) -> authz.Retiree:
        problem = bounds.id_problem("retiree_id", retiree_id)
        if problem is not None:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, problem)
        found = await self.db.run(lambda c: db.directory(c, [retiree_id]))
        retiree = found.get(retiree_id)
        if retiree is None:
            await call.refuse(grpc.StatusCode.NOT_FOUND, "no retiree with this id is enrolled",
                              detail="UNKNOWN_RETIREE", subject=retiree_id)
        assert call.rules is not None
        try:
            call.rules.scope.check(call.role, call.agency, retiree)
        except authz.Refusal as exc:
            await call.refuse(grpc.StatusCode.PERMISSION_DENIED, str(exc), subject=retiree_id)
        return retiree

    def _record(self, call: Call, retiree_id: str, operation: str, decision: str,
                verification: Verification | None = None, event_id: str | None = None,
                frames: int | None = None, model: str | None = None,
                evidence: dict[str, Any] | None = None, client: str = "") -> Any:
        """The insert of one face decision (run it with ``self.db.run``)."""
        if verification is not None:
            evidence = dict(verification.liveness)
            evidence["reason"] = verification.reason
            evidence["frame_size"] = list(verification.frame_size)
        row = (
            datetime.now(UTC), call.agency, call.role,
            self.gate_subject(retiree_id), operation, decision,
            model or (verification.model if verification else None),
            verification.threshold if verification else None,
            verification.distance if verification else None,
            bool(verification.liveness.get("live")) if verification else None,
            Json(evidence, dumps=lambda v: json.dumps(v, default=str)) if evidence else None,
            frames, event_id, client,
        )

        def insert(conn: Any) -> None:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO api_face_decisions (at, agency, role, subject, operation, "
                    "decision, model, threshold, distance, live, evidence, frames, event_id, "
                    "client) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    row,
                )

        return insert

    def _screen_colours(self, call: Call, challenge_id: str, actions: int) -> list[str] | None:
        """The challenge's screen colours, one per frame (2 x actions + 1), or None when
        the caller's channel answers without screen light (a window camera supervised by
        staff, unless configured otherwise). Derived from the nonce: recomputed at
        Verify, nothing stored."""
        assert call.rules is not None
        if (call.rules.face_channel == "FACE_COUNTER"
                and not self.limits.face_screen_light_counter):
            return None
        return colours_for(challenge_id, 2 * actions + 1)

    def gate_subject(self, retiree_id: str) -> str:
        from lifecert.api.secondfactor import subject_ref

        return subject_ref(self.gate.subject_key, retiree_id)

    # ---------------------------------------------------------------- Enroll

    async def Enroll(
        self, request: pb.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnrollResponse:
        call = await self.gate.enter(context, authz.FACE_ENROLL)
        retiree_id = request.retiree_id
        if not request.photo or len(request.photo) > self.limits.max_image_bytes:
            await call.refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"photo must be 1 byte to {self.limits.max_image_bytes} bytes (JPEG or PNG)",
                subject=retiree_id,
            )
        await self._retiree(call, retiree_id)
        try:
            async with self._slot(call, retiree_id):
                enrollment = await self._engine_enroll(bytes(request.photo))
        except EnrollmentRefused as refused:
            await self._store_decision(call, retiree_id, "ENROLL", refused.decision.value,
                                       model=self.engine.model)
            call.done("REFUSED", refused.decision.value, subject=retiree_id)
            return pb.EnrollResponse(
                enrolled=False, refusal=refused.decision.value,
                reason=refused.reason, model=self.engine.model,
            )
        sealed = seal(enrollment.encoding, self.key, _associated(retiree_id))
        now = datetime.now(UTC)

        def store(conn: Any) -> None:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO api_face_references (retiree_id, sealed, model, enrolled_by, "
                    "enrolled_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (retiree_id) DO "
                    "UPDATE SET sealed = excluded.sealed, model = excluded.model, "
                    "enrolled_by = excluded.enrolled_by, enrolled_at = excluded.enrolled_at",
                    (retiree_id, sealed, enrollment.model, call.agency, now),
                )

        await self.db.run(store)
        await self._store_decision(call, retiree_id, "ENROLL", "ENROLLED", model=enrollment.model)
        call.done("OK", "ENROLLED", subject=retiree_id)
        return pb.EnrollResponse(enrolled=True, model=enrollment.model)

    async def _store_decision(self, call: Call, retiree_id: str, operation: str,
                              decision: str, **kwargs: Any) -> None:
        await self.db.run(self._record(call, retiree_id, operation, decision, **kwargs))

    # -------------------------------------------------------- BeginChallenge

    async def BeginChallenge(
        self, request: pb.BeginChallengeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Challenge:
        issued = self.clock()  # the person is in front of the camera now
        call = await self.gate.enter(context, authz.FACE_CHALLENGE)
        retiree_id = request.retiree_id
        await self._retiree(call, retiree_id)
        who = await self._caller(call, context, retiree_id)
        await self._budget(call, retiree_id, who)
        subject = who.subject
        now = datetime.now(UTC)
        since = now - timedelta(days=self.limits.face_sequence_memory_days)
        recent = await self.db.run(lambda c: challenges.answered(c, subject, since))
        actions = fresh_actions(self.limits.face_challenge_actions, secrets.SystemRandom(),
                                recent)
        challenge_id = challenges.new_challenge_id()
        deadline = now + timedelta(seconds=self.limits.face_challenge_seconds)
        await self.db.run(lambda c: challenges.issue(
            c, challenge_id, call.agency or "", subject, actions, issued, deadline))
        call.done("OK", "CHALLENGE", subject=retiree_id)
        colours = self._screen_colours(call, challenge_id, len(actions)) or []
        reply = pb.Challenge(challenge_id=challenge_id,
                             actions=actions,
                             screen_colours=[f"SCREEN_{c}" for c in colours],
                             screen_settle_ms=self.limits.face_screen_settle_ms if colours else 0)
        reply.deadline.CopyFrom(timestamp(deadline))
        return reply

    # ---------------------------------------------------------------- Verify

    async def Verify(
        self, request: pb.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyResponse:
        received = self.clock()  # the answer's arrival: a MATCH's recorded_at
        call = await self.gate.enter(context, authz.FACE_VERIFY)
        assert call.rules is not None and call.rules.face_channel is not None
        retiree_id = request.retiree_id
        frames = [bytes(f) for f in request.frames]
        if not frames or len(frames) > self.limits.max_frames:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              f"send 1 to {self.limits.max_frames} frames", subject=retiree_id)
        if any(not f or len(f) > self.limits.max_image_bytes for f in frames):
            await call.refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"each frame must be 1 byte to {self.limits.max_image_bytes} bytes",
                subject=retiree_id,
            )
        if request.attempt_id:  # the certification id of a MATCH: checked before the
            # challenge is consumed, so that a MATCH can always be recorded
            problem = bounds.id_problem("certification_id", request.attempt_id)
            if problem is not None:
                await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"attempt_id (the certification id a MATCH records): "
                                  f"{problem}", subject=retiree_id)
        if not request.challenge_id:
            await call.refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                "begin a challenge first: call BeginChallenge for this retiree and send "
                "frames that answer its actions, with its challenge_id",
                detail="NO_CHALLENGE", subject=retiree_id)
        if not challenges.well_formed(request.challenge_id):
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              "challenge_id must be the id BeginChallenge returned "
                              "(16-64 characters A-Z a-z 0-9 - _)", subject=retiree_id)
        for i, frame in enumerate(frames):  # from the headers: nothing is decoded yet
            try:
                check_pixels(frame, self.limits.max_frame_pixels)
            except BadImage as exc:
                await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, f"frame {i}: {exc}",
                                  detail="FRAME_REFUSED", subject=retiree_id)
        async with self._slot(call, retiree_id):
            return await self._verify(call, context, request, retiree_id, frames, received)

    async def _verify(self, call: Call, context: grpc.aio.ServicerContext,
                      request: pb.VerifyRequest, retiree_id: str,
                      frames: list[bytes], received: datetime) -> pb.VerifyResponse:  # fmt: skip
        assert call.rules is not None and call.rules.face_channel is not None
        channel = call.rules.face_channel
        await self._retiree(call, retiree_id)
        who = await self._caller(call, context, retiree_id)
        spent = await self._budget(call, retiree_id, who)
        certification_id = request.attempt_id or _attempt_id(call.agency or "",
                                                             request.challenge_id)
        event_id = event_id_for(call.agency, authz.CERTIFICATION, certification_id)
        digest = _certification_digest(retiree_id, channel)
        known = await self.db.run(lambda c: db.accepted(c, [event_id]))
        if event_id in known and known[event_id].content_digest != digest:
            await call.refuse(
                grpc.StatusCode.ALREADY_EXISTS,
                "this attempt_id already certified another retiree (or another channel): "
                "send a new attempt_id for each attempt", detail="ATTEMPT_ID_REUSED",
                subject=retiree_id)
        subject = who.subject
        now = datetime.now(UTC)
        try:
            consumed = await self.db.run(lambda c: challenges.consume(
                c, request.challenge_id, call.agency or "", subject, now, frames))
        except challenges.ChallengeRefused as refused:
            await self._store_decision(call, retiree_id, "VERIFY", challenges.CHALLENGE_REFUSED,
                                       frames=len(frames), model=self.engine.model,
                                       client=who.client)
            await call.refuse(grpc.StatusCode.FAILED_PRECONDITION, str(refused),
                              detail=refused.code, subject=retiree_id)
        rows = await self.db.run(lambda c: _reference(c, retiree_id))
        if rows is None:
            await call.refuse(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no face reference is enrolled for this retiree: certify at a counter, where "
                "staff can enroll the reference photo",
                detail="NO_REFERENCE", subject=retiree_id,
            )
        sealed, model = rows
        try:
            encoding = unseal(sealed, self.key, _associated(retiree_id))
        except SealError:
            log.error("a face reference does not open with the configured key")
            await call.refuse(grpc.StatusCode.FAILED_PRECONDITION,
                              "the face reference cannot be read: enroll the retiree again",
                              detail="SEAL_ERROR", subject=retiree_id)
        if model != self.engine.model:
            await call.refuse(grpc.StatusCode.FAILED_PRECONDITION,
                              "the face reference was made with another model: enroll again",
                              detail="MODEL_CHANGED", subject=retiree_id)
        repeated = len(frames) - len(set(frames))
        if consumed.replayed or repeated:
            reason = (
                f"{consumed.replayed} of the frames were sent before, byte for byte: a "
                "replayed answer; capture new frames for a new challenge"
                if consumed.replayed else
                f"{repeated} frames repeat another frame byte for byte: a still picture, "
                "not a camera capture"
            )
            await self._store_decision(
                call, retiree_id, "VERIFY", FaceDecision.NOT_LIVE.value, frames=len(frames),
                model=self.engine.model, client=who.client,
                evidence={"replayed_frames": consumed.replayed, "repeated_frames": repeated})
            call.done("OK", FaceDecision.NOT_LIVE.value, subject=retiree_id)
            return pb.VerifyResponse(decision=pb.NOT_LIVE, reason=reason,
                                     threshold=self.engine.threshold, model=self.engine.model)
        try:
            colours = self._screen_colours(call, request.challenge_id, len(consumed.actions))
            result = await self._engine_verify(encoding, frames, consumed.actions, colours)
        except ValueError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc), subject=retiree_id)
        reply = pb.VerifyResponse(
            decision=result.decision.value, reason=result.reason,
            distance=result.distance or 0.0, threshold=result.threshold, model=result.model,
            live=bool(result.liveness.get("live")),
        )
        if result.decision is not FaceDecision.MATCH:
            await self._store_decision(call, retiree_id, "VERIFY", result.decision.value,
                                       verification=result, frames=len(frames),
                                       client=who.client)
            call.done("OK", result.decision.value, subject=retiree_id)
            return reply
        recorded_at = await self._certify(call, retiree_id, certification_id, event_id,
                                          channel, consumed.issued_at, received)
        await self._store_decision(call, retiree_id, "VERIFY", "MATCH", verification=result,
                                   frames=len(frames), event_id=event_id, client=who.client)
        if spent.not_live_recent:
            await self._alert(call, retiree_id, certification_id, spent.not_live_recent)
        reply.certification_id = certification_id
        reply.event_id = event_id
        reply.recorded_at.CopyFrom(timestamp(recorded_at))
        call.done("OK", "MATCH", subject=retiree_id, accepted=1)
        return reply

    async def _alert(self, call: Call, retiree_id: str, certification_id: str,
                     not_live: int) -> None:  # fmt: skip
        """FraudSuspected (FACE_MATCH_AFTER_NOT_LIVE) on lifecert.alerts: the retiree id and
        the certification id, nothing else about the person."""
        alert = {
            "type": "FraudSuspected",
            "event_id": uuid5(f"lifecert-api|FraudSuspected|{retiree_id}|{certification_id}"),
            "recorded_at": datetime.now(UTC), "source_agency": "lifecert-api",
            "retiree_id": retiree_id, "certification_id": certification_id,
            "reason": "FACE_MATCH_AFTER_NOT_LIVE",
        }
        [written] = await self.publisher.publish([alert])
        if not isinstance(written, Written):  # the certification stands; say so loudly
            log.error("the FACE_MATCH_AFTER_NOT_LIVE alert of certification %r could not be "
                      "published: %s", certification_id, written.reason)
        else:
            log.warning("face MATCH after %d NOT_LIVE results: alert %s published",
                        not_live, alert["event_id"])

    async def _certify(self, call: Call, retiree_id: str, certification_id: str,
                       event_id: str, channel: str, performed_at: datetime,
                       now: datetime) -> datetime:
        """Publish the certification of a MATCH (once per certification id): performed when
        its challenge was issued (the person in front of the camera), recorded when the
        answer arrived (``now``: the engine's second or so is not the person's)."""
        known = await self.db.run(lambda c: db.accepted(c, [event_id]))
        if event_id in known:
            return known[event_id].recorded_at
        event = parse_typed({
            "type": authz.CERTIFICATION, "event_id": event_id,
            "recorded_at": isoformat_local(now), "source_agency": call.agency,
            "certification_id": certification_id, "retiree_id": retiree_id,
            "channel": channel, "agency_id": call.agency,
            "performed_at": isoformat_local(min(performed_at, now)),
        })
        [written] = await self.publisher.publish([event])
        if not isinstance(written, Written):
            await call.refuse(grpc.StatusCode.UNAVAILABLE,
                              "the certification could not be recorded: verify again",
                              detail="NOT_RECORDED", subject=retiree_id)
        assert isinstance(written, Written)
        digest = _certification_digest(retiree_id, channel)
        row = db.NewAccepted(event_id, call.agency, authz.CERTIFICATION, certification_id,
                             digest, written.topic, written.partition, written.offset, now)
        await self.db.run(lambda c: db.record_accepted(c, [row]))
        return now


def _attempt_id(agency: str, challenge_id: str) -> str:
    """The certification id of a MATCH sent without an attempt id: 45 characters, within
    bounds.CERTIFICATION_ID whatever the agency id's length (the agency is hashed in)."""
    h = hashlib.sha256(b"face-challenge\0" + agency.encode() + b"\0" + challenge_id.encode())
    return f"FACE-{h.hexdigest()[:40]}"


def _certification_digest(retiree_id: str, channel: str) -> str:
    return hashlib.sha256(f"face|{retiree_id}|{channel}".encode()).hexdigest()


def _reference(conn: Any, retiree_id: str) -> tuple[bytes, str] | None:
    with conn.cursor() as cur:
        cur.execute("SELECT sealed, model FROM api_face_references WHERE retiree_id = %s",
                    (retiree_id,))
        row = cur.fetchone()
    return (bytes(row[0]), row[1]) if row else None
