"""The live pipeline's stream processing: the ``lifecert worker`` faust app.

- :mod:`streams.records` turns raw records of the input log into inputs, clock ticks or
  dead letters, and builds the worker's own records (RetireeStatus, DeadLetter).
- :mod:`streams.partition_state` holds one :class:`~lifecert.domain.campaign.Campaign` per
  partition and says what each record changes (outputs, statuses, table writes).
- :mod:`streams.processor` decides a batch of records and completes it: outputs sent and
  acknowledged, then the states sent to the changelog and acknowledged, then stored.
- :mod:`streams.app` wires that into a faust app: the agent, the decision loop that takes
  batches from it, the state table and sends.
- :mod:`streams.worker` runs the app until SIGTERM/SIGINT (``python -m streams.worker``),
  with the options of :mod:`streams.options`.
"""
