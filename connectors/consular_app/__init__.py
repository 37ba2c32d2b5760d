"""The consular system (China Consular app): signed certification cases of Foshan retirees
living abroad, pulled from an HTTPS feed, for the bureau's review.

- :mod:`.protocol`: the feed, the case payload, its Ed25519 signature, the mapping.
- :mod:`.connector`: ``ConsularAppSource`` (kind ``consular-app``).

The consular system as a real process, and the test kit's harness, are lifecert-dev's
(``python -m lifecert_dev.partners.consular_app.simulator init|push|serve|population``).
"""
