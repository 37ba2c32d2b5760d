"""The server's deny list: the CA's CRL, checked on every call and re-read when it changes.

Why a CRL file and not a table: the CRL is signed by the CA, so neither the API process nor
anyone who can write its folder or its database can take a certificate off the list or
forge one; revoking needs the CA key, like issuing. It is X.509's own format (``openssl
crl -in ca.crl -text`` reads it) and a server needs nothing beyond the CA certificate it
already trusts to check it.

The list only grows: a server does not start without a CRL it can check (``lifecert pki
init`` writes one), nor on one past its ``nextUpdate``, nor on one with a lower CRL number
than the highest put in force before (kept by ``numbers``, the API's PostgreSQL database:
an old list copied back before a restart). While it runs, a file that disappears, cannot
be read, is not signed by the CA, is past its ``nextUpdate`` or carries a lower CRL number
than the one in force is refused with an error in the log, and the list in force stays.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from lifecert.pki.ca import PkiError, crl_number, identity_of, load_crl, serial_hex

log = logging.getLogger("lifecert.api.crl")  # the server's log


@dataclass(frozen=True)
class _Listed:
    number: int
    revoked: dict[int, datetime]  # serial -> revocation date


class CrlNumbers(Protocol):
    """Where the highest CRL number put in force is kept across restarts, per CA
    (lifecert/api/crlnumbers.py)."""

    def highest(self, ca: str) -> int: ...

    def record(self, ca: str, number: int) -> None: ...


class DenyList:
    """``refusal(cert_pem)``: why that certificate may not call (``None``: it may)."""

    def __init__(self, crl: Path, ca_cert: Path, numbers: CrlNumbers | None = None) -> None:
        self.path = crl
        self.ca_cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self.ca = self.ca_cert.fingerprint(hashes.SHA256()).hex()
        self.numbers = numbers
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) read
        self._listed = _Listed(0, {})
        self._missing_logged = False

    def load(self) -> None:
        """Read the CRL now (start-up); :class:`PkiError` when there is none, it is not
        valid, past its nextUpdate, or older than the highest number put in force before:
        a server must not start with a deny list it cannot trust."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise PkiError(
                f"no CRL at {self.path}: a server does not start without its deny list; "
                "`lifecert pki init` writes one, `lifecert pki revoke` a new one (copy the "
                "CA folder's ca.crl there)"
            ) from None
        crl = load_crl(self.path, self.ca_cert)
        number = crl_number(crl)
        _check_current(crl, self.path)
        floor = self.numbers.highest(self.ca) if self.numbers is not None else 0
        if number < floor:
            raise PkiError(
                f"the CRL {self.path} has number {number}, older than number {floor} put in "
                "force before (an old list copied back would un-revoke certificates); "
                "install the CA's current CRL"
            )
        self._install(crl, _signature(stat))

    def refresh(self) -> None:
        """Re-read the CRL if its file changed (one ``stat`` when it did not)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            if self._listed.number and not self._missing_logged:
                log.error("the CRL %s is gone; the %d revocation(s) read before stay in "
                          "force", self.path, len(self._listed.revoked))
                self._missing_logged = True
            return
        signature = _signature(stat)
        if signature == self._seen:
            return
        self._seen = signature
        try:
            crl = load_crl(self.path, self.ca_cert)
            _check_current(crl, self.path)
        except PkiError as exc:
            log.error("CRL not installed, the one in force (number %d) stays: %s",
                      self._listed.number, exc)
            return
        self._install(crl, signature)

    def _install(self, crl: x509.CertificateRevocationList,
                 signature: tuple[int, int, int]) -> None:
        self._seen = signature
        self._missing_logged = False
        number = crl_number(crl)
        if number < self._listed.number:
            log.error("CRL %s has number %d, older than the one in force (%d): not installed",
                      self.path, number, self._listed.number)
            return
        changed = number != self._listed.number
        self._listed = _Listed(number, {e.serial_number: e.revocation_date_utc for e in crl})
        if changed and self.numbers is not None:
            # Rare (a new CRL) and short: a direct write, even on the serving thread.
            try:
                self.numbers.record(self.ca, number)
            except Exception as exc:  # the database's trouble: in force here all the same
                log.error("CRL number %d in force but not recorded (a restart on an older "
                          "CRL would not be refused): %s", number, type(exc).__name__)
        log.log(logging.WARNING if changed and number > 1 else logging.INFO,
                "CRL number %d in force: %d certificate(s) revoked", number,
                len(self._listed.revoked))

    def refusal(self, cert_pem: bytes) -> str | None:
        self.refresh()
        listed = self._listed
        if not listed.revoked:
            return None
        serial = _serial_of(cert_pem)
        revoked_at = listed.revoked.get(serial)
        if revoked_at is None:
            return None
        try:
            identity = identity_of(cert_pem)
            whose = f" of agency {identity.agency} (role {identity.role})"
        except PkiError:
            whose = ""
        return (f"the client certificate{whose}, serial {serial_hex(serial)}, was revoked on "
                f"{revoked_at:%Y-%m-%d %H:%M} UTC (CRL number {listed.number}); ask the hub's "
                f"operators for a new certificate")


def _check_current(crl: x509.CertificateRevocationList, path: Path) -> None:
    """:class:`PkiError` when ``crl`` is past its nextUpdate: its issuer no longer vouches
    that it lists every revocation."""
    due = crl.next_update_utc
    if due is not None and due <= datetime.now(UTC):
        raise PkiError(
            f"the CRL {path} was due to be replaced on {due:%Y-%m-%d %H:%M} UTC (nextUpdate); "
            "sign a new one on the CA's machine (`lifecert pki revoke`, even of an already "
            "revoked serial) and install it"
        )


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _serial_of(cert_pem: bytes) -> int:
    return x509.load_pem_x509_certificate(cert_pem).serial_number
