"""lifecert's connectors: the SDK (:mod:`connectors.sdk`), its test kit
(:mod:`lifecert_dev.testkit`), one package per partner system, and a simulator of each
partner system (``connectors/<partner>/simulator.py``), run as a real process by the tests
and the demo."""
