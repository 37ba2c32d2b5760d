"""Macau's Social Security Fund (社會保障基金, Fundo de Segurança Social), both directions.

- :mod:`.ssf`: SSF's protocol (field names, kinds, resident-card check) and the pure mapping.
- :mod:`.connector`: ``MacauSsfSource`` (SSF's communications -> certifications, forms,
  deaths, SSF's assistance requests and receipts) and ``MacauSsfResultsSink`` (Foshan's
  form-3 answers -> SSF).

SSF's service, simulated as a real process, and the test kit's harnesses are lifecert-dev's
(``lifecert_dev.partners.macau_ssf``); docs/partners/macau-ssf.md is the protocol.
"""
