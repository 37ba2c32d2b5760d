"""The partner API server (``lifecert api serve``; also ``python -m lifecert.api.server``):
an asyncio gRPC server over mutual TLS with PartnerExchange, StatusQuery,
FaceVerification (when the face engine is installed), gRPC health checking and server
reflection.

On start it applies the database migrations, checks that the topics exist, starts the
retiree-directory feed and listens; health turns SERVING once the directory has read the
events topic to its end. SIGTERM or SIGINT: health NOT_SERVING, calls in flight get a
grace period, the audit rows are written, then it exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import psycopg2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from lifecert.api import challenges, lockouts, protos
from lifecert.api.consular import ConsularReview
from lifecert.api.crlnumbers import PostgresCrlNumbers
from lifecert.api.db import STATUS_PREPARE, AsyncReader, AuditWriter, Database
from lifecert.api.directory import DirectoryFeed
from lifecert.api.escape import EscapingFormatter
from lifecert.api.gate import Gate, MalformedRequests
from lifecert.api.options import add_serve_arguments
from lifecert.api.partner import PartnerExchange
from lifecert.api.publisher import Publisher
from lifecert.api.ratelimit import RateLimiter
from lifecert.api.server_config import ApiConfig, Limits, weaker_liveness
from lifecert.api.status import StatusQuery
from lifecert.keyfiles import MissingKeyError
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.campaign_clock import clock_of
from lifecert.pipeline.topics import EVENTS, STATUS, TopicLayout, layout
from lifecert.pki import DenyList, PkiError

log = logging.getLogger("lifecert.api")

T = TypeVar("T", int, float)

EXIT_FAILED = 1


class ServerError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    services: list[str]
    directory: DirectoryFeed
    audit: AuditWriter
    database: Database
    publisher: Publisher
    reader: AsyncReader
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    face: Any | None = None  # the FaceService (its engine's worker processes)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self.tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        if self.face is not None:
            await loop.run_in_executor(None, self.face.close)
        await loop.run_in_executor(None, self.directory.stop)
        await loop.run_in_executor(None, self.audit.close)
        await loop.run_in_executor(None, self.publisher.close)
        self.database.close()
        self.reader.close()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ServerError(
            f"cannot read the {what} {path}: {exc.strerror}; create the PKI with "
            "`lifecert pki init`"
        ) from None


def credentials(config: ApiConfig) -> grpc.ServerCredentials:
    """Mutual TLS: the server's certificate, and client certificates required and
    verified against the lifecert CA. The server reads only its own key, its certificate,
    the CA certificate and the CRL; it refuses to start while the CA's private key lies
    in its folder (where ``pki init`` put it before the CA had a folder of its own)."""
    if config.pki.misplaced_ca_key.exists():
        raise ServerError(
            f"the CA's private key {config.pki.misplaced_ca_key} is in the server's PKI "
            f"folder; the server must not be able to issue certificates. Run `lifecert pki "
            f"init` once (it moves the key to {config.pki.ca_dir}) and keep that folder "
            "offline (docs/pki.md)"
        )
    return grpc.ssl_server_credentials(
        [(_read(config.pki.server_key, "server key"),
          _read(config.pki.server_cert, "server certificate"))],
        root_certificates=_read(config.pki.ca_cert, "CA certificate"),
        require_client_auth=True,
    )


# Refused TLS handshakes (an expired client certificate, one of another CA, none) never
# reach Python: grpcio's server credentials have no handshake callback (the certificate
# fetcher of dynamic_ssl_server_credentials takes no argument and runs before the
# client's certificate is checked; interceptors and the gate run only after a handshake
# succeeded). gRPC's core logs each refusal itself, on the server's stderr, e.g.
#   ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: ...
#   CERTIFICATE_VERIFY_FAILED: certificate has expired
# ("unable to get local issuer certificate": another CA; "peer did not return a
# certificate": none), without the peer's address or the certificate's subject; the
# levels GRPC_VERBOSITY=ERROR or NONE hide those lines (docs/partners.md, section 8).
TLS_REFUSALS_HIDDEN = ("ERROR", "NONE")


def tls_refusal_logging(environ: Mapping[str, str]) -> str | None:
    """A warning to log when the environment hides gRPC's log of refused handshakes."""
    level = environ.get("GRPC_VERBOSITY", "").strip().upper()
    if level in TLS_REFUSALS_HIDDEN:
        return (f"GRPC_VERBOSITY={level} hides gRPC's log of refused TLS handshakes "
                "(expired or foreign client certificates): a partner's 'Socket closed' "
                "will have no server-side reason; leave it unset or set WARNING")
    return None


