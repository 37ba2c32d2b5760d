"""The shipped benchmarks (``lifecert bench replay | pipeline | face``, ``lifecert api bench``)."""
