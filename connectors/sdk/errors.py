"""The errors a connector raises to tell the runner what happened.

- :class:`PartnerUnavailable`: the partner system is down or answered an error that may
  pass (timeouts, HTTP 5xx, a lost database connection). The runner retries the same step
  with exponential backoff and jitter, for ever, counting retries in the metrics.
- :class:`RecordRejected`: this one record cannot become an event (or, for a sink, the
  partner refused it for good). The runner writes it to the dead-letter topic with its
  raw bytes, the connector, its position and ``reason``, and goes on with the next.
- :class:`ConfigError`: the connector's settings are wrong; the message names the file
  and the key. The runner stops with exit code 2.
Anything else is a bug in the connector: the runner logs it and stops (exit code 1),
without committing the batch it was in, so a restart reads it again.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of the errors of the connector SDK."""


class ConfigError(ConnectorError):
    """A connector's configuration is wrong (the message says where and what to do)."""


class PartnerUnavailable(ConnectorError):
    """The partner system cannot be reached or answered a transient error: retry later."""


class RecordRejected(ConnectorError):
    """One record cannot be turned into an event (source) or applied (sink)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
