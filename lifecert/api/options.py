"""Command-line options of the API server, kept free of heavy imports
(gRPC, Kafka, PostgreSQL) so that `lifecert --help` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="host:port (default: $LIFECERT_API_LISTEN, else "
                        "127.0.0.1:50051; port 0 picks a free one)")
    parser.add_argument("--pki-dir", type=Path,
                        help="the server's key and certificate, the CA certificate and the "
                        "CRL; never the CA key (default: $LIFECERT_PKI_DIR, else data/pki)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, "
                        "else the local stack)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: "
                        "$LIFECERT_KAFKA_BOOTSTRAP, else the local stack)")
    parser.add_argument("--topic-prefix", help="prefix of every topic name (default: "
                        "$LIFECERT_TOPIC_PREFIX)")
    parser.add_argument("--rate-scale", type=float, default=1.0,
                        help="multiply every role's rate limit (default 1)")
    parser.add_argument("--max-message-bytes", type=int, default=4 * 1024 * 1024,
                        help="largest request accepted (default 4 MiB)")
    parser.add_argument("--failure-budget", type=int,
                        help="wrong second factors an agency (behind the portal: one client "
                        "address) may give per window before its status queries are "
                        "refused (default 100); a partner's spent budget raises an alert")
    parser.add_argument("--public-failure-budget", type=int,
                        help="wrong second factors of all the client addresses of a role "
                        "that acts for the public (the portal) per window that raise an "
                        "alert; it refuses nothing (default 2000)")
    parser.add_argument("--failure-window", type=float,
                        help="the window of the failure budget, in seconds (default 3600)")
    parser.add_argument("--no-face", action="store_true",
                        help="do not serve FaceVerification")
    parser.add_argument("--face-threshold", type=float,
                        help="largest face-encoding distance that matches (default: the "
                        "face engine's, chosen in docs/face.md)")
    # Face limits: unset = the defaults of lifecert.api.server_config.Limits.
    parser.add_argument("--face-workers", type=int,
                        help="processes that run the face engine's checks, each on a core "
                        "of its own (dlib holds the GIL: threads would share one core); 0: "
                        "in the server's own process, two threads (default: the CPU count)")
    parser.add_argument("--face-concurrency", type=int,
                        help="face calls one agency may run at once (default 2)")
    parser.add_argument("--face-failures-per-retiree-day", type=int,
                        help="failed face verifications of one retiree in 24 hours before "
                        "face verification closes for them (default 5)")
    parser.add_argument("--face-failures-per-agency-minute", type=int,
                        help="failed face verifications by one agency in a minute before it "
                        "must wait (default 30)")
    parser.add_argument("--face-challenge-seconds", type=float,
                        help="how long a face challenge may be answered (default 30)")
    parser.add_argument("--face-min-parallax", type=float,
                        help="head-turn parallax a challenge answer must show (default: the "
                        "face engine's, chosen in docs/face.md). Lower values let 2-D warps of a "
                        "photo pass: refused unless $LIFECERT_FACE_TEST_ONLY=1 (tests on "
                        "synthetic frames only)")
    parser.add_argument("--face-screen-light-counter", action="store_true",
                        help="ask the window camera too to light each frame with the "
                        "challenge's screen colours (default: only the app; the counter is "
                        "supervised by staff)")
    parser.add_argument("--max-frame-pixels", type=int,
                        help="largest frame, in pixels, read from its header before "
                        "decoding (default 12000000)")
    parser.add_argument("--clock-file", type=Path,
                        help="a campaign clock (lifecert/pipeline/campaign_clock.py): the "
                        "time stamped on submissions and the future-time tolerance follow it "
                        "instead of the wall clock (sandboxes, drills; default: the wall clock)")
    parser.add_argument("--ready-file", type=Path,
                        help="write {\"port\", \"pid\"} as JSON here once serving")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every call (agency, method, outcome; no personal data)")
