"""The test kit's pytest plugin (entry point ``pytest11``): makes the kit's fixtures
available to any project that installs lifecert, so a connector shipped as its own package
runs the same contract. Override ``connector_kit_bootstrap`` to point at your broker."""

from connectors.testkit.contract import connector_kit_bootstrap

__all__ = ["connector_kit_bootstrap"]
