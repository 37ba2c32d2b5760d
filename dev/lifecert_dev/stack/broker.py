"""The local Apache Kafka broker: a single KRaft node (combined broker + controller) run
from the release's jars, which Maven resolves from Maven Central into the cache folder; or,
with ``StackConfig.kafka_brokers`` > 1 (`lifecert stack up --brokers 3`), a cluster of such
nodes from the same jars, every node a broker and a voter of the controller quorum, with
replication 3 and min.insync.replicas 2 by default (as docker/compose.yaml).
Clients log in with SASL/SCRAM-SHA-512 and the broker authorizes them with the ACLs of
lifecert/pipeline/acls.toml (docs/kafka-security.md).

Layout under ``StackConfig.data_dir``::

    kafka/server.properties   generated from the config on every start (0600: it holds
                              the broker's own passwords)
    kafka/credentials/        <user>.json, a SCRAM user per component and the broker's
                              own (0700 folder, 0600 files), made on the first start
    kafka/log4j2.properties   logging to logs/kafka-server.log
    kafka/cluster.id          the cluster id the storage was formatted with
    kafka/kraft-data/         log.dirs (metadata log and topic partitions)
    kafka/kafka.pid           pid of the running broker
    kafka/cluster.nodes       how many nodes the storage was formatted for
    kafka/node<i>/            node i's server.properties, log4j2.properties, kraft-data/
                              and kafka.pid (nodes 2..n of a cluster; node 1 is kafka/)
    logs/kafka-node<i>/       node i's logs
    logs/kafka-server.log     the broker's log4j2 log
    logs/kafka.out            the JVM's stdout/stderr
    logs/kafka-format.log     output of the storage format (first start only)

and under ``StackConfig.cache_dir``::

    kafka_2.13-<version>/pom.xml, libs/*.jar, maven.log
    maven-repository/         Maven's local repository (instead of ~/.m2)
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecert.endpoints import KAFKA_NODES_FILE, recorded_kafka_brokers
from lifecert.pipeline.credentials import (
    ADMIN,
    BROKER_USERS,
    COMPONENTS,
    MECHANISM,
    local_credentials_dir,
    read_file,
    write_local,
)
from lifecert_dev.stack.stack_config import (
    LOG4J_VERSION,
    SCALA_BINARY_VERSION,
    MissingPrerequisite,
    StackConfig,
    StackError,
    file_lock,
    make_dirs,
    pid_alive,
    pid_cmdline,
    port_open,
    tail,
    wait_until,
)

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
MIN_JAVA = 17
# the dependency plugin Maven 3.8 would pick by default is 2.8 (2013): pin a current one
DEPENDENCY_PLUGIN = "3.8.1"
COMPLETE_MARKER = ".complete"

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ------------------------------------------------------------------------- java, maven
def find_java() -> str:
    """The java launcher: $JAVA_HOME/bin/java when set, else java on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        java = str(Path(java_home) / "bin" / "java")
    else:
        found = shutil.which("java")
        if found is None:
            raise MissingPrerequisite(
                "java not found on PATH (and JAVA_HOME is not set): the Kafka broker needs "
                f"Java {MIN_JAVA} or newer. Install OpenJDK 17 "
                "(apt-get install -y openjdk-17-jre-headless) or put its bin/ on PATH."
            )
        java = found
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise MissingPrerequisite(
            f"{java} is Java {major}; Kafka 4.x needs Java {MIN_JAVA} or newer. Install "
            "OpenJDK 17 (apt-get install -y openjdk-17-jre-headless) and put it first on "
            "PATH, or set JAVA_HOME to it."
        )
    return java


