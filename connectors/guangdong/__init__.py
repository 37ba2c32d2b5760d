"""The Guangdong provincial cross-region collaboration system (both directions).

- :mod:`.province`: the province's own vocabulary (field names, codes, time format).
- :mod:`.client`: the HTTP client both connectors and the harnesses use.
- :mod:`.mapping`: records <-> events, pure.
- :mod:`.connector`: ``GuangdongSource`` (the certifications feed -> CertificationRecorded)
  and ``GuangdongResultsSink`` (lifecert.assistance-results -> the province).

The province's HTTP JSON service, simulated as a real process, and the test kit's harnesses
over it are lifecert-dev's (``lifecert_dev.partners.guangdong``: ``python -m
lifecert_dev.partners.guangdong.simulator serve --port P --data-dir D``).
"""
