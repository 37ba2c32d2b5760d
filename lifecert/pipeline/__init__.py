"""The live pipeline's shared pieces: topic layout and routing (the Kafka adapters live in
``streams/``, ``projections/`` and ``connectors/``)."""
