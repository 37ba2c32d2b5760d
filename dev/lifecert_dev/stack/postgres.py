"""The local PostgreSQL cluster: Debian's server binaries (installed with apt-get when
missing and we are root), a private cluster under the stack's data folder, started with
pg_ctl on 127.0.0.1, run as a non-root OS user.

Layout under ``StackConfig.data_dir``::

    postgres/            owned by the server's OS user, mode 0700
    postgres/pgdata/     the cluster (superuser `lifecert`, SCRAM-SHA-256 passwords)
    postgres/socket/     unix socket folder
    secrets/pgpass       libpq password file, mode 0600 (folder 0700), owned by the
                         calling user: the passwords of the superuser and of every
                         component role (lifecert/dbroles.py), generated on first start
    logs/postgres.log    the server log (pg_ctl -l)
    logs/initdb.log      initdb's output (first start only)
    logs/apt-get.log     apt-get's output, when lifecert installed PostgreSQL

PostgreSQL refuses to run as root. When lifecert runs as root (as CI does), the cluster
belongs to, and every server command runs as, ``StackConfig.pg_os_user`` (default
``postgres``, created by Debian's package); otherwise as the calling user.

Every connection, over TCP and over the unix socket, authenticates with a SCRAM-SHA-256
password (:data:`PG_HBA`): no trust, no peer, not even for the bootstrap, which reads the
superuser's password from ``secrets/pgpass`` like every other client (the file is named by
the DSNs' ``passfile=``, so no password is ever on a command line or in a log). A cluster
made by an older lifecert with ``initdb -A trust`` is converted on its next start.

That user must be able to enter every folder above ``postgres/``. When it cannot (the
repository was cloned inside a 0700 folder, such as one made by `mktemp -d`) and the data
folder is the project's default, :func:`locate` moves ``postgres/`` (and the server log,
``postgres/postgres.log``) to ``/var/tmp/lifecert-<hash of the data folder>/postgres``; an
explicit LIFECERT_DATA_DIR is kept and :func:`preflight` says why it cannot be used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecert_dev.stack.stack_config import (
    MissingPrerequisite,
    StackConfig,
    StackError,
    make_dirs,
    pid_alive,
    pid_cmdline,
    port_open,
    tail,
)

Progress = Callable[[str], None]
DEFAULT_SEARCH_ROOTS: tuple[Path, ...] = (Path("/usr/lib/postgresql"),)
# the socket path (<dir>/.s.PGSQL.<port>) must fit in sockaddr_un.sun_path (108 bytes)
MAX_SOCKET_PATH = 107
# where PostgreSQL's folder goes when its OS user cannot reach the default data folder
FALLBACK_ROOT = Path("/var/tmp")


def _quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------------- binaries
def find_bindir(
    cfg: StackConfig, search_roots: Sequence[Path] = DEFAULT_SEARCH_ROOTS
) -> Path | None:
    """The folder with initdb and pg_ctl: LIFECERT_PG_BINDIR, else the newest
    <root>/<version>/bin, else the folder of initdb on PATH."""
    if cfg.pg_bindir is not None:
        if not (cfg.pg_bindir / "initdb").is_file():
            raise MissingPrerequisite(
                f"LIFECERT_PG_BINDIR={cfg.pg_bindir} holds no initdb: point it at the bin/ "
                "folder of a PostgreSQL server installation, or unset it"
            )
        return cfg.pg_bindir

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)

    found = [p for root in search_roots for p in root.glob("*/bin/initdb") if p.is_file()]
    if found:
        return max(found, key=version_key).parent
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).resolve().parent / "pg_ctl").is_file():
        return Path(on_path).resolve().parent
    return None


def check_can_install(apt_get: str | None = "apt-get") -> str:
    """The apt-get to install PostgreSQL with, or an error saying what to do instead."""
    apt = shutil.which(apt_get) if apt_get else None
    if apt is None:
        raise MissingPrerequisite(
            "PostgreSQL server binaries (initdb, pg_ctl) not found, and apt-get is not "
            "available to install them: install the PostgreSQL 15 server with your system's "
            "package manager and set LIFECERT_PG_BINDIR to its bin/ folder"
        )
    if os.geteuid() != 0:
        raise MissingPrerequisite(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with "
            "`sudo apt-get install -y postgresql` (lifecert installs them itself only when "
            "run as root)"
        )
    return apt


def install_postgres(
    cfg: StackConfig, progress: Progress = _quiet, apt_get: str | None = "apt-get"
) -> None:
    """`apt-get install -y postgresql` (with `apt-get update` first when the package lists
    are missing or stale). Only as root; says what to do otherwise."""
    apt = check_can_install(apt_get)
    cfg.logs_dir.mkdir(parents=True, exist_ok=True)
    log = cfg.logs_dir / "apt-get.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    progress(f"installing PostgreSQL with apt-get (first start only; log {log})")

    def run(*args: str) -> bool:
        with log.open("a") as out:
            out.write(f"$ {apt} {' '.join(args)}\n")
            out.flush()
            return (
                subprocess.run(
                    [apt, *args], stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=env, check=False,
                ).returncode
                == 0
            )

    if run("install", "-y", "--no-install-recommends", "postgresql"):
        return
    progress("apt-get install failed; running apt-get update and trying again")
    if not run("update") or not run("install", "-y", "--no-install-recommends", "postgresql"):
        raise MissingPrerequisite(
            f"apt-get could not install postgresql; last lines of {log}:\n{tail(log)}\n"
            "Install it by hand (apt-get update && apt-get install -y postgresql)."
        )


def ensure_bindir(cfg: StackConfig, progress: Progress = _quiet) -> Path:
    bindir = find_bindir(cfg)
    if bindir is None:
        install_postgres(cfg, progress)
        bindir = find_bindir(cfg)
        if bindir is None:
            raise MissingPrerequisite(
                "apt-get installed postgresql but no initdb appeared under "
                "/usr/lib/postgresql/*/bin: set LIFECERT_PG_BINDIR"
            )
    return bindir


# ------------------------------------------------------------------------- the OS user
@dataclass(frozen=True)
class RunAs:
    """Who runs the server: None fields mean the calling user."""

    name: str
    uid: int | None
    gid: int | None
    home: str

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def env(self) -> dict[str, str]:
        # no PG* variables from the caller: they would redirect psql/pg_ctl elsewhere
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.uid is not None:
            env.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        env.setdefault("LC_ALL", "C.UTF-8")
        return env


def run_as(cfg: StackConfig) -> RunAs:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return RunAs(me.pw_name, None, None, me.pw_dir)
    try:
        user = pwd.getpwnam(cfg.pg_os_user)
    except KeyError:
        raise MissingPrerequisite(
            f"OS user {cfg.pg_os_user!r} does not exist, and PostgreSQL refuses to run as "
            "root: install Debian's postgresql package (it creates the `postgres` user) or "
            "set LIFECERT_PG_OS_USER to an existing non-root user"
        ) from None
    if user.pw_uid == 0:
        raise MissingPrerequisite(
            f"LIFECERT_PG_OS_USER={cfg.pg_os_user!r} is root; PostgreSQL refuses to run as "
            "root: name a non-root user"
        )
    return RunAs(user.pw_name, user.pw_uid, user.pw_gid, user.pw_dir)


def _blocked(path: Path, who: RunAs | None) -> tuple[Path, os.stat_result] | None:
    """The first ancestor folder of ``path`` that ``who`` cannot enter, or None. ``who`` None
    stands for a user not created yet (by the package install): judged by the bits for
    others."""
    if who is not None and who.uid is None:
        return None  # the calling user
    groups = set(os.getgrouplist(who.name, who.gid or 0)) if who else set()
    for folder in reversed(path.parents):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None  # we create it, with mode 0755
        if who is not None and st.st_uid == who.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return folder, st
    return None


def check_reachable(path: Path, who: RunAs) -> None:
    """Raise when ``who`` cannot enter every ancestor folder of ``path`` (e.g. the data
    folder lies under a 0700 home or pytest's tmp folder while the server runs as
    `postgres`)."""
    blocked = _blocked(path, who)
    if blocked is not None:
        folder, st = blocked
        raise StackError(
            f"PostgreSQL runs as OS user {who.name!r}, who cannot enter {folder} "
            f"(mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid}): put the stack's data "
            f"folder elsewhere (LIFECERT_DATA_DIR) or allow it (chmod o+x {folder})"
        )


def fallback_dir(cfg: StackConfig) -> Path:
    """/var/tmp/lifecert-<hash>/postgres: one per data folder, so per clone."""
    digest = hashlib.sha256(str(cfg.data_dir).encode()).hexdigest()[:12]
    return FALLBACK_ROOT / f"lifecert-{digest}" / "postgres"


def locate(cfg: StackConfig) -> StackConfig:
    """``cfg`` with PostgreSQL's folder moved to :func:`fallback_dir` when the data folder
    is the default one and the server's OS user cannot reach it; else ``cfg`` itself."""
    if not cfg.data_dir_is_default or cfg.pg_dir is not None:
        return cfg
    try:
        who: RunAs | None = run_as(cfg)
    except MissingPrerequisite:
        who = None  # installed (or refused, with the reason) by preflight/start
    if _blocked(cfg.postgres_dir, who) is None:
        return cfg
    return dataclasses.replace(cfg, pg_dir=fallback_dir(cfg))


