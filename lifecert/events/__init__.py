"""Canonical events: Avro schemas, the catalogue derived from them, the JSON interchange
form and the single-object codec.

In memory an event is a plain ``dict`` (see :mod:`lifecert.events.catalogue`): the flat
interchange fields with values converted to Python types (``date``, aware ``datetime``,
``int``, ``bool``, ``str``, ``None``; months stay ``"YYYY-MM"`` strings).
"""
