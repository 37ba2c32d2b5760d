"""Configuration of the API server: where it listens, its certificates, the broker, the
database, and its limits. Built from ``lifecert api serve`` flags, the environment and
the local stack's defaults, like the rest of lifecert."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lifecert import keyfiles
from lifecert.pki import PkiPaths

LISTEN_ENV = "LIFECERT_API_LISTEN"
SECOND_FACTOR_KEY_ENV = "LIFECERT_SECOND_FACTOR_KEY"
SECOND_FACTOR_KEY_FILE = "second-factor.key"
# Test-only: lets ``--face-min-parallax`` go below the engine's default, which lets 2-D
# warps of a photo pass liveness. Set only for tests that need a MATCH on synthetic frames.
FACE_TEST_ONLY_ENV = "LIFECERT_FACE_TEST_ONLY"
DEFAULT_LISTEN = "127.0.0.1:50051"


@dataclass(frozen=True)
class Limits:
    # gRPC message sizes (bytes): a batch of 1000 items is ~150 KiB; five camera frames
    # of 640x480 JPEG are ~0.5 MiB.
    max_receive_bytes: int = 4 * 1024 * 1024
    max_send_bytes: int = 4 * 1024 * 1024
    max_batch_items: int = 1000
    max_frames: int = 10
    max_image_bytes: int = 2 * 1024 * 1024
    # Wrong second factors for one retiree id by one caller (agency, and client address
    # behind the portal) before that caller is locked out of that id for a while.
    second_factor_attempts: int = 5
    second_factor_lock_seconds: float = 900.0
    # Each agency's budget of wrong second factors per window (whatever the retiree ids):
    # once spent, its status queries are refused for a window and one SecurityAlert goes
    # to lifecert.alerts. An honest counter or partner mistypes a few a day; guessing
    # needs thousands (4 characters: 11,000 values). Roles that act for the public behind
    # them (the portal) get the larger budget: many people mistype through one agency.
    failure_budget: int = 100
    public_failure_budget: int = 2000
    failure_window_seconds: float = 3600.0
    # Multiplies every role's token-bucket rate and burst (tests and benchmarks).
    rate_scale: float = 1.0
    max_concurrent_streams: int = 256  # per connection (HTTP/2)
    # Face verification (docs/face.md, Challenge-response). A frame's header may declare
    # at most this many pixels (checked before decoding).
    max_frame_pixels: int = 12_000_000
    face_challenge_actions: int = 3
    face_challenge_seconds: float = 30.0
    # A sequence of actions answered for a retiree is not asked of them again for this
    # long (while another remains), so that a recorded answer cannot be replayed whole.
    face_sequence_memory_days: int = 400
    # Failed face attempts (any decision but MATCH, and refused challenges), counted in
    # api_face_decisions: per retiree in the last 24 hours, per agency in the last minute.
    face_failures_per_retiree_day: int = 5
    face_failures_per_agency_minute: int = 30
    # Face calls that run the engine (Verify, Enroll) at once for one agency, in one
    # API process.
    face_concurrent_per_agency: int = 2
    # A MATCH after a NOT_LIVE for the same retiree within this many seconds raises a
    # FraudSuspected (FACE_MATCH_AFTER_NOT_LIVE) on lifecert.alerts.
    face_alert_window_seconds: float = 7 * 24 * 3600.0
    # Screen light (docs/face.md): the app always lights each frame with a colour of the
    # challenge. A window camera that has no screen facing the person is answered without
    # colours: the counter is supervised by staff, who see who stands at the window (a
    # replayed recording would have to be held up in front of them). True when the
    # window camera can show the colours.
    face_screen_light_counter: bool = False
    face_screen_settle_ms: int = 150


@dataclass(frozen=True)
class ApiConfig:
    listen: str
    pki: PkiPaths
    dsn: str
    bootstrap: str
    topic_prefix: str
    second_factor_key: bytes
    limits: Limits = field(default_factory=Limits)
    db_pool: int = 4
    # Connections of the status query (asynchronous, on the event loop): enough that a
    # query whose PostgreSQL backend waits for a CPU does not hold up the next ones.
    status_pool: int = 8
    kafka_timeout: float = 30.0
    # Without the face engine (lifecert/face) the FaceVerification service is not served.
    face: bool = True
    face_threshold: float | None = None  # None: the face engine's default
    # The head-turn parallax a challenge answer must show (None: the engine's default,
    # chosen in docs/face.md). Lowering it lets 2-D warps of a photo through: refused
    # unless $LIFECERT_FACE_TEST_ONLY=1 (tests on synthetic frames; see weaker_liveness).
    face_min_parallax: float | None = None
    # Processes running the face engine's checks (lifecert.face.pool); None: the CPU
    # count; 0: in the server's process (two threads, one core: dlib holds the GIL).
    face_workers: int | None = None
    # A campaign clock file (lifecert.pipeline.campaign_clock); None: the wall clock.
    clock_file: Path | None = None

    @classmethod
    def resolve(
        cls,
        *,
        listen: str | None = None,
        pki_dir: Path | None = None,
        dsn: str | None = None,
        bootstrap: str | None = None,
        topic_prefix: str | None = None,
        limits: Limits | None = None,
        face: bool = True,
        face_threshold: float | None = None,
        face_min_parallax: float | None = None,
    ) -> ApiConfig:
        from lifecert.endpoints import kafka_bootstrap, postgres_dsn

        pki = PkiPaths.default(pki_dir)
        return cls(
            listen=listen or os.environ.get(LISTEN_ENV) or DEFAULT_LISTEN,
            pki=pki,
            dsn=postgres_dsn(dsn, "api"),
            bootstrap=kafka_bootstrap(bootstrap),
            topic_prefix=(
                topic_prefix if topic_prefix is not None
                else os.environ.get("LIFECERT_TOPIC_PREFIX", "")
            ),
            second_factor_key=second_factor_key(pki.root.parent / "api"),
            limits=limits or Limits(),
            face=face,
            face_threshold=face_threshold,
            face_min_parallax=face_min_parallax,
        )


def weaker_liveness(config: ApiConfig, environ: Mapping[str, str]) -> list[str]:
    """The face settings of ``config`` weaker than their defaults, one sentence each (the
    server logs each as a WARNING at start). Raises ValueError for a parallax below the
    engine's default without ``$LIFECERT_FACE_TEST_ONLY=1``, and for a negative one."""
    if not config.face:
        return []
    try:
        from lifecert.face.engine import DEFAULT_THRESHOLD
        from lifecert.face.liveness import ChallengePolicy
    except ImportError:  # no face engine: FaceVerification is not served
        return []
    weaker: list[str] = []
    parallax, default_parallax = config.face_min_parallax, ChallengePolicy().min_parallax
    if parallax is not None and parallax < default_parallax:
        if parallax < 0 or environ.get(FACE_TEST_ONLY_ENV) != "1":
            raise ValueError(
                f"--face-min-parallax {parallax} is below the face engine's "
                f"{default_parallax}: it lets a head turn warped from one photo pass "
                "liveness. Leave it unset; only tests on synthetic frames may lower it (to "
                f"0 at least), with {FACE_TEST_ONLY_ENV}=1")
        weaker.append(f"--face-min-parallax {parallax} (default {default_parallax}): a head "
                      f"turn warped from a photo may pass liveness ({FACE_TEST_ONLY_ENV}=1; "
                      "never in production)")
    if config.face_threshold is not None and config.face_threshold > DEFAULT_THRESHOLD:
        weaker.append(f"--face-threshold {config.face_threshold} (default "
                      f"{DEFAULT_THRESHOLD}): more distant faces match")
    defaults, limits = Limits(), config.limits
    for name, option in (
        ("face_challenge_seconds", "--face-challenge-seconds"),
        ("face_failures_per_retiree_day", "--face-failures-per-retiree-day"),
        ("face_failures_per_agency_minute", "--face-failures-per-agency-minute"),
    ):
        if getattr(limits, name) > getattr(defaults, name):
            weaker.append(f"{option} {getattr(limits, name)} (default "
                          f"{getattr(defaults, name)})")
    return weaker


