"""The mailroom register: one JSON line per returned paper form, appended by
``lifecert mailroom receive`` and read by the ``mailroom`` connector.

A line (UTF-8, ``\\n`` at the end; keys in any order, no other keys)::

    {"v": 1, "registered_at": "2017-05-05T10:02:11+08:00",
     "certification_id": "C-77120", "agency_id": "CC-ZUMIAO-03", "retiree_id": "FS000104729",
     "form_number": 1, "postmarked_on": "2017-05-02",
     "received_at": "2017-05-05T00:00:00+08:00", "scan_sha256": "<64 hex digits>"}

``agency_id`` (the agency whose stamp is on the form), ``postmarked_on`` (a form handed in
has no postmark) and ``scan_sha256`` may be null. The scan itself lies in the mailroom's
document folder under its SHA-256; the register, the log and the event carry only the hash.
No name, no citizen id number: the form's reference (certification id, agency) and the
pension number identify it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lifecert.events import bounds
from lifecert.events.interchange import MalformedEvent, loads, parse_event
from lifecert.events.time import SHANGHAI, isoformat_local

VERSION = 1
FORMS = {1: "附件1 离退休人员领取基本养老金资格认证表 (assisting agency)",
         2: "附件2 在国外居住人员领取养老金资格稽核表 (consulate)",
         3: "附件3 广东省居住人员在生证明协查表 (Macau beneficiary in Guangdong)",
         4: "附件4 澳门居住人员在生证明协查表 (Macau resident)"}
KEYS = ("v", "registered_at", "certification_id", "agency_id", "retiree_id", "form_number",
        "postmarked_on", "received_at", "scan_sha256")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_LINE = 4096


class RegistrationRefused(ValueError):
    """A registration (or a register line) is not valid: the message names the field."""


@dataclass(frozen=True, slots=True)
class Registration:
    registered_at: datetime
    certification_id: str
    agency_id: str | None
    retiree_id: str
    form_number: int
    postmarked_on: date | None
    received_at: datetime
    scan_sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {"v": VERSION, "registered_at": isoformat_local(self.registered_at),
                "certification_id": self.certification_id, "agency_id": self.agency_id,
                "retiree_id": self.retiree_id, "form_number": self.form_number,
                "postmarked_on": self.postmarked_on.isoformat() if self.postmarked_on else None,
                "received_at": isoformat_local(self.received_at), "scan_sha256": self.scan_sha256}

    def line(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=True, separators=(",", ":")).encode() \
            + b"\n"

    def event(self) -> dict[str, Any]:
        """The CertificationDocumentsReceived it stands for (interchange form)."""
        return {"type": "CertificationDocumentsReceived",
                "recorded_at": isoformat_local(self.registered_at),
                "certification_id": self.certification_id, "retiree_id": self.retiree_id,
                "received_at": isoformat_local(self.received_at), "agency_id": self.agency_id,
                "form_number": self.form_number,
                "postmarked_on": self.postmarked_on.isoformat() if self.postmarked_on else None,
                "scan_sha256": self.scan_sha256}

    @property
    def reference(self) -> tuple[str | None, str]:
        return self.agency_id, self.certification_id


def registration(values: dict[str, Any]) -> Registration:
    """A registration from its JSON values (a register line, or the CLI's arguments),
    checked; raises :class:`RegistrationRefused` naming the field."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise RegistrationRefused(f"unknown key(s) {bounds.show(unknown)}: a register line "
                                  f"has the {len(KEYS)} keys of docs/partners/mailroom.md only "
                                  f"(never a name or an id number)")
    if values.get("v") != VERSION:
        raise RegistrationRefused(f"v: {bounds.show(values.get('v'))} is not register "
                                  f"version {VERSION}")
    form = values.get("form_number")
    if type(form) is not int or form not in FORMS:
        raise RegistrationRefused(f"form_number: {bounds.show(form)} is not a form number "
                                  f"(1-4: {'; '.join(f'{k} {v}' for k, v in FORMS.items())})")
    sha = values.get("scan_sha256")
    if sha is not None and (type(sha) is not str or not SHA256_RE.fullmatch(sha)):
        raise RegistrationRefused(f"scan_sha256: {bounds.show(sha)} is not a SHA-256 (64 "
                                  f"lower-case hex digits)")
    if type(values.get("registered_at")) is not str:
        raise RegistrationRefused("registered_at: missing (an ISO 8601 time with offset)")
    event = {k: values.get(k) for k in ("certification_id", "retiree_id", "agency_id",
                                        "received_at", "postmarked_on", "scan_sha256")}
    try:
        parsed = parse_event({"type": "CertificationDocumentsReceived",
                              "recorded_at": values["registered_at"], "form_number": form,
                              **event}, allowed=("CertificationDocumentsReceived",))
    except MalformedEvent as exc:
        reason = exc.describe().replace("recorded_at", "registered_at")
        raise RegistrationRefused(reason) from None
    reg = Registration(parsed["recorded_at"], parsed["certification_id"], parsed["agency_id"],
                       parsed["retiree_id"], form, parsed["postmarked_on"],
                       parsed["received_at"], sha)
    arrived = reg.received_at.astimezone(SHANGHAI).date()
    if reg.postmarked_on is not None and reg.postmarked_on > arrived:
        raise RegistrationRefused(f"postmarked_on {reg.postmarked_on.isoformat()} is after the "
                                  f"form arrived ({arrived.isoformat()})")
    if reg.received_at > reg.registered_at:
        raise RegistrationRefused(f"received_at {reg.received_at.isoformat()} is after "
                                  f"registered_at {reg.registered_at.isoformat()}: a form is "
                                  f"registered once it arrived")
    return reg


def parse_line(raw: bytes) -> Registration:
    """One register line; raises :class:`RegistrationRefused` naming the field."""
    if len(raw) > MAX_LINE:
        raise RegistrationRefused(f"the line has {len(raw):,} bytes, at most {MAX_LINE:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistrationRefused(f"the line is not UTF-8 ({exc.reason} at byte "
                                  f"{exc.start})") from None
    try:
        values = loads(text)
    except ValueError as exc:
        raise RegistrationRefused(f"the line is not JSON: {bounds.show(str(exc), 120)}") \
            from None
    if not isinstance(values, dict):
        raise RegistrationRefused("the line is not a JSON object")
    return registration(values)


def lines(register: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every complete line of the register."""
    try:
        with register.open("rb") as fh:
            offset = 0
            for line in fh:
                if not line.endswith(b"\n"):
                    return
                yield offset, line
                offset += len(line)
    except FileNotFoundError:
        return


def append(register: Path, reg: Registration, *, again: bool = False) -> int:
    """Append ``reg`` to the register (locked against other clerks, synced to disk);
    returns its byte offset. Refuses a second form for the same reference unless
    ``again``."""
    register.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(register, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not again:
            for offset, line in lines(register):
                try:
                    earlier = parse_line(line)
                except RegistrationRefused:
                    continue
                if earlier.reference == reg.reference and earlier.retiree_id == reg.retiree_id:
                    raise RegistrationRefused(
                        f"the form of certification {reg.certification_id} (agency "
                        f"{reg.agency_id or 'not given'}) was already registered at "
                        f"{earlier.registered_at.isoformat()} (byte {offset} of {register}); "
                        f"use --again to register a second copy")
        offset = os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, reg.line())
        os.fsync(fd)
        return offset
    finally:
        os.close(fd)
