"""The ministry's off-site retiree system (channel MINISTRY_OFFSITE): nightly GB18030 batch
files dropped into an inbox folder.

- :mod:`.batchfile`: the batch-file and receipt format (the spec a ministry engineer
  implements), reader and writer.
- :mod:`.connector`: ``MinistryOffsiteSource``, the source connector (kind
  ``ministry-offsite``).

The ministry's side as a real process, and the test kit's harness around it, are
lifecert-dev's (``python -m lifecert_dev.partners.ministry_offsite.simulator
drop|serve|receipts``).
"""
