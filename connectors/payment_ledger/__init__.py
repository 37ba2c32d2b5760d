"""The payment system: the intake its ledger implements (:mod:`connectors.payment_ledger.
intake`; lifecert-dev simulates it in ``lifecert_dev.partners.payment_ledger.simulator``),
the sink that applies lifecert's payment instructions to it exactly once in effect
(:mod:`connectors.payment_ledger.connector`), and the comparison of what was sent with what
was applied (:mod:`connectors.payment_ledger.reconcile`, ``lifecert reconcile``)."""
