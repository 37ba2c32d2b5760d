"""`lifecert stack` against the real thing: a Kafka broker resolved from Maven Central and
run on Java, a PostgreSQL cluster from Debian's packages. No mocks."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.credentials import ADMIN
from lifecert_dev.stack import (
    KAFKA_VERSION,
    MissingPrerequisite,
    StackConfig,
    StackError,
    StackStatus,
    status,
    up,
)
from lifecert_dev.stack import broker as stack_broker
from lifecert_dev.stack import postgres as stack_postgres


def cli_module() -> str:
    """Run through `lifecert` itself once the stack command is registered there (a plug-in
    of lifecert-dev)."""
    from importlib.metadata import entry_points

    from lifecert.commands.plugins import GROUP

    if any(ep.value == "lifecert_dev.commands.stack" for ep in entry_points(group=GROUP)):
        return "lifecert.cli"
    return "lifecert_dev.commands.stack"


def lifecert_stack(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    module = cli_module()
    argv = [sys.executable, "-m", module]
    argv += ["stack", *args] if module == "lifecert.cli" else list(args)
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def status_json(env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, dict]:
    result = lifecert_stack("status", "--json", env=env, cwd=cwd)
    return result.returncode, json.loads(result.stdout)


# --------------------------------------------------------------------- the shared stack
@pytest.mark.stack
def test_up_again_is_idempotent(stack: StackStatus) -> None:
    # Read the pids now: fault tests may have restarted the shared services since.
    current = status(stack.config)
    before = (current.kafka.pid, current.postgres.pid)
    started = time.monotonic()
    result = lifecert_stack("up", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["kafka"]["pid"], info["postgres"]["pid"]) == before
    assert info["state"] == "running"
    assert time.monotonic() - started < 30
    assert up(stack.config).kafka.pid == current.kafka.pid  # the API too


@pytest.mark.stack
def test_status_json_names_the_endpoints(stack: StackStatus) -> None:
    code, info = status_json()
    assert code == 0
    assert info["kafka_bootstrap"] == stack.kafka_bootstrap
    assert info["kafka_bootstrap"] == f"127.0.0.1:{stack.config.kafka_port}"
    assert info["postgres_dsn"] == stack.postgres_dsn
    assert info["postgres_dsn"].startswith("postgresql://lifecert@127.0.0.1:")
    assert info["kafka"]["state"] == info["postgres"]["state"] == "running"
    assert info["kafka"]["version"] == KAFKA_VERSION
    assert Path(info["kafka"]["log"]).is_file() and Path(info["postgres"]["log"]).is_file()
    # in CI the clone may lie in a 0700 folder: then PostgreSQL's part lives in /var/tmp
    assert info["postgres"]["data_dir"] == str(stack.config.postgres_dir)
    assert info["postgres"]["fallback"] is (stack.config.pg_dir is not None)


@pytest.mark.stack
def test_kafka_round_trip_with_idempotent_producer(stack: StackStatus) -> None:
    bootstrap = json.loads(lifecert_stack("status", "--json").stdout)["kafka_bootstrap"]
    topic = f"lifecert.test.stack-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lifecert-test",
                             **client_security(ADMIN).kafka_python())
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
        **client_security(ADMIN).kafka_python(),
    )
    try:
        meta = producer.send(topic, key=b"R-000042", value=b'{"type":"CertificationRecorded"}').get(
            timeout=30
        )
        producer.flush()
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap, **client_security(ADMIN).kafka_python(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
    )
    got = []
    deadline = time.monotonic() + 30
    try:
        while not got and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend(batch)
    finally:
        consumer.close()
    assert [(r.key, r.value, r.partition, r.offset) for r in got] == [
        (b"R-000042", b'{"type":"CertificationRecorded"}', meta.partition, meta.offset)
    ]


@pytest.mark.stack
def test_postgres_dsn_connects_and_queries(stack: StackStatus) -> None:
    dsn = json.loads(lifecert_stack("status", "--json").stdout)["postgres_dsn"]
    with psycopg2.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_user, inet_server_addr()::text")
        assert cur.fetchone() == ("lifecert", "lifecert", "127.0.0.1/32")
        cur.execute("CREATE TEMP TABLE t (retiree_id text PRIMARY KEY, n int)")
        cur.execute(
            "INSERT INTO t VALUES ('R-1', 1) ON CONFLICT (retiree_id) DO UPDATE SET n = t.n + 1"
        )
        cur.execute("SELECT n FROM t")
        assert cur.fetchone() == (1,)
    conn.close()


@pytest.mark.stack
def test_postgres_runs_as_a_non_root_user(stack: StackStatus) -> None:
    owner = Path(f"/proc/{status(stack.config).postgres.pid}").stat().st_uid
    assert owner != 0
    assert (stack.config.postgres_dir / "pgdata").stat().st_uid == owner


# --------------------------------------------------------------------- a private stack
@pytest.mark.stack
def test_up_twice_down_then_status_stopped(private_stack_env: dict[str, str]) -> None:
    env = private_stack_env
    code, info = status_json(env)
    assert code == 3 and info["state"] == "stopped"

    first = lifecert_stack("up", "--json", env=env)
    assert first.returncode == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["kafka_bootstrap"] == f"127.0.0.1:{env['LIFECERT_KAFKA_PORT']}"
    assert one["postgres_dsn"] == (
        f"postgresql://lifecert@127.0.0.1:{env['LIFECERT_PG_PORT']}/lifecert"
        f"?passfile={env['LIFECERT_DATA_DIR']}/secrets/pgpass")
    assert one["data_dir"] == env["LIFECERT_DATA_DIR"]

    second = lifecert_stack("up", "--json", env=env)
    assert second.returncode == 0, second.stderr
    two = json.loads(second.stdout)
    assert (two["kafka"]["pid"], two["postgres"]["pid"]) == (
        one["kafka"]["pid"],
        one["postgres"]["pid"],
    )

    stopped = lifecert_stack("down", env=env)
    assert stopped.returncode == 0, stopped.stderr
    code, info = status_json(env)
    assert code == 3
    assert info["state"] == "stopped"
    assert info["kafka"]["state"] == info["postgres"]["state"] == "stopped"
    assert info["kafka"]["pid"] is None and info["postgres"]["pid"] is None
    assert lifecert_stack("down", env=env).returncode == 0  # down twice is fine too

    # and it comes back on its existing data (no re-format, no re-initdb)
    again = lifecert_stack("up", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert "formatting" not in again.stderr and "creating the PostgreSQL" not in again.stderr


# --------------------------------------------------------------------- missing pieces
@pytest.mark.stack
def test_missing_java_is_named(private_stack_env: dict[str, str], tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {k: v for k, v in private_stack_env.items() if k != "JAVA_HOME"}
    env["PATH"] = str(empty_bin)
    result = lifecert_stack("up", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "java not found on PATH" in result.stderr
    assert "apt-get install -y openjdk-17-jre-headless" in result.stderr
    # nothing was started: the check comes before any service
    code, info = status_json(private_stack_env)
    assert code == 3 and info["state"] == "stopped"


@pytest.mark.stack
def test_missing_maven_is_named(private_stack_env: dict[str, str], tmp_path: Path) -> None:
    java = stack_broker.find_java()
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java)
    env = {k: v for k, v in private_stack_env.items() if k != "JAVA_HOME"}
    env["PATH"] = str(only_java)
    env["LIFECERT_CACHE_DIR"] = str(tmp_path / "empty-cache")  # jars not resolved yet
    result = lifecert_stack("up", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "mvn not found on PATH" in result.stderr
    assert "apt-get install -y maven" in result.stderr


def test_missing_apt_get_is_named(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path / "stack", cache_dir=tmp_path / "cache")
    assert stack_postgres.find_bindir(cfg, search_roots=[tmp_path]) != tmp_path
    with pytest.raises(MissingPrerequisite, match="apt-get is not available"):
        stack_postgres.install_postgres(cfg, apt_get=None)


def locked_folder(tmp_path: Path) -> Path:
    """A root-owned 0700 folder, like `mktemp -d`'s: the `postgres` user cannot enter it."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    return locked