def deny_list(config: ApiConfig) -> DenyList:
    """The CRL checked on every call (re-read when its file changes)."""
    try:
        deny = DenyList(config.pki.crl, config.pki.ca_cert, PostgresCrlNumbers(config.dsn))
        deny.load()
    except PkiError as exc:
        raise ServerError(f"{exc}; install the CA's current CRL (docs/pki.md)") from None
    except psycopg2.Error as exc:
        raise ServerError(f"PostgreSQL (the CRL numbers in force): {str(exc).strip()}") from None
    except (OSError, ValueError) as exc:
        raise ServerError(f"cannot read the CA certificate {config.pki.ca_cert}: {exc}; "
                          "create the PKI with `lifecert pki init`") from None
    return deny


def _prepare_database(dsn: str) -> None:
    import psycopg2

    from lifecert.api.migrate import migrate
    from lifecert.migrations import MigrationError
    from projections.connection import connect

    try:
        conn = connect(dsn)
    except psycopg2.Error as exc:
        raise ServerError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    try:
        migrate(conn)
    except (MigrationError, psycopg2.Error) as exc:
        raise ServerError(f"PostgreSQL migrations: {str(exc).strip()}") from None
    finally:
        conn.close()


def _partitions(bootstrap: str, topics: TopicLayout) -> dict[str, list[int]]:
    """The partitions of every topic the server reads or writes (they must exist)."""
    roles = [EVENTS, STATUS, *topics.output_roles]
    try:
        client = broker_clients.consumer(bootstrap)
        try:
            return {topics[r].name: broker_clients.partitions_of(client, topics[r].name)
                    for r in roles}
        finally:
            client.close()
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        raise ServerError(str(exc)) from None


def _face_servicer(config: ApiConfig, gate: Gate, database: Database,
                   publisher: Publisher) -> Any | None:
    if not config.face:
        return None
    try:
        from lifecert.api.face import FaceService

        return FaceService(gate, database, publisher, config, threshold=config.face_threshold,
                           clock=clock_of(config.clock_file))
    except (ImportError, RuntimeError) as exc:  # no face engine, no dlib, no key
        log.warning("FaceVerification is not served: %s", exc)
        return None


def _warn_of_weakened_settings(config: ApiConfig) -> None:
    """Log every setting that weakens a check (refusing a test-only one without its switch)."""
    try:
        weaker = weaker_liveness(config, os.environ)
    except ValueError as exc:
        raise ServerError(str(exc)) from None
    for setting in weaker:
        log.warning("face liveness weaker than its default: %s", setting)
    hidden = tls_refusal_logging(os.environ)
    if hidden is not None:
        log.warning("%s", hidden)


