"""Per-connector metrics, served in Prometheus' text format.

``lifecert_connector_records_in_total``   records read (from the partner, or the topic)
``lifecert_connector_published_total``    events published (sources) / records applied (sinks)
``lifecert_connector_dead_lettered_total`` records sent to the dead-letter topic
``lifecert_connector_retries_total``      transient failures retried
``lifecert_connector_lag``                records known to wait (partner backlog, or topic lag)
``lifecert_connector_last_commit_timestamp_seconds``  when the last checkpoint was committed
All carry the label ``connector`` (the instance name) and ``kind``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


@dataclass
class ConnectorMetrics:
    records_in: Counter
    published: Counter
    dead_lettered: Counter
    retries: Counter
    lag: Gauge
    last_commit: Gauge

    @classmethod
    def create(cls, name: str, kind: str, registry: CollectorRegistry) -> ConnectorMetrics:
        labels = {"connector": name, "kind": kind}

        def counter(metric: str, doc: str) -> Counter:
            return Counter(metric, doc, list(labels), registry=registry).labels(**labels)

        def gauge(metric: str, doc: str) -> Gauge:
            return Gauge(metric, doc, list(labels), registry=registry).labels(**labels)

        return cls(
            records_in=counter("lifecert_connector_records_in",
                               "Records read from the partner system or the topic."),
            published=counter("lifecert_connector_published",
                              "Events published (source) or records applied (sink)."),
            dead_lettered=counter("lifecert_connector_dead_lettered",
                                  "Records sent to the dead-letter topic."),
            retries=counter("lifecert_connector_retries", "Transient failures retried."),
            lag=gauge("lifecert_connector_lag", "Records known to be waiting."),
            last_commit=gauge("lifecert_connector_last_commit_timestamp_seconds",
                              "Unix time of the last checkpoint commit."),
        )

    def committed(self) -> None:
        self.last_commit.set(time.time())


def serve(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> int:
    """Serve ``registry`` on http://HOST:PORT/metrics (port 0: any free one); the port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)