def existing_second_factor_key(pki_dir: Path | None = None) -> bytes | None:
    """The API's second-factor key as the server resolves it, without making one (None
    when there is none): what ``lifecert erase`` needs to find a retiree's rows keyed by
    ``subject``."""
    folder = second_factor_dir(pki_dir)
    if not os.environ.get(SECOND_FACTOR_KEY_ENV) and not (
        folder / SECOND_FACTOR_KEY_FILE
    ).exists():
        return None
    return second_factor_key(folder)


def second_factor_key(folder: Path) -> bytes:
    """The secret key of the second-factor hashes: ``$LIFECERT_SECOND_FACTOR_KEY`` (hex,
    at least 32 bytes), else ``FOLDER/second-factor.key``; refused when neither is there
    (made only by :func:`create_second_factor_key`: a key made silently by a process run
    from another folder would hash factors no other process can check). Without it the
    stored hashes of 4 characters could be searched exhaustively; keep it out of the
    database and its backups."""
    text = os.environ.get(SECOND_FACTOR_KEY_ENV)
    if text:
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            raise ValueError(f"{SECOND_FACTOR_KEY_ENV} must be hex") from None
        if len(key) < 32:
            raise ValueError(f"{SECOND_FACTOR_KEY_ENV} must hold at least 32 bytes (64 hex)")
        return key
    path = folder / SECOND_FACTOR_KEY_FILE
    if not path.exists():
        raise keyfiles.missing("second-factor key", SECOND_FACTOR_KEY_ENV, path)
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path} must hold the key in hex") from None


def create_second_factor_key(folder: Path) -> Path | None:
    """Make ``FOLDER/second-factor.key`` unless it exists (or the key is given by
    ``$LIFECERT_SECOND_FACTOR_KEY``); the path made, else None."""
    if os.environ.get(SECOND_FACTOR_KEY_ENV):
        return None
    path = folder / SECOND_FACTOR_KEY_FILE
    return path if keyfiles.create(path, secrets.token_hex(32)) else None


def second_factor_dir(pki_dir: Path | None = None) -> Path:
    """The folder of the second-factor key: ``api`` beside the PKI folder."""
    return PkiPaths.default(pki_dir).root.parent / "api"
