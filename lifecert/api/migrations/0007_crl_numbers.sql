-- The highest CRL number each API server has put in force, per CA (lifecert/pki/denylist.py):
-- a server refuses to start on an older CRL, so that a list copied back over the current
-- one (un-revoking certificates) is not accepted across a restart either. Kept here rather
-- than in a file beside the CRL: whoever can copy an old CRL into the server's PKI folder
-- could rewrite such a file too, while the database is another trust domain and is shared
-- by every server (one that restarts learns what the others put in force).
-- Keyed by the CA certificate's SHA-256 fingerprint: a new CA (`pki init --force`) numbers
-- its CRLs from 1 again.
CREATE TABLE api_crl_numbers (
    ca          text        PRIMARY KEY,
    crl_number  numeric     NOT NULL CHECK (crl_number >= 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
