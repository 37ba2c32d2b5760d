"""The connector SDK: write a connector by filling the hooks of
:class:`SourceConnector` or :class:`SinkConnector`; the runner does the rest.
See docs/connectors.md ("Writing a connector")."""

from connectors.sdk.base import (
    Connector,
    Event,
    PartnerRecord,
    Position,
    SinkConnector,
    SinkRecord,
    SourceConnector,
)
from connectors.sdk.errors import (
    ConfigError,
    ConnectorError,
    PartnerUnavailable,
    RecordRejected,
)

__all__ = [
    "ConfigError",
    "Connector",
    "ConnectorError",
    "Event",
    "PartnerRecord",
    "PartnerUnavailable",
    "Position",
    "RecordRejected",
    "SinkConnector",
    "SinkRecord",
    "SourceConnector",
]
