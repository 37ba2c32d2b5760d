"""The partner systems, simulated: one package per connector of :mod:`connectors`, each
with the partner's ``simulator`` (run as a real process) and the connector test kit's
``harness`` over it; :mod:`.systems` runs them all for the demo and the end-to-end test,
:mod:`.playback` cuts a campaign log into what each partner reports."""
