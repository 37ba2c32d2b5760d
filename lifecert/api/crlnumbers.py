"""The highest CRL number in force, per CA, in the API's PostgreSQL database (migration
0007): what :class:`lifecert.pki.denylist.DenyList` refuses to go below across restarts."""

from __future__ import annotations

from lifecert.api.db import connect


class PostgresCrlNumbers:
    """``highest(ca)`` and ``record(ca, number)`` on ``api_crl_numbers`` (a short
    connection each: called at start and when a new CRL is installed)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def highest(self, ca: str) -> int:
        conn = connect(self.dsn, "lifecert-api-crl")
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT crl_number FROM api_crl_numbers WHERE ca = %s", (ca,))
                row = cur.fetchone()
                return int(row[0]) if row else 0
        finally:
            conn.close()

    def record(self, ca: str, number: int) -> None:
        conn = connect(self.dsn, "lifecert-api-crl")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO api_crl_numbers AS n (ca, crl_number) VALUES (%s, %s) "
                    "ON CONFLICT (ca) DO UPDATE SET crl_number = "
                    "greatest(n.crl_number, excluded.crl_number), recorded_at = now()",
                    (ca, number),
                )
        finally:
            conn.close()
