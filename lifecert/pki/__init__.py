"""The hub's small certificate authority for mutual TLS with partner agencies.

    from lifecert import pki

    paths = pki.PkiPaths.default()                       # data/pki (server), data/pki-ca (CA)
    pki.init(paths, hosts=["localhost", "127.0.0.1"])     # CA + the server's certificate
    cert = pki.issue_for_csr(paths, "MO-SSF", csr_pem, role="MACAU_SSF")  # partner's key
    issued = pki.issue(paths, "MO-SSF", role="MACAU_SSF") # key made here (tests, demos)
    pki.revoke(paths, agency="MO-SSF")                    # into the CRL the server reads
    pki.identity_of(cert_pem)                             # -> Identity("MO-SSF", "MACAU_SSF")
    pki.DenyList(paths.crl, paths.ca_cert).refusal(cert_pem)  # why it may not call, or None

A client certificate names its agency in the subject's organization (O) and its role in
the organizational unit (OU); its subject alternative name carries the same as a URI
``urn:lifecert:agency:AGENCY:role:ROLE``. Keys are ECDSA P-256 (a partner's CSR may
also hold P-384/P-521 or RSA of 3072 bits or more). Offline use: docs/pki.md.
"""

from lifecert.pki.ca import (
    AGENCY_PATTERN,
    Identity,
    Issued,
    PkiError,
    PkiPaths,
    Revoked,
    identity_of,
    init,
    issue,
    issue_for_csr,
    parse_serial,
    revoke,
    serial_hex,
)
from lifecert.pki.denylist import DenyList

__all__ = [
    "AGENCY_PATTERN",
    "DenyList",
    "Identity",
    "Issued",
    "PkiError",
    "PkiPaths",
    "Revoked",
    "identity_of",
    "init",
    "issue",
    "issue_for_csr",
    "parse_serial",
    "revoke",
    "serial_hex",
]
