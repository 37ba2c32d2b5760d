"""The commands lifecert-dev adds to ``lifecert`` (entry-point group ``lifecert.commands``):
``demo``, ``generate``, ``stack`` and ``bench``."""
