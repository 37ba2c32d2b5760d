"""Source connector for the ministry's off-site retiree system (channel MINISTRY_OFFSITE).

The ministry drops nightly batch files (format: :mod:`connectors.ministry_offsite.batchfile`)
into an inbox folder of the exchange share. Settings and folders::

    inbox               required: the ministry's drop folder. A missing inbox (the share
                        is not mounted) is PartnerUnavailable, retried; never "no files"
    receipts            our answer per batch (default: ``receipts`` beside the inbox)
    archive             ours (default: ``archive`` beside the inbox), holding
      processing/       the one batch being published,
      done/             batches fully published,
      refused/          batches refused as a whole; done/ and refused/ are the memory of
                        used names, never empty them
    scan_interval       seconds between scans of an empty inbox (default 1)
    max_file_bytes      the largest batch file read (default 32 MiB, some 200,000 records);
                        a larger one is refused as a whole, unread

Only a regular file whose name is a batch file name, whole, is read: a symbolic link, a
FIFO, a device or a socket under such a name is claimed and refused as a whole unread
(its receipt and dead letter say what it was), as is a file over ``max_file_bytes``; a
folder under such a name, and any entry with another name (a ``.part`` being written, a
name with anything before or after the pattern), is left in the inbox, with a warning
logged once. The file is checked again when it is opened (``O_NOFOLLOW``, then ``fstat``),
so a link swapped in meanwhile is refused too.

A batch goes inbox -> processing (claimed, in name order, one at a time) -> done or
refused, after its receipt is written. A name found in done/ or refused/ again is a
re-drop: it is claimed as ``<stem>.redrop-<k>.csv`` and refused unread. Keep the archive on
the inbox's file system: the claim is then an atomic rename (across file systems it is
copy-then-delete, and a crash in between leaves the inbox copy, later refused as a
re-drop).

Records and positions: each record line is one PartnerRecord with key ``<claim>:<line>``
and position ``{"file": <claim>, "line": <line>}``; a restart resumes after the line of the
checkpoint. A batch refused as a whole is ONE record with key ``<claim>``, position
``{"file": <claim>, "refused": true}`` and raw bytes the whole file (the runner keeps the
first 256 KiB); its ``_to_events`` raises RecordRejected, so it becomes one dead letter
whose reason says why the batch was refused, where the file and its receipt are, and what
the ministry must do. None of its lines is published. In every record's raw bytes a
citizen id number sent by mistake is masked, so it never reaches the dead-letter topic.

The receipt is made from the file itself when the batch is finished (each line mapped
again, which is deterministic), so it is complete even when the batch was published over
several runs; writing it and moving the file are idempotent, and a batch whose last line is
in the checkpoint but which is still in processing/ (a crash before ``_committed``) is
finished by the next ``_poll``.
"""
from __future__ import annotations

import re
from types import ModuleType
from typing import ClassVar

from connectors.ministry_offsite import batchfile as bf
from connectors.sdk.base import Event
from connectors.sdk.inbox import NamedBatchInbox
from connectors.sdk.inbox import map_line as _map_line

CHANNEL = "MINISTRY_OFFSITE"
_REDROP_RE = re.compile(r"(MOHRSS_440600_[0-9A-Za-z-]{1,40})\.redrop-([1-9][0-9]{0,8})\.csv")
MAX_FILE_BYTES = 32 * 1024 * 1024


def map_line(line: bf.Line) -> Event:
    """The event of one record line. Raises RecordRejected naming the line and field."""
    return _map_line(bf, CHANNEL, line)


class MinistryOffsiteSource(NamedBatchInbox):
    kind = "ministry-offsite"
    description = ("Ministry off-site retiree system: nightly GB18030 CSV batches from an "
                   "inbox folder, with a receipt per batch")
    source_agency = "MOHRSS-OFFSITE"
    fmt: ClassVar[ModuleType] = bf
    channel = CHANNEL
    name_hint = "MOHRSS_440600_<batch id>.csv"
    sender = "the ministry"
    redrop_re = _REDROP_RE
    duplicates_by_content = False
    default_max_file_bytes = MAX_FILE_BYTES
