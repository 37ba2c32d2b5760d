"""The test kit's pytest plugin (entry point ``pytest11``): makes the kit's fixtures
available to any project that installs lifecert, so a connector shipped as its own package
runs the same contract. Override ``connector_kit_bootstrap`` to point at your broker.

The kit's own set-up and checks (topics and their ACLs, reading what the connector wrote,
publishing what a sink delivers) log in to Kafka as the admin, each client by name; the
connector under test runs as ``lifecert connectors run`` and logs in as the ``connector``
principal (docs/kafka-security.md). The plugin sets no process-wide identity: it is loaded
into every test session of a project that installs lifecert."""

from lifecert_dev.testkit.contract import connector_kit_bootstrap

__all__ = ["connector_kit_bootstrap"]
