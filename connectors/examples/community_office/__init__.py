"""The worked example of docs/connectors.md: a community office's certification log.

The partner keeps an append-only CSV log file (UTF-8, one certification per line:
``certification_id,retiree_id,performed_at,recorded_at,office``); the connector tails it,
its checkpoint being the byte offset after the last line published."""
