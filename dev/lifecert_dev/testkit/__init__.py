"""The connector test kit: contract tests every connector and its simulator must pass,
against the real broker. A connector's test module subclasses :class:`SourceContract` or
:class:`SinkContract` and provides a harness for its simulator; see docs/connectors.md."""