async def start(config: ApiConfig) -> Running:
    """Start the server; returns once it listens (health may still be NOT_SERVING)."""
    loop = asyncio.get_running_loop()
    _warn_of_weakened_settings(config)
    topics = layout(config.topic_prefix)
    await loop.run_in_executor(None, _prepare_database, config.dsn)
    partitions = await loop.run_in_executor(None, _partitions, config.bootstrap, topics)
    creds = credentials(config)
    deny = deny_list(config)
    limits = config.limits
    # The status query's connections, its statement prepared on each, opened now.
    reader = AsyncReader(config.dsn, size=config.status_pool, prepare=[STATUS_PREPARE])
    try:
        await reader.open()
    except psycopg2.Error as exc:
        reader.close()
        raise ServerError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    database = Database(config.dsn, config.db_pool)
    audit = AuditWriter(config.dsn)
    try:
        publisher = await loop.run_in_executor(
            None, lambda: Publisher(config.bootstrap, topics, timeout=config.kafka_timeout)
        )
    except broker_errors.KafkaUnavailable as exc:
        audit.close()
        database.close()
        reader.close()
        raise ServerError(str(exc)) from None
    directory = DirectoryFeed(config.dsn, config.bootstrap, topics)
    directory.start()
    gate = Gate(audit, RateLimiter(limits.rate_scale), config.second_factor_key, deny)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limits.max_receive_bytes),
            ("grpc.max_send_message_length", limits.max_send_bytes),
            ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ],
        interceptors=[MalformedRequests(gate)],
    )
    partner = PartnerExchange(gate, database, publisher, topics, config.bootstrap, partitions,
                              max_batch_items=limits.max_batch_items,
                              secret=config.second_factor_key,
                              clock=clock_of(config.clock_file))
    protos.partner_exchange_pb2_grpc.add_PartnerExchangeServicer_to_server(partner, server)
    policy = lockouts.Policy.of(limits)
    alerts = lockouts.PendingAlerts(database, publisher.publish)
    status = StatusQuery(gate, reader, config.second_factor_key, policy, alerts)
    protos.status_query_pb2_grpc.add_StatusQueryServicer_to_server(status, server)
    services = list(protos.SERVICE_NAMES[:2])
    face = _face_servicer(config, gate, database, publisher)
    if face is not None:
        log.info("FaceVerification served (model %s, threshold %.2f, %s)", face.engine.model,
                 face.engine.threshold, face.workers)
        protos.face_verification_pb2_grpc.add_FaceVerificationServicer_to_server(face, server)
        services.append(protos.SERVICE_NAMES[2])
    review = ConsularReview(gate, database, publisher)
    protos.consular_review_pb2_grpc.add_ConsularReviewServicer_to_server(review, server)
    services.append(protos.SERVICE_NAMES[3])
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ["", *services]:
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME],
        server,
    )
    try:
        port = server.add_secure_port(config.listen, creds)
    except RuntimeError as exc:
        port = 0
        log.error("cannot listen on %s: %s", config.listen, exc)
    if port == 0:
        if face is not None:
            face.close()
        directory.stop()
        audit.close()
        publisher.close()
        database.close()
        reader.close()
        raise ServerError(f"cannot listen on {config.listen} (address in use?)")
    await server.start()
    running = Running(server, port, health, services, directory, audit, database, publisher,
                      reader, face=face)
    running.tasks.append(asyncio.create_task(_serving_when_ready(running)))
    running.tasks.append(asyncio.create_task(_purge_old_rows(
        database, "second-factor lockouts", lambda conn: lockouts.purge(conn, policy))))
    memory = timedelta(days=limits.face_sequence_memory_days)
    running.tasks.append(asyncio.create_task(_purge_old_rows(
        database, "face challenges and frame digests",
        lambda conn: challenges.purge(conn, datetime.now(UTC), memory))))
    running.tasks.append(asyncio.create_task(alerts.run()))
    return running


async def _purge_old_rows(database: Database, what: str, purge: Callable[[Any], int],
                          every: float = 300.0) -> None:
    """Delete the rows of ``what`` no longer needed (lockouts and budgets no longer in
    force; face challenges and frame digests: challenges.purge), now and then (every
    server does; it is idempotent)."""
    while True:
        await asyncio.sleep(every)
        try:
            await database.run(purge)
        except Exception as exc:  # the database's trouble; the next round tries again
            log.warning("purging old %s failed: %s", what, type(exc).__name__)


async def _serving_when_ready(running: Running) -> None:
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, running.directory.caught_up.wait, 0.5):
        pass
    if running.face is not None and running.face.pool is not None:
        # each face engine process has loaded its models
        await loop.run_in_executor(None, running.face.pool.ready)
    settle_garbage_collector()
    for name in ["", *running.services]:
        await running.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving")


def settle_garbage_collector() -> None:
    """Move everything start-up left (modules, gRPC, protobuf, Kafka and PostgreSQL
    clients, the directory's first catch-up: some 65,000 objects) out of the collector's
    reach. Otherwise the first full collections under load walk all of them and pause
    every thread of the server for 20-45 ms each (three within the benchmark's first
    seconds at 500 requests/s); after this, a full collection walks only what was
    allocated since."""
    gc.collect()
    gc.freeze()


