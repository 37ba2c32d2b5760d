"""Source connector for the Hong Kong assisting bodies (channel HK_AGENCY).

The Federation of Trade Unions and the district offices drop batch files (format:
:mod:`connectors.hk_assist.batchfile`, UTF-8 with BOM) into an inbox folder of the exchange
share; each certification becomes a CertificationRecorded with channel HK_AGENCY whose
certification id is the form reference (the paper form mailed later is matched by it), and
each file gets a receipt. Settings and folders are those of the ministry's connector
(:mod:`connectors.ministry_offsite.connector`, whose design this follows)::

    inbox               required: the drop folder; missing = PartnerUnavailable, retried
    receipts            our answer per batch (default: ``receipts`` beside the inbox)
    archive             ours (default: ``archive`` beside the inbox): processing/, done/,
                        refused/ (the memory of names received: never empty them)
    scan_interval       seconds between scans of an empty inbox (default 1)
    max_file_bytes      the largest batch file read (default 32 MiB)
    agency              required: the assisting body whose exchange account writes into
                        this inbox (one inbox, one account, one instance per body)

The certifying agency is the configured ``agency``, never what a file asserts: a line whose
協助機構代碼 names another agency is rejected (a dead letter with its line and reason, REJECTED
on the receipt), as a body can only report its own certifications.

A file delivered twice has one effect: a name found in done/ again, byte for byte the same
file, is a duplicate: moved to done/ as ``<stem>.redrop-<k>.csv`` with a DUPLICATE receipt,
nothing published and nothing dead-lettered. A different file under a used name is refused
as a whole (one dead letter, a REFUSED receipt). Within a batch, a malformed line is a dead
letter with its line, field and reason, and the other lines flow on; the receipt lists
every line as ACCEPTED or REJECTED with its reason.
"""
from __future__ import annotations

import re
from types import ModuleType
from typing import Any, ClassVar

from connectors.hk_assist import batchfile as bf
from connectors.sdk.base import Event
from connectors.sdk.errors import ConfigError, RecordRejected
from connectors.sdk.inbox import NamedBatchInbox
from connectors.sdk.inbox import map_line as _map_line
from lifecert.events import bounds

CHANNEL = "HK_AGENCY"
_REDROP_RE = re.compile(r"(HKASSIST_[0-9A-Za-z-]{1,40})\.redrop-([1-9][0-9]{0,8})\.csv")
MAX_FILE_BYTES = 32 * 1024 * 1024


def map_line(line: bf.Line) -> Event:
    """The event of one record line. Raises RecordRejected naming the line and field."""
    return _map_line(bf, CHANNEL, line)


class HkAssistSource(NamedBatchInbox):
    kind = "hk-assist"
    description = ("Hong Kong assisting bodies (FTU, district offices): UTF-8 (BOM) CSV "
                   "batches from an inbox folder, with a receipt per batch")
    source_agency = "HK-ASSIST"
    fmt: ClassVar[ModuleType] = bf
    channel = CHANNEL
    name_hint = "HKASSIST_<batch id>.csv"
    sender = "the body"
    redrop_re = _REDROP_RE
    duplicates_by_content = True
    hong_kong_ids = True
    default_max_file_bytes = MAX_FILE_BYTES

    def _configure(self, settings: dict[str, Any]) -> None:
        super()._configure(settings)
        self.agency = self._setting(settings, "agency", str)
        pattern, expected = bounds.ID_FIELDS["agency_id"]
        if not pattern.fullmatch(self.agency):
            raise ConfigError(f"connector {self.name!r} ({self.kind}): agency "
                              f"{self.agency!r} is not an agency id ({expected}); set it to "
                              "the body whose exchange account writes into the inbox")

    def map_line(self, line: bf.Line) -> Event:
        """The event of one line, whose agency is this inbox's body. Raises RecordRejected
        for a line naming another agency."""
        event = map_line(line)
        if event["agency_id"] != self.agency:
            raise RecordRejected(
                f"line {line.number}, field 協助機構代碼 (agency_id): names agency "
                f"{bf.show_name(str(event['agency_id']))} but this inbox is {self.agency}'s; "
                f"a body reports only its own certifications (another body sends its "
                f"own file from its own account); {bf.FIX}")
        return event
