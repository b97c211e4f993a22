"""The journal: every inbound event of a run, and what the robot did about it.

See :mod:`roboframe.journal.format` for the byte layout and ``docs/journal.md``
for the guarantees.
"""

from roboframe.journal.format import ACTIONS, FORMAT_VERSION, MESSAGE, NOTE
from roboframe.journal.reader import JournalReader, Record, TornTail, read_header, recover
from roboframe.journal.writer import JournalWriter

__all__ = [
    "ACTIONS",
    "FORMAT_VERSION",
    "MESSAGE",
    "NOTE",
    "JournalReader",
    "JournalWriter",
    "Record",
    "TornTail",
    "read_header",
    "recover",
]