async def serve(config: ApiConfig, ready_file: Path | None = None) -> int:
    try:
        running = await start(config)
    except ServerError as exc:
        print(f"lifecert api: {exc}", file=sys.stderr)
        return EXIT_FAILED
    host = config.listen.rpartition(":")[0] or "127.0.0.1"
    print(f"lifecert api: listening on {host}:{running.port} (mutual TLS; CA "
          f"{config.pki.ca_cert})", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    if ready_file is not None:
        await _write_ready(running, ready_file)
    await stop.wait()
    print("lifecert api: stopping", file=sys.stderr, flush=True)
    await running.stop()
    return 0


async def _write_ready(running: Running, path: Path) -> None:
    """Write {"port", "pid"} to ``path`` once the server is SERVING (tests wait on it)."""
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, running.directory.caught_up.wait, 0.5):
        pass
    if running.face is not None and running.face.pool is not None:
        # each face engine process has loaded its models
        await loop.run_in_executor(None, running.face.pool.ready)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"port": running.port, "pid": os.getpid()}))
    tmp.replace(path)


# ------------------------------------------------------------------------ command line


def setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("lifecert.api")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        # Messages quote client text (refusal details): escaped, one line each.
        handler.setFormatter(EscapingFormatter("lifecert api: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _positive(value: T | None, option: str, default: T) -> T:
    if value is None:
        return default
    if value <= 0:
        raise ValueError(f"{option} must be above 0, not {value}")
    return value


def config_from_args(args: argparse.Namespace) -> ApiConfig:
    if args.face_workers is not None and args.face_workers < 0:
        raise ValueError(f"--face-workers must be 0 (the engine in the server's process) or "
                         f"more, not {args.face_workers}")
    defaults = Limits()
    face = {  # Limits field: (option, value)
        "face_concurrent_per_agency": ("--face-concurrency", args.face_concurrency),
        "face_failures_per_retiree_day": ("--face-failures-per-retiree-day",
                                          args.face_failures_per_retiree_day),
        "face_failures_per_agency_minute": ("--face-failures-per-agency-minute",
                                            args.face_failures_per_agency_minute),
        "face_challenge_seconds": ("--face-challenge-seconds", args.face_challenge_seconds),
        "max_frame_pixels": ("--max-frame-pixels", args.max_frame_pixels),
    }
    limits = replace(
        defaults, rate_scale=args.rate_scale, max_receive_bytes=args.max_message_bytes,
        failure_budget=_positive(args.failure_budget, "--failure-budget",
                                 defaults.failure_budget),
        public_failure_budget=_positive(args.public_failure_budget, "--public-failure-budget",
                                        defaults.public_failure_budget),
        failure_window_seconds=_positive(args.failure_window, "--failure-window",
                                         defaults.failure_window_seconds),
        face_screen_light_counter=args.face_screen_light_counter,
        **{field: _positive(value, option, getattr(defaults, field))
           for field, (option, value) in face.items()},
    )
    config = ApiConfig.resolve(
        listen=args.listen, pki_dir=args.pki_dir, dsn=args.dsn, bootstrap=args.bootstrap,
        topic_prefix=args.topic_prefix, limits=limits, face=not args.no_face,
        face_threshold=args.face_threshold, face_min_parallax=args.face_min_parallax,
    )
    if args.face_workers is not None:
        config = replace(config, face_workers=args.face_workers)
    if args.clock_file is not None:
        clock_of(args.clock_file)  # a bad file refused here, with its name
        config = replace(config, clock_file=args.clock_file)
    return config


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    try:
        config = config_from_args(args)
    except (ValueError, MissingKeyError) as exc:
        print(f"lifecert api: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return asyncio.run(serve(config, args.ready_file))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecert.api.server",
                                     description=__doc__.split("\n\n")[0])
    add_serve_arguments(parser)
    from lifecert.pipeline.credentials import acting_as

    with acting_as("api"):
        return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
