"""The Hong Kong assisting bodies (channel HK_AGENCY): UTF-8 (BOM) batch files dropped into
an inbox folder, answered with a receipt per file.

- :mod:`.batchfile`: the batch-file and receipt format (the spec a body's IT staff
  implement), reader and writer.
- :mod:`.connector`: ``HkAssistSource``, the source connector (kind ``hk-assist``).

The bodies' side as a real process, and the test kit's harness, are lifecert-dev's
(``python -m lifecert_dev.partners.hk_assist.simulator drop|serve|receipts``).
"""
