"""The ministry's off-site retiree system (channel MINISTRY_OFFSITE): nightly GB18030 batch
files dropped into an inbox folder.

- :mod:`.batchfile`: the batch-file and receipt format (the spec a ministry engineer
  implements), reader and writer.
- :mod:`.connector`: ``MinistryOffsiteSource``, the source connector (kind
  ``ministry-offsite``).
- :mod:`.simulator`: the ministry's side as a real process
  (``python -m lifecert_dev.partners.ministry_offsite.simulator drop|serve|receipts``).
- :mod:`.harness`: the test kit's harness around the simulator.
"""
