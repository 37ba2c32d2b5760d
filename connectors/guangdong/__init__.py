"""The Guangdong provincial cross-region collaboration system (both directions).

- :mod:`.province`: the province's own vocabulary (field names, codes, time format).
- :mod:`.simulator`: the province's HTTP JSON service, a real process
  (``python -m lifecert_dev.partners.guangdong.simulator serve --port P --data-dir D``); its state
  and rules in :mod:`.sim_state`.
- :mod:`.client`: the HTTP client both connectors and the harnesses use.
- :mod:`.mapping`: records <-> events, pure.
- :mod:`.connector`: ``GuangdongSource`` (the certifications feed -> CertificationRecorded)
  and ``GuangdongResultsSink`` (lifecert.assistance-results -> the province).
- :mod:`.harness`: the test kit's harnesses over the simulator.
"""