@pytest.mark.stack
@pytest.mark.skipif(os.geteuid() != 0, reason="the server's OS user differs only under root")
def test_unreachable_explicit_data_dir_is_explained(
    tmp_path: Path, private_stack_env: dict[str, str]
) -> None:
    locked = locked_folder(tmp_path)
    cfg = StackConfig(
        data_dir=locked / "stack",
        cache_dir=tmp_path / "cache",
        pg_port=1,
        kafka_port=2,
        kafka_controller_port=3,
    )
    assert stack_postgres.locate(cfg) is cfg  # configured explicitly: never moved
    with pytest.raises(StackError, match=r"cannot enter .*LIFECERT_DATA_DIR"):
        stack_postgres.preflight(cfg)
    # the same through the command line, with LIFECERT_DATA_DIR: refused before any start
    env = {**private_stack_env, "LIFECERT_DATA_DIR": str(locked / "stack")}
    result = lifecert_stack("up", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "who cannot enter" in result.stderr and "LIFECERT_DATA_DIR" in result.stderr
    assert "/var/tmp" not in result.stderr
    code, info = status_json(env)
    assert code == 3 and info["state"] == "stopped" and info["postgres"]["fallback"] is False


@pytest.mark.stack
@pytest.mark.skipif(os.geteuid() != 0, reason="the server's OS user differs only under root")
def test_unreachable_default_data_dir_moves_postgres_to_var_tmp(
    tmp_path: Path, private_stack_env: dict[str, str]
) -> None:
    # a clone inside a 0700 folder, no LIFECERT_DATA_DIR: the default data folder
    # (<clone>/data/stack) is out of the `postgres` user's reach
    clone = locked_folder(tmp_path) / "clone"
    clone.mkdir()
    # a checkout: lifecert's pyproject.toml (outside any checkout, the data folder would be
    # the one of the checkout lifecert runs from: lifecert.endpoints.project_data_dir)
    (clone / "pyproject.toml").write_text('[project]\nname = "lifecert"\n', encoding="utf-8")
    env = {k: v for k, v in private_stack_env.items() if k != "LIFECERT_DATA_DIR"}
    cfg = StackConfig.from_env(env, cwd=clone)
    assert cfg.data_dir == clone.resolve() / "data" / "stack" and cfg.data_dir_is_default
    moved = stack_postgres.locate(cfg)
    fallback = stack_postgres.fallback_dir(cfg)
    assert moved.postgres_dir == fallback
    assert fallback.parent.parent == stack_postgres.FALLBACK_ROOT
    assert fallback.parent.name.startswith("lifecert-")
    try:
        result = lifecert_stack("up", "--json", env=env, cwd=clone)
        assert result.returncode == 0, result.stderr
        notes = [line for line in result.stderr.splitlines() if "cannot reach" in line]
        assert len(notes) == 1 and str(fallback) in notes[0], result.stderr
        info = json.loads(result.stdout)
        assert info["state"] == "running"
        assert info["data_dir"] == str(cfg.data_dir)
        assert info["postgres"]["data_dir"] == str(fallback)
        assert info["postgres"]["fallback"] is True
        assert info["postgres"]["log"] == str(fallback / "postgres.log")
        # /var/tmp/lifecert-<hash>: ours, 0755; .../postgres: the server user's, 0700
        base, pg = fallback.parent.lstat(), fallback.lstat()
        assert (base.st_uid, stat.S_IMODE(base.st_mode)) == (0, 0o755)
        pg_uid = pwd.getpwnam(cfg.pg_os_user).pw_uid
        assert (pg.st_uid, stat.S_IMODE(pg.st_mode)) == (pg_uid, 0o700)
        assert (fallback / "pgdata" / "PG_VERSION").is_file()
        assert Path(f"/proc/{info['postgres']['pid']}").stat().st_uid == pg_uid
        assert not (cfg.data_dir / "postgres").exists()
        dsn = info["postgres_dsn"]
        with psycopg2.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            assert cur.fetchone() == (str(fallback / "pgdata"),)
        conn.close()
        # status and down find it there too
        code, again = status_json(env, cwd=clone)
        assert code == 0 and again["postgres"]["pid"] == info["postgres"]["pid"]
        assert lifecert_stack("down", env=env, cwd=clone).returncode == 0
        code, after = status_json(env, cwd=clone)
        assert code == 3 and after["postgres"]["state"] == "stopped"
    finally:
        lifecert_stack("down", env=env, cwd=clone)
        shutil.rmtree(fallback.parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the server's OS user differs only under root")
def test_fallback_is_decided_before_postgres_is_installed(tmp_path: Path) -> None:
    # on a new machine the `postgres` user appears only with the package (installed by
    # `up`): until then the folders are judged by the bits for others
    cfg = StackConfig(
        data_dir=locked_folder(tmp_path) / "clone" / "data" / "stack",
        cache_dir=tmp_path / "cache",
        pg_os_user="lifecert-no-such-user",
        data_dir_is_default=True,
    )
    assert stack_postgres.locate(cfg).postgres_dir == stack_postgres.fallback_dir(cfg)
    reachable = dataclasses.replace(cfg, data_dir=stack_postgres.FALLBACK_ROOT / "x" / "stack")
    assert stack_postgres.locate(reachable) is reachable


def test_fallback_folder_made_by_someone_else_is_refused(tmp_path: Path) -> None:
    open_to_all = tmp_path / "lifecert-0123456789ab"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    with pytest.raises(StackError, match="only it can write to"):
        stack_postgres._make_private_folder(open_to_all)
    link = tmp_path / "lifecert-link"
    link.symlink_to(tmp_path)
    with pytest.raises(StackError, match="remove it"):
        stack_postgres._make_private_folder(link)
    mine = tmp_path / "lifecert-mine"
    stack_postgres._make_private_folder(mine)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o755


def test_bad_port_variable_is_named() -> None:
    with pytest.raises(StackError, match="LIFECERT_PG_PORT='fifteen'"):
        StackConfig.from_env({"LIFECERT_PG_PORT": "fifteen"})
    with pytest.raises(StackError, match="LIFECERT_KAFKA_PORT=70000 is out of range"):
        StackConfig.from_env({"LIFECERT_KAFKA_PORT": "70000"})


def test_config_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = StackConfig.from_env({"HOME": str(tmp_path)}, cwd=Path(__file__).parent)
    repo = Path(__file__).resolve().parents[3]
    assert cfg.data_dir == repo / "data" / "stack"
    assert cfg.data_dir_is_default and cfg.pg_dir is None
    assert cfg.postgres_dir == cfg.data_dir / "postgres"
    assert cfg.cache_dir == tmp_path / ".cache" / "lifecert"
    assert (cfg.kafka_port, cfg.kafka_controller_port, cfg.pg_port) == (19092, 19093, 15432)
    assert cfg.kafka_version.startswith("4.1.")
    other = StackConfig.from_env(
        {
            "LIFECERT_DATA_DIR": str(tmp_path / "d"),
            "LIFECERT_KAFKA_PORT": "29092",
            "LIFECERT_PG_PORT": "25432",
        }
    )
    assert other.data_dir == tmp_path / "d"
    assert not other.data_dir_is_default
    assert other.kafka_controller_port == 29093
    assert other.kafka_bootstrap == "127.0.0.1:29092"
    assert other.postgres_dsn == (
        f"postgresql://lifecert@127.0.0.1:25432/lifecert?passfile={tmp_path}/d/secrets/pgpass")
    assert other.postgres_dsn_for("api", "x") == (
        f"user=lifecert_api passfile={tmp_path}/d/secrets/pgpass dbname=x host=127.0.0.1 "
        "port=25432")


@pytest.mark.stack
def test_status_run_from_another_folder_sees_the_running_stack(
    stack: StackStatus, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LIFECERT_DATA_DIR"}
    if os.environ.get("LIFECERT_DATA_DIR"):
        env["LIFECERT_DATA_DIR"] = str(Path(os.environ["LIFECERT_DATA_DIR"]).resolve())
    done = subprocess.run([sys.executable, "-m", "lifecert.cli", "stack", "status"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "running" in lines["kafka"] and "running" in lines["postgres"], done.stdout
    assert str(stack.config.data_dir) in lines["data"], done.stdout


def test_a_cluster_config_gives_each_node_its_ports_folders_and_replication(
        tmp_path: Path) -> None:
    env = {"LIFECERT_DATA_DIR": str(tmp_path / "d"), "LIFECERT_KAFKA_PORT": "29092",
           "LIFECERT_PG_PORT": "25432"}
    single = StackConfig.from_env(env)
    assert (single.kafka_brokers, single.kafka_replication, single.kafka_min_insync) == (1, 1, 1)
    cfg = StackConfig.from_env({**env, "LIFECERT_KAFKA_BROKERS": "3"})
    assert [cfg.kafka_node_ports(n) for n in cfg.kafka_nodes] == [
        (29092, 29093), (29094, 29095), (29096, 29097)]
    assert cfg.kafka_bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert cfg.kafka_node_dir(1) == cfg.kafka_dir
    assert cfg.kafka_node_dir(3) == cfg.kafka_dir / "node3"
    assert (cfg.kafka_replication, cfg.kafka_min_insync) == (3, 2)
    props = stack_broker.server_properties(cfg, {"broker": "b", "controller": "c"}, 2)
    assert "node.id=2\n" in props
    assert ("controller.quorum.voters=1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
            in props)
    assert "listeners=CLIENT://127.0.0.1:29094,CONTROLLER://127.0.0.1:29095" in props
    assert f"log.dirs={cfg.kafka_dir / 'node2' / 'kraft-data'}" in props
    assert "default.replication.factor=3\nmin.insync.replicas=2\n" in props
    # the count formatted is recorded: every process then finds the three brokers
    (cfg.kafka_dir).mkdir(parents=True)
    (cfg.kafka_dir / "cluster.nodes").write_text("3\n")
    assert StackConfig.from_env(env).kafka_bootstrap == cfg.kafka_bootstrap


def test_a_cluster_config_refuses_what_cannot_run(tmp_path: Path) -> None:
    env = {"LIFECERT_DATA_DIR": str(tmp_path / "d"), "LIFECERT_KAFKA_PORT": "29092",
           "LIFECERT_PG_PORT": "29096"}
    with pytest.raises(StackError, match=r"stack ports must differ.*node 3"):
        StackConfig.from_env({**env, "LIFECERT_KAFKA_BROKERS": "3"})
    with pytest.raises(StackError, match="LIFECERT_KAFKA_BROKERS=6 is out of range"):
        StackConfig.from_env({**env, "LIFECERT_KAFKA_BROKERS": "6"})
    # a storage formatted for one node refuses three (a KRaft quorum's voters are fixed)
    single = StackConfig.from_env({**env, "LIFECERT_PG_PORT": "25432"})
    (single.kafka_dir / "kraft-data").mkdir(parents=True)
    (single.kafka_dir / "kraft-data" / "meta.properties").write_text("x\n")
    three = dataclasses.replace(single, kafka_brokers=3)
    with pytest.raises(StackError, match=r"formatted for 1 broker\(s\), not 3.*--brokers 3"):
        stack_broker.check_node_count(three)
    stack_broker.check_node_count(single)
