"""Who a process is on the Kafka broker, and the SASL/SCRAM credentials it proves it with.

The broker (the local stack's and docker/'s) accepts only SASL/SCRAM-SHA-512 clients and
authorizes every request with ACLs (lifecert/pipeline/acls.toml): each component of lifecert
has a principal of its own. A process says which component it is once, where it starts:

    with credentials.acting_as("worker"):     # lifecert.cli does this for every command
        ...                                   # every client made here is the worker

and :func:`lifecert.pipeline.broker_clients.client_security` turns that into client settings.
Credentials come, in this order, from

1. ``LIFECERT_KAFKA_USERNAME`` + ``LIFECERT_KAFKA_PASSWORD`` (production: one process, one
   identity, given by its deployment);
2. ``LIFECERT_KAFKA_CREDENTIALS``: a JSON file ``{"username": ..., "password": ...}``;
3. the local stack's file for the component, ``<data>/kafka/credentials/<component>.json``
   (written 0600 by `lifecert stack up` when it formats the broker's storage).

This module imports no Kafka client: the command line reads it before choosing a command.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from lifecert.endpoints import LocalStack

MECHANISM = "SCRAM-SHA-512"

# Every principal of lifecert (User:<name> on the broker). ``admin`` creates topics and
# ACLs (`lifecert stack`, `lifecert topics create`, the demo's and the tests' set-up) and
# is a super user; the others get exactly the ACLs of acls.toml. ``reader`` is the
# people's read-only look at the log (`lifecert topics tail`, `lifecert log dump`).
ADMIN = "admin"
COMPONENTS: tuple[str, ...] = (
    ADMIN, "api", "connector", "scheduler", "worker", "projections", "payment-system",
    "reader",
)
# The broker's own identities: inter-broker (SCRAM) and broker -> controller (PLAIN).
BROKER_USERS: tuple[str, ...] = ("broker", "controller")

COMPONENT_ENV = "LIFECERT_KAFKA_COMPONENT"
USERNAME_ENV = "LIFECERT_KAFKA_USERNAME"
PASSWORD_ENV = "LIFECERT_KAFKA_PASSWORD"
CREDENTIALS_ENV = "LIFECERT_KAFKA_CREDENTIALS"
PROTOCOL_ENV = "LIFECERT_KAFKA_SECURITY_PROTOCOL"
CA_ENV = "LIFECERT_KAFKA_CA_FILE"

_acting: ContextVar[str | None] = ContextVar("lifecert_kafka_component", default=None)
# The innermost acting_as block open in the process, for threads that the block starts
# (a thread pool's workers do not inherit context variables).
_open_blocks: list[str] = []
_process_default: str | None = None


class CredentialsMissing(RuntimeError):
    """No identity or no credentials for a Kafka client; the message says what to set."""


@dataclass(frozen=True)
class Credentials:
    component: str
    username: str
    password: str
    source: str  # where they were read, for error messages (never the password)

    def __repr__(self) -> str:
        return f"Credentials({self.username!r} from {self.source})"


def _check(component: str) -> str:
    if component not in COMPONENTS:
        raise ValueError(
            f"unknown Kafka component {component!r}: one of {', '.join(COMPONENTS)}"
        )
    return component


@contextmanager
def acting_as(component: str) -> Iterator[None]:
    """Clients made inside the block authenticate as ``component``: in this thread or
    task, and in threads it starts (unless they act as another)."""
    token = _acting.set(_check(component))
    _open_blocks.append(component)
    try:
        yield
    finally:
        _open_blocks.remove(component)
        _acting.reset(token)


def set_process_component(component: str | None) -> None:
    """The component of clients made outside any :func:`acting_as` block (in any thread)
    of this process; the test suite's own set-up code is ``admin``."""
    global _process_default
    _process_default = _check(component) if component is not None else None


def current_component() -> str:
    found = (
        _acting.get()
        or (_open_blocks[-1] if _open_blocks else None)
        or _process_default
        or os.environ.get(COMPONENT_ENV, "").strip()
    )
    if not found:
        raise CredentialsMissing(
            "this process did not say which lifecert component it is on Kafka (every "
            "command does; library code runs inside credentials.acting_as(...)), and "
            f"{COMPONENT_ENV} is not set: set it to one of {', '.join(COMPONENTS)}"
        )
    return _check(found)


def local_credentials_dir(kafka_dir: Path) -> Path:
    return kafka_dir / "credentials"


def read_file(path: Path, component: str) -> Credentials:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        username, password = data["username"], data["password"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialsMissing(
            f"cannot read Kafka credentials from {path} ({type(exc).__name__}): the file "
            'must be JSON {"username": ..., "password": ...}'
        ) from None
    if not (isinstance(username, str) and isinstance(password, str) and username and password):
        raise CredentialsMissing(f"{path}: username and password must be non-empty strings")
    return Credentials(component, username, password, str(path))


def credentials_for(
    component: str | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """The credentials of ``component`` (default: this process's component)."""
    env = os.environ if environ is None else environ
    component = _check(component) if component else current_component()
    username, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
    if username or password:
        if not (username and password):
            raise CredentialsMissing(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
        return Credentials(component, username, password, f"${USERNAME_ENV}")
    if env.get(CREDENTIALS_ENV):
        return read_file(Path(env[CREDENTIALS_ENV]).expanduser(), component)
    path = local_credentials_dir(LocalStack.from_env(env).kafka_dir) / f"{component}.json"
    if not path.is_file():
        raise CredentialsMissing(
            f"no Kafka credentials for the {component} component: {path} does not exist. "
            f"Start the local stack with `lifecert stack up`, or set {USERNAME_ENV} and "
            f"{PASSWORD_ENV} (or {CREDENTIALS_ENV}, a JSON file) for a broker of your own."
        )
    return read_file(path, component)


def write_local(folder: Path, users: tuple[str, ...]) -> dict[str, str]:
    """A random password for each of ``users`` that has none yet in ``folder`` (0700),
    each in its own 0600 file; returns user -> password for all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    out: dict[str, str] = {}
    for user in users:
        path = folder / f"{user}.json"
        if path.is_file():
            out[user] = read_file(path, user if user in COMPONENTS else ADMIN).password
            continue
        password = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: safe in JAAS and --add-scram
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"username": user, "password": password, "mechanism": MECHANISM}, handle)
        out[user] = password
    return out
