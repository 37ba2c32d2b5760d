"""Building and running a connector instance from the configuration file: what
``lifecert connectors run`` and ``check`` do, importable for embedding."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry

from connectors.sdk import registry
from connectors.sdk.base import Connector, SinkConnector
from connectors.sdk.config_file import ConnectorsConfig, InstanceConfig
from connectors.sdk.metrics import ConnectorMetrics, serve
from connectors.sdk.runner import runner_for
from lifecert.endpoints import kafka_bootstrap
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import TopicLayout, layout

log = logging.getLogger("lifecert.connectors")


@dataclass
class Built:
    instance: InstanceConfig
    connector: Connector
    bootstrap: str
    layout: TopicLayout


def build(config: ConnectorsConfig, name: str, *, bootstrap: str | None = None,
          topic_prefix: str | None = None) -> Built:
    """The connector instance ``name``: its class loaded through the entry points and
    configured (raises ConfigError with the file and key at fault)."""
    instance = config.instance(name)
    cls = registry.load(instance.kind)
    connector = cls(name, instance.settings)
    prefix = topic_prefix if topic_prefix is not None else config.topic_prefix
    return Built(instance, connector,
                 kafka_bootstrap(bootstrap or config.bootstrap), layout(prefix))


def run(built: Built, *, metrics_port: int | None = None) -> None:
    """Run until SIGTERM or SIGINT, then finish the current batch and return."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: %s received, stopping after the current batch", built.instance.name,
                 signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    registry_ = CollectorRegistry()
    metrics = ConnectorMetrics.create(built.instance.name, built.instance.kind, registry_)
    if metrics_port is not None:
        port = serve(registry_, metrics_port)
        log.info("%s: metrics on http://127.0.0.1:%d/metrics", built.instance.name, port)
    runner = runner_for(built.connector, built.instance, bootstrap=built.bootstrap,
                        layout=built.layout, metrics=metrics, stop=stop)
    runner.run()


def check(built: Built) -> list[str]:
    """What would stop the instance working: the broker, its topics, the partner."""
    problems: list[str] = []
    roles = ["events", "dead_letters", "connector_checkpoints", "connector_status"]
    if isinstance(built.connector, SinkConnector):
        roles += list(built.connector.topics)
    try:
        with broker_clients.admin_client(built.bootstrap) as admin:
            states = broker_clients.describe_topics(admin, built.layout)
        for state in states:
            if state.spec.role in roles:
                problems += state.problems
    except broker_errors.KafkaUnavailable as exc:
        problems.append(str(exc))
    problems += built.connector._check()
    return problems
