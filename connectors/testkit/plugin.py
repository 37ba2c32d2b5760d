"""The test kit's pytest plugin (entry point ``pytest11``): makes the kit's fixtures
available to any project that installs lifecert, so a connector shipped as its own package
runs the same contract. Override ``connector_kit_bootstrap`` to point at your broker.

The kit's own set-up and checks (topics and their ACLs, reading what the connector wrote)
log in to Kafka as the admin; the connector under test runs as ``lifecert connectors run``
and logs in as the ``connector`` principal (docs/kafka-security.md)."""

from connectors.testkit.contract import connector_kit_bootstrap
from lifecert.pipeline.credentials import ADMIN, set_process_component

set_process_component(ADMIN)

__all__ = ["connector_kit_bootstrap"]