def java_major_version(java: str) -> int:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise MissingPrerequisite(f"cannot run {java}: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise MissingPrerequisite(f"cannot tell the Java version of {java}: {out.stderr!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def find_maven() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise MissingPrerequisite(
            "mvn not found on PATH: the Kafka broker jars are resolved from Maven Central "
            "with Maven on the first start. Install Maven 3 (apt-get install -y maven), or "
            "copy an already filled cache folder and point LIFECERT_CACHE_DIR at it."
        )
    return found


def jars_cached(cfg: StackConfig) -> bool:
    return (cfg.kafka_libs_dir / COMPLETE_MARKER).is_file()


def broker_pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by `lifecert stack up`: resolves the Apache Kafka broker and a log4j2
     binding for its slf4j logging. `mvn dependency:copy-dependencies` copies them to libs/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lifecert_dev.stack</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_BINARY_VERSION}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{DEPENDENCY_PLUGIN}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""


def resolve_jars(cfg: StackConfig, progress: Progress = _quiet) -> Path:
    """The folder of the broker's jars, resolved with Maven once per Kafka version."""
    libs = cfg.kafka_libs_dir
    if jars_cached(cfg):
        return libs
    home = libs.parent
    with file_lock(home.parent / f"{home.name}.lock"):
        if jars_cached(cfg):  # another process resolved them while we waited
            return libs
        mvn = find_maven()
        find_java()  # Maven needs it too; say so clearly rather than through mvn
        make_dirs(home)
        (home / "pom.xml").write_text(broker_pom(cfg.kafka_version))
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log = home / "maven.log"
        progress(
            f"resolving Apache Kafka {cfg.kafka_version} jars with Maven into {libs} "
            f"(first start only; log {log})"
        )
        cmd = [
            mvn,
            "-B",
            "-ntp",
            f"-Dmaven.repo.local={cfg.maven_repo}",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        with log.open("w") as out:
            result = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=home, check=False,
            )
        if result.returncode != 0:
            raise StackError(
                f"Maven could not resolve org.apache.kafka:kafka_{SCALA_BINARY_VERSION}:"
                f"{cfg.kafka_version} (exit {result.returncode}). Check that Maven Central "
                f"is reachable and the version exists. Last lines of {log}:\n{tail(log)}"
            )
        if not any(staging.glob(f"kafka_{SCALA_BINARY_VERSION}-*.jar")):
            raise StackError(f"Maven ran but left no Kafka jar in {staging}; see {log}")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (libs / COMPLETE_MARKER).write_text(f"{cfg.kafka_version}\n")
    return libs


# ------------------------------------------------------------------------- files
def server_properties(cfg: StackConfig, passwords: dict[str, str], node: int = 1) -> str:
    """Node ``node``'s configuration. ``passwords``: user -> password of the broker's own
    identities (``broker``, ``controller``); the file holds them and is written 0600."""
    host = cfg.host
    broker, controller = passwords["broker"], passwords["controller"]
    client_port, controller_port = cfg.kafka_node_ports(node)
    voters = ",".join(f"{n}@{host}:{cfg.kafka_node_ports(n)[1]}" for n in cfg.kafka_nodes)
    rf, isr = cfg.kafka_replication, cfg.kafka_min_insync
    shape = ("Single-node KRaft: this node is both broker and the only controller"
             if cfg.kafka_brokers == 1 else
             f"KRaft cluster of {cfg.kafka_brokers} nodes, each a broker and a controller")
    return f"""# Generated by `lifecert stack up` from StackConfig; edits are overwritten.
# {shape} (static quorum).
process.roles=broker,controller
node.id={node}
controller.quorum.voters={voters}
listeners=CLIENT://{host}:{client_port},CONTROLLER://{host}:{controller_port}
advertised.listeners=CLIENT://{host}:{client_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs={cfg.kafka_node_dir(node) / "kraft-data"}

# Nobody is anonymous (docs/kafka-security.md). Clients authenticate with SASL/SCRAM-SHA-512
# (credentials under credentials/, one principal per component); on loopback without TLS,
# as SCRAM never sends the password. The controller listener takes SASL/PLAIN from the
# broker itself only: KRaft controllers cannot check SCRAM (its credentials live in the
# metadata log they serve). docker/compose.yaml adds TLS (SASL_SSL) on the same scheme.
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.client.sasl.enabled.mechanisms={MECHANISM}
sasl.mechanism.inter.broker.protocol={MECHANISM}
listener.name.client.scram-sha-512.sasl.jaas.config=\
  org.apache.kafka.common.security.scram.ScramLoginModule required \
  username="broker" password="{broker}";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=\
  org.apache.kafka.common.security.plain.PlainLoginModule required \
  username="controller" password="{controller}" user_controller="{controller}";
# Every request is authorized by ACLs (lifecert/pipeline/acls.toml); no ACL, no access.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:controller;User:{ADMIN}

# Topic defaults (docker/compose.yaml uses the same, with replication 3 / min ISR 2, as a
# local cluster of three does; a single broker has 1 / 1).
num.partitions={cfg.kafka_partitions}
default.replication.factor={rf}
min.insync.replicas={isr}
auto.create.topics.enable={str(cfg.kafka_auto_create_topics).lower()}
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
log.retention.hours=-1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
"""


LOG4J2_PROPERTIES = """# Generated by `lifecert stack up`: the broker logs to files only.
status = warn
name = lifecert-kafka
shutdownHook = disable
appender.server.type = RollingFile
appender.server.name = SERVER
appender.server.fileName = ${sys:kafka.logs.dir}/kafka-server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/kafka-server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 5
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = SERVER
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (as
    `kafka-storage.sh random-uuid` prints), never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _files(cfg: StackConfig, node: int = 1) -> dict[str, Path]:
    """Node ``node``'s files; the cluster id, node count and credentials are the
    cluster's, kept in node 1's folder."""
    k, logs = cfg.kafka_node_dir(node), cfg.kafka_node_logs_dir(node)
    return {
        "props": k / "server.properties",
        "log4j": k / "log4j2.properties",
        "cluster_id": cfg.kafka_dir / "cluster.id",
        "nodes": cfg.kafka_dir / KAFKA_NODES_FILE,
        "data": k / "kraft-data",
        "pid": k / "kafka.pid",
        "logs": logs,
        "out": logs / "kafka.out",
        "server_log": logs / "kafka-server.log",
        "format_log": logs / "kafka-format.log",
        "credentials": local_credentials_dir(cfg.kafka_dir),
    }


def check_node_count(cfg: StackConfig) -> None:
    """Refuse a node count other than the one the storage was formatted for: a KRaft
    quorum's voters are fixed at its format (static quorum)."""
    f = _files(cfg)
    if not (f["data"] / "meta.properties").is_file():
        return
    formatted = recorded_kafka_brokers(cfg.data_dir)
    if formatted != cfg.kafka_brokers:
        raise StackError(
            f"the Kafka storage {cfg.kafka_dir} was formatted for {formatted} broker(s), "
            f"not {cfg.kafka_brokers}: a KRaft quorum's voters are fixed when it is formatted. "
            f"Its topics are test and demo data: stop the stack (`lifecert stack down`), "
            f"delete {cfg.kafka_dir} and run `lifecert stack up --brokers "
            f"{cfg.kafka_brokers}`, or keep {formatted} (LIFECERT_KAFKA_BROKERS)."
        )


def write_config(cfg: StackConfig, node: int = 1) -> dict[str, str]:
    """Node ``node``'s server.properties (0600: it holds the broker's own passwords) and
    logging config; the credentials of every user, made on the first start. Returns user
    -> password."""
    f = _files(cfg, node)
    make_dirs(cfg.kafka_dir)
    make_dirs(cfg.kafka_node_dir(node))
    make_dirs(f["logs"])
    formatted = (f["data"] / "meta.properties").is_file()
    if formatted and not (f["credentials"] / "broker.json").is_file():
        raise StackError(
            f"the Kafka storage {f['data']} was formatted before the broker required "
            "SASL/SCRAM logins, so it holds no users. Its topics are test and demo data: "
            f"stop the stack (`lifecert stack down`), delete {cfg.kafka_dir} and run "
            "`lifecert stack up` again, which formats it with a user per component."
        )
    passwords = write_local(f["credentials"], (*BROKER_USERS, *COMPONENTS))
    f["props"].touch(mode=0o600)
    f["props"].chmod(0o600)
    f["props"].write_text(server_properties(cfg, passwords, node))
    f["log4j"].write_text(LOG4J2_PROPERTIES)
    return passwords


def format_command(
    cfg: StackConfig, java: str, libs: Path, argfile: Path, node: int = 1
) -> list[str]:
    """The command line that formats the storage. The SCRAM users and their passwords are
    not on it (a command line is readable by every local user, `ps`): they are in
    ``argfile``, which the java launcher expands (see :func:`write_format_argfile`)."""
    # The launcher expands an @file only before the main class: the file holds the class.
    return [java, *_jvm_logging(cfg, node), "-cp", _classpath(libs), f"@{argfile}"]


def write_format_argfile(
    argfile: Path, cluster_id: str, props: Path, passwords: dict[str, str]
) -> None:
    """The storage tool's main class and arguments, with a SCRAM user for the broker and
    each component, in a 0600 file (deleted once the format has run)."""
    lines = [STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"]
    for user in ("broker", *COMPONENTS):
        lines += ["--add-scram", f"{MECHANISM}=[name={user},password={passwords[user]}]"]
    argfile.unlink(missing_ok=True)
    fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("".join(f'"{line}"\n' for line in lines))


def format_storage(
    cfg: StackConfig, java: str, libs: Path, passwords: dict[str, str], progress: Progress,
    node: int = 1,
) -> None:
    """`kafka-storage.sh format` on the first start (when log.dirs has no meta.properties),
    with a SCRAM user for the broker and each component (``passwords``), passed in a
    private argument file, never on the command line. Every node of a cluster is formatted
    with the same cluster id and users."""
    f = _files(cfg, node)
    if (f["data"] / "meta.properties").is_file():
        return
    if f["cluster_id"].is_file():
        cluster_id = f["cluster_id"].read_text().strip()
    else:
        cluster_id = new_cluster_id()
        f["cluster_id"].write_text(cluster_id + "\n")
    if node == 1:
        f["nodes"].write_text(f"{cfg.kafka_brokers}\n")
    progress(f"formatting Kafka storage {f['data']} (cluster id {cluster_id})")
    argfile = f["credentials"] / f"format-node{node}.args"
    write_format_argfile(argfile, cluster_id, f["props"], passwords)
    try:
        with f["format_log"].open("w") as out:
            result = subprocess.run(
                format_command(cfg, java, libs, argfile, node), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
            )
    finally:
        argfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(
            f"formatting the Kafka storage failed (exit {result.returncode}); "
            f"{f['format_log']}:\n{tail(f['format_log'])}"
        )


def _classpath(libs: Path) -> str:
    return str(libs / "*")


def _jvm_logging(cfg: StackConfig, node: int = 1) -> list[str]:
    f = _files(cfg, node)
    return [f"-Dlog4j2.configurationFile={f['log4j']}", f"-Dkafka.logs.dir={f['logs']}"]


# ------------------------------------------------------------------------- process
@dataclass(frozen=True)
class KafkaState:
    running: bool  # a node of ours runs (all of them: see ``pids``)
    pid: int | None  # node 1's
    ready: bool  # every node runs and the cluster lists every broker
    bootstrap: str
    version: str
    log: Path
    pids: tuple[int | None, ...] = ()  # node 1 first


def _running_pid(cfg: StackConfig, node: int = 1) -> int | None:
    """The pid from node ``node``'s pid file when that process is alive and is our broker."""
    f = _files(cfg, node)
    try:
        pid = int(f["pid"].read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    cmdline = pid_cmdline(pid)
    if MAIN_CLASS in cmdline and str(f["props"]) in cmdline:
        return pid
    return None  # pid reused by another process: the pid file is stale


def status(cfg: StackConfig) -> KafkaState:
    pids = tuple(_running_pid(cfg, node) for node in cfg.kafka_nodes)
    ready = all(pids) and metadata_ready(cfg)
    return KafkaState(
        running=any(pids),
        pid=pids[0],
        ready=ready,
        bootstrap=cfg.kafka_bootstrap,
        version=cfg.kafka_version,
        log=_files(cfg)["server_log"],
        pids=pids,
    )


def preflight(cfg: StackConfig) -> str:
    """Check what a start needs before anything is started: returns the java launcher."""
    java = find_java()
    if not jars_cached(cfg):
        find_maven()
    return java


def start(cfg: StackConfig, progress: Progress = _quiet) -> KafkaState:
    """Start every node that does not run; return once the cluster answers a metadata
    request listing every broker."""
    return wait_ready(cfg, launch(cfg, progress))


def launch(cfg: StackConfig, progress: Progress = _quiet) -> list[int]:
    """Start every node that does not run (resolving the jars and formatting the storage
    on the first start) without waiting for them: returns their pids, node 1 first. See
    :func:`wait_ready`."""
    check_node_count(cfg)
    return [launch_node(cfg, node, progress) for node in cfg.kafka_nodes]


def launch_node(cfg: StackConfig, node: int, progress: Progress = _quiet) -> int:
    """Start node ``node`` unless it runs; returns its pid."""
    f = _files(cfg, node)
    pid = _running_pid(cfg, node)
    if pid is not None:
        if not (f["credentials"] / f"{ADMIN}.json").is_file():
            raise StackError(
                f"the running Kafka broker (pid {pid}) was started before the broker "
                "required SASL/SCRAM logins and its storage holds no users. Its topics are "
                f"test and demo data: run `lifecert stack down`, delete {cfg.kafka_dir} and "
                "run `lifecert stack up` again."
            )
        return pid
    java = preflight(cfg)
    for port in cfg.kafka_node_ports(node):
        if port_open(cfg.host, port):
            raise StackError(
                f"port {port} on {cfg.host} is already in use by a process that is not this "
                f"stack's broker: stop it, or choose other ports with LIFECERT_KAFKA_PORT / "
                "LIFECERT_KAFKA_CONTROLLER_PORT"
            )
    libs = resolve_jars(cfg, progress)
    passwords = write_config(cfg, node)
    format_storage(cfg, java, libs, passwords, progress, node)
    cmd = [
        java,
        "-server",
        f"-Xmx{cfg.kafka_heap}",
        "-Xms256m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        *_jvm_logging(cfg, node),
        "-cp",
        _classpath(libs),
        MAIN_CLASS,
        str(f["props"]),
    ]
    where = f"{cfg.host}:{cfg.kafka_node_ports(node)[0]}"
    progress(f"starting Kafka {cfg.kafka_version} on {where}"
             + (f" (node {node} of {cfg.kafka_brokers})" if cfg.kafka_brokers > 1 else ""))
    with f["out"].open("a") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n")
    pid = spawn_detached(cmd, f["out"], cfg.kafka_node_dir(node))
    f["pid"].write_text(f"{pid}\n")
    return pid


def wait_ready(cfg: StackConfig, pids: list[int]) -> KafkaState:
    """Wait until the cluster of ``pids`` (node 1 first) answers a metadata request listing
    every broker; stop it and raise when a node exits or it does not answer within
    ``cfg.start_timeout``."""

    def ready() -> bool:
        for node, pid in zip(cfg.kafka_nodes, pids, strict=True):
            if not pid_alive(pid):
                f = _files(cfg, node)
                raise StackError(
                    f"the Kafka broker (node {node}) exited during start-up.\n{f['out']}:\n"
                    f"{tail(f['out'], 10)}\n{f['server_log']}:\n{tail(f['server_log'])}"
                )
        return metadata_ready(cfg)

    if not wait_until(ready, cfg.start_timeout, interval=0.25):
        stop(cfg)
        raise StackError(
            f"Kafka did not answer on {cfg.kafka_bootstrap} within {cfg.start_timeout:.0f} s "
            f"(LIFECERT_STACK_TIMEOUT); see {_files(cfg)['server_log']}:\n"
            f"{tail(_files(cfg)['server_log'])}"
        )
    return status(cfg)


def add_missing_users(client: Any, cfg: StackConfig) -> list[str]:
    """A SCRAM user on the broker for each component that has none: the storage was
    formatted with the components of its day, and a component added since (``reader``)
    would otherwise need the storage deleted. Its password is made beside the others'
    (0600) when it has none. Returns the users added."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    passwords = write_local(_files(cfg)["credentials"], COMPONENTS)
    known = client.describe_user_scram_credentials()
    missing = [c for c in COMPONENTS
               if not (known.get(c) or {}).get("credential_infos")]
    if not missing:
        return []
    mechanism = ScramMechanism[MECHANISM.replace("-", "_")]
    errors = client.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(c, mechanism, passwords[c]) for c in missing])
    failed = {user: why for user, why in errors.items() if why}
    if failed:
        raise StackError(f"could not add the broker users {sorted(failed)}: {failed}")
    return missing


def apply_default_acls(cfg: StackConfig) -> None:
    """The ACLs of lifecert/pipeline/acls.toml on the topics of the default layout
    (``LIFECERT_TOPIC_PREFIX``, else none), as the admin; `lifecert topics create --prefix`
    makes those of other layouts."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    from lifecert.pipeline import acls
    from lifecert.pipeline.broker_errors import KafkaUnavailable
    from lifecert.pipeline.topics import layout

    try:
        client = KafkaAdminClient(**_admin_settings(cfg, cfg.start_timeout))
        try:
            add_missing_users(client, cfg)
            acls.apply(client, layout())
            acls.prune(client, layout())
        finally:
            client.close()
    except (KafkaError, KafkaUnavailable, OSError) as exc:
        raise StackError(f"could not create the broker's ACLs: {exc}") from None


def stop(cfg: StackConfig, timeout: float = 60.0) -> bool:
    """Stop every node: SIGTERM (controlled shutdown), SIGKILL after ``timeout`` seconds;
    the last node first, so that node 1 (the bootstrap of one-node clients) goes last.
    Returns whether a node was running."""
    stopped = [stop_node(cfg, node, timeout=timeout) for node in reversed(cfg.kafka_nodes)]
    return any(stopped)


def stop_node(cfg: StackConfig, node: int, sig: int = signal.SIGTERM,
              timeout: float = 60.0) -> bool:
    """Stop node ``node`` with ``sig`` (SIGKILL: a crash, as the fault tests do), SIGKILL
    after ``timeout`` seconds. Returns whether it was running."""
    f = _files(cfg, node)
    pid = _running_pid(cfg, node)
    if pid is None:
        f["pid"].unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    if not wait_until(lambda: not pid_alive(pid), timeout, interval=0.2):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10)
    f["pid"].unlink(missing_ok=True)
    return True


def spawn_detached(cmd: list[str], log: Path, cwd: Path) -> int:
    """Start ``cmd`` as a daemon: in its own session, re-parented to init (so it never
    lingers as a zombie of a long-lived caller such as pytest), output appended to ``log``.
    Returns its pid."""
    script = 'cd "$1" || exit 1; log=$2; shift 2; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    result = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(cwd), str(log), *cmd],
        capture_output=True, text=True, start_new_session=True, check=False,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise StackError(f"could not start {cmd[0]}: {result.stderr.strip()}")
    return int(result.stdout.strip())


# ------------------------------------------------------------------------- protocol
def _admin_settings(cfg: StackConfig, timeout: float) -> dict[str, object]:
    """kafka-python settings of an admin client of this stack's broker, logged in with
    the admin's credentials of this stack (whatever the environment says)."""
    from lifecert.pipeline.broker_clients import ClientSecurity

    admin = read_file(_files(cfg)["credentials"] / f"{ADMIN}.json", ADMIN)
    # The stack's own listener (SASL_PLAINTEXT on its loopback host), not the environment's
    # protocol or CA, which are those of the broker the environment names.
    security = ClientSecurity(ADMIN, admin.username, admin.password, "SASL_PLAINTEXT")
    return {
        "bootstrap_servers": cfg.kafka_bootstrap, "client_id": "lifecert-stack",
        **security.kafka_python(),
        "request_timeout_ms": int(timeout * 1000), "bootstrap_timeout_ms": int(timeout * 1000),
    }


def metadata_ready(cfg: StackConfig, timeout: float = 3.0) -> bool:
    """True when the broker lets the admin log in and lists at least one broker (in KRaft
    a broker lists itself only once the controller has unfenced it): every broker of a
    cluster."""
    if not any(port_open(cfg.host, cfg.kafka_node_ports(n)[0]) for n in cfg.kafka_nodes):
        return False
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    if not (_files(cfg)["credentials"] / f"{ADMIN}.json").is_file():
        return False
    try:
        client = KafkaAdminClient(**_admin_settings(cfg, timeout))
    except (KafkaError, OSError):
        return False
    try:
        return len(client.describe_cluster().get("brokers") or ()) >= cfg.kafka_brokers
    except (KafkaError, OSError):
        return False
    finally:
        client.close()
