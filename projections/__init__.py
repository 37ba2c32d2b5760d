"""PostgreSQL read models of the live pipeline (docs/pipeline.md, "Projections").

- :mod:`projections.connection` connects to PostgreSQL.
- :mod:`projections.migrate` applies ``migrations/NNNN_*.sql`` in order, once each.
- :mod:`projections.writer` consumes the status and output topics into the read models,
  rows and consumed offsets in one transaction.
- :mod:`projections.queries` reads them: the export files, campaign counters, the status of
  one retiree.

The read models are a cache of the event log: ``lifecert projections rebuild`` recomputes
them from the topics.
"""