def fallback_note(cfg: StackConfig) -> str | None:
    """One line saying where PostgreSQL's folder went and why, when it moved."""
    if cfg.pg_dir is None:
        return None
    return (
        f"PostgreSQL's OS user {cfg.pg_os_user!r} cannot reach {cfg.data_dir}: its cluster "
        f"and log are in {cfg.pg_dir} instead (set LIFECERT_DATA_DIR to a folder that user "
        "can enter to keep them with the rest)"
    )


def _make_private_folder(folder: Path) -> None:
    """mkdir ``folder`` (0755) in a shared folder such as /var/tmp, refusing one that someone
    else made or can write to (we chown what is inside it)."""
    folder.mkdir(mode=0o755, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise StackError(
            f"{folder} is not a folder of uid {os.geteuid()} that only it can write to: "
            "remove it, or set LIFECERT_DATA_DIR"
        )
    folder.chmod(0o755)


# ------------------------------------------------------------------------- state
@dataclass(frozen=True)
class PostgresState:
    running: bool
    pid: int | None
    port: int | None
    ready: bool
    dsn: str
    log: Path


def _paths(cfg: StackConfig) -> dict[str, Path]:
    pg = cfg.postgres_dir
    return {
        "pgdata": pg / "pgdata",
        "socket": pg / "socket",
        # pg_ctl opens the log as the server's user: beside the cluster once moved
        "log": (cfg.pg_dir or cfg.logs_dir) / "postgres.log",
        "initdb_log": cfg.logs_dir / "initdb.log",
    }


def _postmaster(cfg: StackConfig) -> tuple[int, int] | None:
    """(pid, port) of this cluster's running postmaster, from postmaster.pid."""
    try:
        lines = (_paths(cfg)["pgdata"] / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    cmdline = pid_cmdline(pid)
    if not cmdline or "postgres" not in Path(cmdline[0]).name:
        return None
    return pid, port


def status(cfg: StackConfig) -> PostgresState:
    pm = _postmaster(cfg)
    return PostgresState(
        running=pm is not None,
        pid=pm[0] if pm else None,
        port=pm[1] if pm else None,
        ready=pm is not None and port_open(cfg.host, pm[1]),
        dsn=cfg.postgres_dsn,
        log=_paths(cfg)["log"],
    )


# ------------------------------------------------------------------------- start / stop
def preflight(cfg: StackConfig) -> None:
    """Check what a start needs before anything runs. Missing binaries are fine when they
    can be installed (as root, with apt-get): :func:`start` installs them."""
    if find_bindir(cfg) is None:
        check_can_install()
        return  # the package creates the `postgres` user; checked again in start()
    check_reachable(cfg.postgres_dir, run_as(cfg))


def _run(
    cmd: list[str], who: RunAs, cwd: Path, log: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    if log is not None:
        with log.open("a") as out:
            return subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, cwd=cwd, env=who.env(), timeout=timeout, check=False,
                **who.kwargs(),
            )
    return subprocess.run(
        cmd, capture_output=True, stdin=subprocess.DEVNULL, text=True, cwd=cwd,
        env=who.env(), timeout=timeout, check=False, **who.kwargs(),
    )


def _prepare_dirs(cfg: StackConfig, who: RunAs) -> None:
    p = _paths(cfg)
    make_dirs(cfg.logs_dir)
    if cfg.pg_dir is not None:
        _make_private_folder(cfg.pg_dir.parent)
    check_reachable(cfg.postgres_dir, who)
    cfg.postgres_dir.mkdir(mode=0o700, exist_ok=True)
    p["socket"].mkdir(mode=0o700, exist_ok=True)
    p["log"].touch(exist_ok=True)
    if who.uid is not None:
        owned = cfg.postgres_dir.stat().st_uid == who.uid
        for path in (cfg.postgres_dir, p["socket"], p["log"]):
            os.chown(path, who.uid, who.gid or 0)
        if not owned:  # e.g. made earlier by another user: hand the whole tree over
            for root, dirs, files in os.walk(cfg.postgres_dir):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), who.uid, who.gid or 0)
    cfg.postgres_dir.chmod(0o700)


