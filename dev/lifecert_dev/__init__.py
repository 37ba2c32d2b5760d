"""lifecert-dev: what lifecert's developers, its tests and its demo use, and a bureau does
not run: the partner simulators and their test-kit harnesses (:mod:`lifecert_dev.partners`),
the connector test kit (:mod:`lifecert_dev.testkit`), the campaign generator
(:mod:`lifecert_dev.generate`), the local Kafka broker and PostgreSQL
(:mod:`lifecert_dev.stack`), the live run of the demo and the end-to-end tests
(:mod:`lifecert_dev.live`), the benchmarks (:mod:`lifecert_dev.bench`) and the commands
that drive them (``lifecert demo | generate | stack | bench``, plug-ins of the ``lifecert``
command)."""
