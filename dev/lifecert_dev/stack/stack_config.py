"""Configuration of the local stack (one Kafka broker, one PostgreSQL cluster) and the small
helpers the two services share.

Everything is read once into a frozen :class:`StackConfig`; :meth:`StackConfig.from_env`
applies the ``LIFECERT_*`` environment overrides listed in :data:`ENV_VARS`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lifecert.endpoints import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_PG_PORT,
    LOOPBACK,
    MAX_KAFKA_BROKERS,
    PG_DATABASE,
    PG_SUPERUSER,
    EndpointError,
    LocalStack,
    int_env,
)

# The Apache Kafka release the project runs, locally (jars from Maven Central) and in
# docker/compose.yaml (apache/kafka image): keep the two equal.
KAFKA_VERSION = "4.1.2"
SCALA_BINARY_VERSION = "2.13"
# kafka_2.13 4.1.2 brings log4j-api/log4j-core 2.25.3 and slf4j-api 1.7.36 but no slf4j
# binding; log4j-slf4j-impl (the slf4j 1.x -> log4j2 bridge) of the same log4j release
# routes the broker's logging into the file appender we configure.
LOG4J_VERSION = "2.25.3"

# name -> what it overrides (documentation for `lifecert stack --help` and the README)
ENV_VARS: dict[str, str] = {
    "LIFECERT_DATA_DIR": "stack data folder (default <repo or cwd>/data/stack; when the "
    "PostgreSQL OS user cannot reach the default one, PostgreSQL's part goes to "
    "/var/tmp/lifecert-<hash>/postgres)",
    "LIFECERT_CACHE_DIR": "download cache: Kafka jars, Maven repository "
    "(default $XDG_CACHE_HOME/lifecert or ~/.cache/lifecert)",
    "LIFECERT_KAFKA_PORT": "Kafka client (SASL/SCRAM) port (default 19092)",
    "LIFECERT_KAFKA_CONTROLLER_PORT": "KRaft controller port (default Kafka port + 1)",
    "LIFECERT_KAFKA_BROKERS": "brokers of the local Kafka cluster, 1 to 5 (default: as "
    "`lifecert stack up --brokers N` formatted it, else 1); node i listens on the Kafka "
    "and controller ports + 2 (i - 1)",
    "LIFECERT_KAFKA_VERSION": f"Apache Kafka release (default {KAFKA_VERSION})",
    "LIFECERT_KAFKA_HEAP": "broker JVM max heap, e.g. 512m, 1g (default 1g)",
    "LIFECERT_KAFKA_PARTITIONS": "num.partitions for new topics (default 6)",
    "LIFECERT_PG_PORT": "PostgreSQL port (default 15432)",
    "LIFECERT_PG_OS_USER": "non-root OS user that runs PostgreSQL when lifecert runs as "
    "root (default postgres)",
    "LIFECERT_PG_BINDIR": "folder holding initdb/pg_ctl (default: newest "
    "/usr/lib/postgresql/*/bin, else initdb on PATH)",
    "LIFECERT_STACK_TIMEOUT": "seconds to wait for a service to start (default 120)",
}


class StackError(RuntimeError):
    """The stack could not be brought up, down or inspected; the message says why and
    what to do."""


class MissingPrerequisite(StackError):
    """A tool the stack needs (java, mvn, apt-get, initdb, an OS user...) is missing."""


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path(environ.get("HOME") or Path.home()) / ".cache"
    return base / "lifecert"


def _int_env(environ: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    try:
        return int_env(environ, name, default, lo, hi)
    except EndpointError as exc:
        raise StackError(str(exc)) from None


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack lives and how it listens. All services bind 127.0.0.1 only."""

    data_dir: Path
    cache_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    kafka_controller_port: int = DEFAULT_KAFKA_PORT + 1
    kafka_version: str = KAFKA_VERSION
    kafka_heap: str = "1g"
    kafka_partitions: int = 6
    kafka_auto_create_topics: bool = False
    pg_port: int = DEFAULT_PG_PORT
    pg_database: str = PG_DATABASE
    pg_superuser: str = PG_SUPERUSER
    pg_os_user: str = "postgres"
    pg_bindir: Path | None = None
    start_timeout: float = 120.0
    host: str = LOOPBACK
    # True when data_dir is the project's default (no LIFECERT_DATA_DIR): only then may
    # PostgreSQL's folder move elsewhere when its OS user cannot reach data_dir (see
    # lifecert_dev.stack.postgres.locate). An explicit data folder is never second-guessed.
    data_dir_is_default: bool = False
    # where PostgreSQL's folder was moved to (None: data_dir/postgres)
    pg_dir: Path | None = None
    # the Kafka cluster's nodes, each broker and controller (KRaft combined mode)
    kafka_brokers: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.kafka_brokers <= MAX_KAFKA_BROKERS:
            raise StackError(
                f"the local Kafka cluster takes 1 to {MAX_KAFKA_BROKERS} brokers, not "
                f"{self.kafka_brokers}")
        ports = {"pg_port": self.pg_port}
        for node in self.kafka_nodes:
            client, controller = self.kafka_node_ports(node)
            suffix = "" if node == 1 else f" (node {node})"
            ports[f"kafka_port{suffix}"] = client
            ports[f"kafka_controller_port{suffix}"] = controller
        if len(set(ports.values())) != len(ports):
            raise StackError(f"stack ports must differ, got {ports}")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> StackConfig:
        env = os.environ if environ is None else environ
        try:
            local = LocalStack.from_env(env, cwd)
        except EndpointError as exc:
            raise StackError(str(exc)) from None
        cache_dir = (
            Path(env["LIFECERT_CACHE_DIR"]).expanduser()
            if env.get("LIFECERT_CACHE_DIR")
            else default_cache_dir(env)
        )
        pg_bindir = env.get("LIFECERT_PG_BINDIR")
        return cls(
            data_dir=local.data_dir,
            cache_dir=cache_dir.resolve(),
            kafka_port=local.kafka_port,
            kafka_controller_port=_int_env(
                env, "LIFECERT_KAFKA_CONTROLLER_PORT", local.kafka_port + 1, 1, 65535
            ),
            kafka_version=env.get("LIFECERT_KAFKA_VERSION") or KAFKA_VERSION,
            kafka_heap=env.get("LIFECERT_KAFKA_HEAP") or "1g",
            kafka_partitions=_int_env(env, "LIFECERT_KAFKA_PARTITIONS", 6, 1, 10_000),
            pg_port=local.pg_port,
            pg_os_user=env.get("LIFECERT_PG_OS_USER") or "postgres",
            pg_bindir=Path(pg_bindir) if pg_bindir else None,
            start_timeout=float(_int_env(env, "LIFECERT_STACK_TIMEOUT", 120, 1, 3600)),
            data_dir_is_default=local.data_dir_is_default,
            kafka_brokers=local.kafka_brokers,
        )

    # ----------------------------------------------------------------- derived paths
    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def kafka_nodes(self) -> range:
        """The cluster's node ids, 1..n (node 1 is the single broker of a one-node stack)."""
        return range(1, self.kafka_brokers + 1)

    def kafka_node_ports(self, node: int) -> tuple[int, int]:
        """Node ``node``'s client and controller ports: the configured ones + 2 (node - 1)."""
        return (self.kafka_port + 2 * (node - 1), self.kafka_controller_port + 2 * (node - 1))

    def kafka_node_dir(self, node: int) -> Path:
        """Node 1 keeps the one-node stack's folder (and the cluster's credentials and id);
        node i its own ``kafka/node<i>``."""
        return self.kafka_dir if node == 1 else self.kafka_dir / f"node{node}"

    def kafka_node_logs_dir(self, node: int) -> Path:
        return self.logs_dir if node == 1 else self.logs_dir / f"kafka-node{node}"

    @property
    def kafka_replication(self) -> int:
        """The cluster's default replication factor: 3 from three brokers up (docker/'s)."""
        return min(3, self.kafka_brokers)

    @property
    def kafka_min_insync(self) -> int:
        """min.insync.replicas: one fewer than the replicas (2 of 3: one broker may be lost
        without refusing an acks=all write), 1 on a single broker."""
        return max(1, self.kafka_replication - 1)

    @property
    def postgres_dir(self) -> Path:
        return self.pg_dir or self.data_dir / "postgres"

    @property
    def kafka_libs_dir(self) -> Path:
        return self.cache_dir / f"kafka_{SCALA_BINARY_VERSION}-{self.kafka_version}" / "libs"

    @property
    def maven_repo(self) -> Path:
        return self.cache_dir / "maven-repository"

    # ----------------------------------------------------------------- endpoints
    @property
    def endpoints(self) -> LocalStack:
        """Where the stack listens and keeps its secrets, as every lifecert process finds
        them (lifecert/endpoints.py)."""
        return LocalStack(self.data_dir, self.kafka_port, self.pg_port, self.host,
                          self.pg_database, self.pg_superuser, self.data_dir_is_default,
                          self.kafka_brokers)

    @property
    def kafka_bootstrap(self) -> str:
        return self.endpoints.kafka_bootstrap

    @property
    def pg_passfile(self) -> Path:
        """The libpq password file (mode 0600) holding the password of the bootstrap
        superuser and of every component role, generated by `lifecert stack up`."""
        return self.endpoints.pg_passfile

    @property
    def postgres_dsn(self) -> str:
        """The bootstrap superuser's DSN (creates databases and roles; the stack's and the
        tests' tooling): no password in it, libpq reads it from :attr:`pg_passfile`."""
        return self.endpoints.postgres_dsn

    def postgres_dsn_for(self, component: str, database: str | None = None) -> str:
        """The DSN of ``component``'s own role (lifecert/dbroles.py: owner, projections,
        api, reader), on ``database`` (default: the stack's)."""
        return self.endpoints.postgres_dsn_for(component, database)


# --------------------------------------------------------------------- shared helpers
def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.2
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (reaps it when it is our own child)."""
    if pid <= 0:
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fine
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """mkdir -p, giving the folders it creates ``mode`` whatever the umask (the PostgreSQL
    server's OS user must be able to enter them)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        folder.chmod(mode)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so that two `stack up` runs do not race."""
    make_dirs(path.parent)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