def _initdb(cfg: StackConfig, bindir: Path, who: RunAs, progress: Progress,
            password: str) -> None:
    p = _paths(cfg)
    if (p["pgdata"] / "PG_VERSION").is_file():
        return
    if p["pgdata"].exists():  # a half-made cluster from an interrupted initdb
        shutil.rmtree(p["pgdata"])
    progress(f"creating the PostgreSQL cluster in {p['pgdata']}")
    log = p["initdb_log"]
    log.write_text("")
    if who.uid is not None:
        os.chown(log, who.uid, who.gid or 0)
    # initdb reads the superuser's password from a file its OS user can read: one of its
    # own, 0600, removed at once
    pwfile = cfg.postgres_dir / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    if who.uid is not None:
        os.chown(pwfile, who.uid, who.gid or 0)
    try:
        result = _run(
            [
                str(bindir / "initdb"), "-D", str(p["pgdata"]), "-U", cfg.pg_superuser,
                "-A", "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale",
                "--no-instructions",
            ],
            who, cfg.postgres_dir, log,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(f"initdb failed (exit {result.returncode}); {log}:\n{tail(log)}")


# ------------------------------------------------------------------------- authentication
PG_HBA = """\
# Written by lifecert-dev (lifecert_dev/stack/postgres.py); rewritten on every `lifecert stack up`.
# Every connection authenticates with a SCRAM-SHA-256 password, over the unix socket as
# over TCP: no trust, no peer. The passwords are in the stack's secrets/pgpass.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  scram-sha-256
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
"""


def read_passfile(path: Path) -> dict[str, str]:
    """role -> password, from a password file this module wrote (``*:*:*:role:pw``)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        parts = line.split(":")
        if len(parts) == 5 and parts[:3] == ["*", "*", "*"]:
            found[parts[3]] = parts[4]
    return found


def ensure_credentials(cfg: StackConfig) -> dict[str, str]:
    """The passwords of the superuser and of every component role (lifecert/dbroles.py),
    generating those missing into :attr:`StackConfig.pg_passfile` (0600, in a 0700
    folder, written atomically)."""
    from lifecert.dbroles import ROLES

    path = cfg.pg_passfile
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    known = read_passfile(path)
    wanted = [cfg.pg_superuser, *ROLES.values()]
    if all(role in known for role in wanted) and stat.S_IMODE(path.stat().st_mode) == 0o600:
        return known
    for role in wanted:
        known.setdefault(role, secrets.token_urlsafe(24))  # [A-Za-z0-9_-]: no ':' or '\\'
    temp = path.with_name(f".{path.name}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# lifecert stack: PostgreSQL passwords (libpq password file); keep 0600\n")
        out.writelines(f"*:*:*:{role}:{password}\n" for role, password in known.items())
    os.replace(temp, path)
    return known


def _admin_connect(cfg: StackConfig) -> Any:
    import psycopg2
    import psycopg2.extensions

    dsn = psycopg2.extensions.make_dsn(cfg.postgres_dsn, dbname="postgres")
    try:
        conn = psycopg2.connect(dsn, connect_timeout=10,
                                application_name="lifecert-stack")
    except psycopg2.OperationalError as exc:
        raise StackError(
            f"cannot connect to this stack's PostgreSQL as {cfg.pg_superuser!r} with the "
            f"password in {cfg.pg_passfile}: {str(exc).strip()}. If that file was lost or "
            "replaced, stop the stack and remove its PostgreSQL folder "
            f"({cfg.postgres_dir}) to start afresh"
        ) from None
    conn.autocommit = True
    return conn


def _secure(cfg: StackConfig, bindir: Path, who: RunAs, passwords: dict[str, str]) -> None:
    """Make the running cluster ask every client for its SCRAM password: set the
    superuser's (a no-op after our own initdb; the conversion of a cluster made with
    ``-A trust``), then install :data:`PG_HBA` and reload."""
    from lifecert.dbroles import scram_verifier

    hba = _paths(cfg)["pgdata"] / "pg_hba.conf"
    if hba.read_text() == PG_HBA:
        return
    conn = _admin_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute(f'ALTER ROLE "{cfg.pg_superuser}" PASSWORD %s',
                        (scram_verifier(passwords[cfg.pg_superuser]),))
    finally:
        conn.close()
    temp = hba.with_name("pg_hba.conf.lifecert")
    temp.write_text(PG_HBA)
    temp.chmod(0o600)
    if who.uid is not None:
        os.chown(temp, who.uid, who.gid or 0)
    os.replace(temp, hba)
    result = _run([str(bindir / "pg_ctl"), "reload", "-D", str(_paths(cfg)["pgdata"])],
                  who, cfg.postgres_dir, timeout=60)
    if result.returncode != 0:
        raise StackError(f"pg_ctl reload failed: {result.stderr.strip()}")


def _server_options(cfg: StackConfig) -> str:
    socket_dir = _paths(cfg)["socket"]
    if len(f"{socket_dir}/.s.PGSQL.{cfg.pg_port}") > MAX_SOCKET_PATH:
        socket_dir_opt = "''"  # path too long for a unix socket: TCP only
    else:
        socket_dir_opt = shlex.quote(str(socket_dir))
    # 300 connections, not PostgreSQL's 100: `make test` runs three test processes side
    # by side, each with pipelines, API servers and connectors holding sessions of their
    # own; 100 ran out ("remaining connection slots are reserved").
    return (
        f"-p {cfg.pg_port} -c listen_addresses={cfg.host} -k {socket_dir_opt} "
        "-c password_encryption=scram-sha-256 -c max_connections=300"
    )


def start(cfg: StackConfig, progress: Progress = _quiet) -> PostgresState:
    """Start the cluster unless it runs (installing and creating it on the first start);
    make sure the database exists; return once it accepts connections."""
    pm = _postmaster(cfg)
    if pm is not None and pm[1] != cfg.pg_port:
        raise StackError(
            f"this stack's PostgreSQL already runs on port {pm[1]}, not {cfg.pg_port}: "
            "run `lifecert stack down` first to change the port"
        )
    bindir = ensure_bindir(cfg, progress)
    who = run_as(cfg)
    p = _paths(cfg)
    passwords = ensure_credentials(cfg)
    if pm is None:
        if port_open(cfg.host, cfg.pg_port):
            raise StackError(
                f"port {cfg.pg_port} on {cfg.host} is already in use by a process that is "
                "not this stack's PostgreSQL: stop it, or choose another port with "
                "LIFECERT_PG_PORT"
            )
        _prepare_dirs(cfg, who)
        _initdb(cfg, bindir, who, progress, passwords[cfg.pg_superuser])
        # A postmaster.pid left by a killed server names a dead pid, which PostgreSQL
        # itself trusts as long as the pid exists: where PID 1 does not reap orphans (as on
        # these VMs) the dead server lingers as a zombie and blocks the start. We know it
        # is not running (_postmaster checked): drop the file.
        (p["pgdata"] / "postmaster.pid").unlink(missing_ok=True)
        progress(f"starting PostgreSQL on {cfg.host}:{cfg.pg_port}")
        timeout = int(cfg.start_timeout)
        result = _run(
            [
                str(bindir / "pg_ctl"), "start", "-D", str(p["pgdata"]), "-l", str(p["log"]),
                "-w", "-t", str(timeout), "-o", _server_options(cfg),
            ],
            who, cfg.postgres_dir, timeout=timeout + 30,
        )
        if result.returncode != 0:
            raise StackError(
                f"pg_ctl start failed (exit {result.returncode}): {result.stderr.strip()}\n"
                f"{p['log']}:\n{tail(p['log'])}"
            )
    _secure(cfg, bindir, who, passwords)
    _ensure_database(cfg, passwords)
    return status(cfg)


def _ensure_database(cfg: StackConfig, passwords: dict[str, str]) -> None:
    """The component roles with their passwords, and the stack's database, closed to
    PUBLIC (lifecert/dbroles.py)."""
    from lifecert.dbroles import ROLES, ensure_roles, lock_down

    name = cfg.pg_database
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise StackError(f"database name {name!r} must match [a-z_][a-z0-9_]*")
    conn = _admin_connect(cfg)
    try:
        ensure_roles(conn, [(role, passwords[role]) for role in ROLES.values()])
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    lock_down(cfg.postgres_dsn, name)
    # the key store's tables, made by the superuser so that lifecert_keystore owns them
    from lifecert.keystore.postgres import migrate_as

    migrate_as(cfg.postgres_dsn)


def stop(cfg: StackConfig) -> bool:
    """pg_ctl stop -m fast. Returns whether the cluster was running."""
    if _postmaster(cfg) is None:
        return False
    bindir = find_bindir(cfg)
    if bindir is None:
        raise MissingPrerequisite("pg_ctl not found: cannot stop PostgreSQL cleanly")
    result = _run(
        [str(bindir / "pg_ctl"), "stop", "-D", str(_paths(cfg)["pgdata"]), "-m", "fast",
         "-w", "-t", "60"],
        run_as(cfg), cfg.postgres_dir, timeout=90,
    )
    if result.returncode != 0 and _postmaster(cfg) is not None:
        raise StackError(f"pg_ctl stop failed: {result.stderr.strip()}")
    return True
