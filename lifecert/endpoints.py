"""Where a lifecert process finds Kafka, PostgreSQL and its local files when nothing names
them explicitly: the conventions of the local stack.

In production each process is told its endpoints (a flag, ``LIFECERT_KAFKA_BOOTSTRAP``,
``LIFECERT_POSTGRES_DSN``, ``LIFECERT_KAFKA_USERNAME``...) and none of this is read. On a
developer's machine the local stack (``lifecert stack up``, from lifecert-dev) listens on
127.0.0.1, on ``$LIFECERT_KAFKA_PORT`` (19092) and ``$LIFECERT_PG_PORT`` (15432), and
keeps its files under ``$LIFECERT_DATA_DIR`` (else ``data/stack`` of the project): the
PostgreSQL password file ``secrets/pgpass`` and the Kafka credentials
``kafka/credentials/<component>.json``. This module reads those conventions; the stack
(lifecert_dev/stack/stack_config.py) builds its own settings on them and writes the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

LOOPBACK = "127.0.0.1"
DEFAULT_KAFKA_PORT = 19092
DEFAULT_PG_PORT = 15432
PG_DATABASE = "lifecert"
PG_SUPERUSER = "lifecert"

DATA_DIR_ENV = "LIFECERT_DATA_DIR"
KAFKA_PORT_ENV = "LIFECERT_KAFKA_PORT"
PG_PORT_ENV = "LIFECERT_PG_PORT"
BOOTSTRAP_ENV = "LIFECERT_KAFKA_BOOTSTRAP"
KAFKA_BROKERS_ENV = "LIFECERT_KAFKA_BROKERS"
# How many brokers the local stack's Kafka cluster was formatted with (`lifecert stack up
# --brokers N`), recorded under its kafka folder so that every process finds them all.
KAFKA_NODES_FILE = "cluster.nodes"
MAX_KAFKA_BROKERS = 5
DSN_ENV = "LIFECERT_POSTGRES_DSN"


class EndpointError(ValueError):
    """An environment variable naming an endpoint is malformed; the message names it."""


def find_project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding lifecert's pyproject.toml."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        try:
            if pyproject.is_file() and 'name = "lifecert"' in pyproject.read_text("utf-8"):
                return folder
        except OSError:
            continue
    return None


def project_data_dir(*parts: str, cwd: Path | None = None) -> Path:
    """``data/<parts>`` of the project: the checkout holding the working folder, else the
    checkout this lifecert runs from (an editable install, or a venv inside a checkout), so
    that `lifecert stack status` or `api second-factor set` run from another folder finds
    the same stack and keys; only outside any checkout, the working folder's."""
    here = (cwd or Path.cwd()).resolve()
    root = find_project_root(here) or find_project_root(Path(__file__).resolve().parent)
    return (root or here).joinpath("data", *parts)


def int_env(environ: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    """The whole number ``$name`` in ``lo..hi``, else ``default`` when unset or empty."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EndpointError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise EndpointError(f"{name}={value} is out of range ({lo}..{hi})")
    return value


@dataclass(frozen=True)
class LocalStack:
    """Where the local stack's services listen and its files lie."""

    data_dir: Path
    kafka_port: int = DEFAULT_KAFKA_PORT
    pg_port: int = DEFAULT_PG_PORT
    host: str = LOOPBACK
    pg_database: str = PG_DATABASE
    pg_superuser: str = PG_SUPERUSER
    # True when data_dir is the project's default (no LIFECERT_DATA_DIR).
    data_dir_is_default: bool = False
    # Brokers of the local cluster: node i (1..n) takes client port kafka_port + 2 (i - 1).
    kafka_brokers: int = 1

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> LocalStack:
        env = os.environ if environ is None else environ
        here = (cwd or Path.cwd()).resolve()
        if env.get(DATA_DIR_ENV):
            data_dir = Path(env[DATA_DIR_ENV]).expanduser()
            data_dir = data_dir if data_dir.is_absolute() else here / data_dir
        else:
            data_dir = project_data_dir("stack", cwd=here)
        data_dir = data_dir.resolve()
        return cls(
            data_dir=data_dir,
            kafka_port=int_env(env, KAFKA_PORT_ENV, DEFAULT_KAFKA_PORT, 1, 65535),
            pg_port=int_env(env, PG_PORT_ENV, DEFAULT_PG_PORT, 1, 65535),
            data_dir_is_default=not env.get(DATA_DIR_ENV),
            kafka_brokers=int_env(env, KAFKA_BROKERS_ENV, recorded_kafka_brokers(data_dir),
                                  1, MAX_KAFKA_BROKERS),
        )

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def kafka_client_ports(self) -> tuple[int, ...]:
        """Each broker's client port, node 1 first."""
        return tuple(self.kafka_port + 2 * i for i in range(self.kafka_brokers))

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(f"{self.host}:{port}" for port in self.kafka_client_ports)

    @property
    def pg_passfile(self) -> Path:
        """The libpq password file (mode 0600) holding the password of the bootstrap
        superuser and of every component role, generated by `lifecert stack up`."""
        return self.data_dir / "secrets" / "pgpass"

    @property
    def postgres_dsn(self) -> str:
        """The bootstrap superuser's DSN (creates databases and roles; the stack's and the
        tests' tooling): no password in it, libpq reads it from :attr:`pg_passfile`."""
        return (f"postgresql://{self.pg_superuser}@{self.host}:{self.pg_port}/"
                f"{self.pg_database}?passfile={quote(str(self.pg_passfile), safe='/')}")

    def postgres_dsn_for(self, component: str, database: str | None = None) -> str:
        """The DSN of ``component``'s own role (lifecert/dbroles.py: owner, projections,
        api, reader), on ``database`` (default: the stack's)."""
        from lifecert.dbroles import dsn_as

        dsn = dsn_as(self.postgres_dsn, component)
        if database is None:
            return dsn
        import psycopg2.extensions

        return psycopg2.extensions.make_dsn(dsn, dbname=database)


def recorded_kafka_brokers(data_dir: Path) -> int:
    """The broker count the local stack under ``data_dir`` was formatted with (1 when it
    records none: a stack made before clusters, or not made yet)."""
    try:
        count = int((data_dir / "kafka" / KAFKA_NODES_FILE).read_text().strip())
    except (OSError, ValueError):
        return 1
    return count if 1 <= count <= MAX_KAFKA_BROKERS else 1


def kafka_bootstrap(explicit: str | None = None) -> str:
    """The broker to talk to: ``explicit`` (a ``--bootstrap`` flag), else the environment
    variable ``LIFECERT_KAFKA_BOOTSTRAP``, else the local stack's (``lifecert stack``,
    honouring ``LIFECERT_KAFKA_PORT``; 127.0.0.1:19092 by default)."""
    if explicit:
        return explicit
    from_env = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if from_env:
        return from_env
    return LocalStack.from_env().kafka_bootstrap


def postgres_dsn(explicit: str | None = None, component: str | None = None) -> str:
    """``explicit`` (``--dsn``), else ``LIFECERT_POSTGRES_DSN`` (in production: each
    component's process gets its own role's DSN there), else the local stack's DSN for
    ``component``'s own role (lifecert/dbroles.py: owner, projections, api, reader; None:
    the stack's superuser, for tooling that creates databases). The stack's DSNs carry
    no password: libpq reads it from the stack's password file."""
    if explicit or os.environ.get(DSN_ENV):
        return explicit or os.environ[DSN_ENV]
    local = LocalStack.from_env()
    return local.postgres_dsn if component is None else local.postgres_dsn_for(component)
