"""lifecert's connectors: the SDK (:mod:`connectors.sdk`) and one package per partner system
(its connector, mapping and the contracts the partner implements). A simulator of each
partner system and the connector test kit are lifecert-dev's
(``lifecert_dev.partners``, ``lifecert_dev.testkit``), run as real processes by the tests
and the demo."""
