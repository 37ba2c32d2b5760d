"""Sub-commands of the ``lifecert`` command line, one module each."""
