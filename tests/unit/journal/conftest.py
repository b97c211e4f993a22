"""Sample journals for the journal tests: ``write`` makes one, ``expected`` says what it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roboframe.journal import ACTIONS, MESSAGE, JournalReader, JournalWriter

HEADER = {
    "robot": "si-trend",
    "run_id": "20260101T000000Z",
    "config_hash": "ab12",
    "config": {"symbols": ["Si-12.26"], "risk": {"max_position": 5}},
    "strategy": {"name": "sma", "version": "1.2", "interface": 1},
    "codec": {"name": "msgpack", "version": 1},
}


def write(path: Path, n: int = 10, header: dict[str, Any] = HEADER, **options: Any) -> Path:
    """Messages 1..n, and an ACTIONS frame after every third one."""
    with JournalWriter(path, header, **options) as writer:
        for seq in range(1, n + 1):
            writer.append_message(seq, 1000 + seq, f"event-{seq}".encode())
            if seq % 3 == 0:
                writer.append_actions(seq, f"actions-{seq}".encode())
    return path


def expected(n: int) -> list[tuple[int, int, int, bytes]]:
    """``(kind, seq, recv_ns, payload)`` of every frame ``write(path, n)`` writes."""
    out = []
    for seq in range(1, n + 1):
        out.append((MESSAGE, seq, 1000 + seq, f"event-{seq}".encode()))
        if seq % 3 == 0:
            out.append((ACTIONS, seq, 0, f"actions-{seq}".encode()))
    return out


def read(path: Path) -> tuple[JournalReader, list[tuple[int, int, int, bytes]]]:
    """The reader (to look at its torn tail afterwards) and every record it returned."""
    reader = JournalReader(path)
    return reader, [(r.kind, r.seq, r.recv_ns, r.payload) for r in reader.records()]
