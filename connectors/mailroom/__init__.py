"""The bureau's mailroom: returned paper forms (forms 1-4) registered by staff into the
mailroom register, published as CertificationDocumentsReceived. See
docs/partners/mailroom.md."""
