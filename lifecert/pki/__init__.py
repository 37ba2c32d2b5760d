"""The hub's small certificate authority for mutual TLS with partner agencies.

    from lifecert import pki

    paths = pki.PkiPaths.default()                       # $LIFECERT_PKI_DIR or data/pki
    pki.init(paths, hosts=["localhost", "127.0.0.1"])     # CA + the server's certificate
    issued = pki.issue(paths, "MO-SSF", role="MACAU_SSF") # a client key + certificate
    pki.identity_of(cert_pem)                             # -> Identity("MO-SSF", "MACAU_SSF")

A client certificate names its agency in the subject's organization (O) and its role in
the organizational unit (OU); its subject alternative name carries the same as a URI
``urn:lifecert:agency:AGENCY:role:ROLE``. Keys are ECDSA P-256.
"""

from lifecert.pki.ca import (
    AGENCY_PATTERN,
    Identity,
    Issued,
    PkiError,
    PkiPaths,
    identity_of,
    init,
    issue,
)

__all__ = [
    "AGENCY_PATTERN",
    "Identity",
    "Issued",
    "PkiError",
    "PkiPaths",
    "identity_of",
    "init",
    "issue",
]
