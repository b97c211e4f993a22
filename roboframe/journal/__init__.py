"""The journal: every inbound event of a run, and what the robot did about it.

Write with :class:`JournalWriter` (a new file per run; :meth:`JournalWriter.open_append`
continues one after a crash), read with :class:`JournalReader`, cut a torn
tail with :func:`recover`. :mod:`roboframe.journal.format` documents the
bytes; ``docs/journal.md`` the guarantees.
"""

from __future__ import annotations

from roboframe.journal.format import ACTIONS, FORMAT_VERSION, KIND_NAMES, MESSAGE, NOTE
from roboframe.journal.reader import JournalReader, Record, TornTail, read_header, recover
from roboframe.journal.writer import JournalWriter

__all__ = [
    "ACTIONS",
    "FORMAT_VERSION",
    "KIND_NAMES",
    "MESSAGE",
    "NOTE",
    "JournalReader",
    "JournalWriter",
    "Record",
    "TornTail",
    "read_header",
    "recover",
]
