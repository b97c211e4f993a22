"""Reading a journal: streaming, checked, torn tails detected and cut."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from roboframe.errors import JournalError
from roboframe.journal.format import (
    CRC_PART,
    FILE_HEAD,
    FORMAT_VERSION,
    FRAME_HEAD,
    MAGIC,
    MAX_PAYLOAD,
)

_CHUNK = 1 << 20


class Record(NamedTuple):
    kind: int
    seq: int
    recv_ns: int
    payload: bytes
    offset: int  # byte offset of the frame in the file


class TornTail(NamedTuple):
    offset: int  # where the last good frame ends
    size: int  # bytes after it
    why: str


def read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """``(header, format_version, offset of the first frame)``."""
    try:
        with open(path, "rb") as f:
            head = f.read(FILE_HEAD.size)
            if not head:
                raise JournalError(f"{path}: empty file, not a journal")
            if len(head) < FILE_HEAD.size:
                raise JournalError(f"{path}: truncated header ({len(head)} bytes), not a journal")
            magic, version, length, crc = FILE_HEAD.unpack(head)
            if magic != MAGIC:
                raise JournalError(f"{path}: not a roboframe journal (bad magic {magic!r})")
            if version > FORMAT_VERSION:
                raise JournalError(
                    f"{path}: journal format version {version} is newer than this roboframe "
                    f"reads ({FORMAT_VERSION}); upgrade roboframe to read it"
                )
            data = f.read(length)
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from None
    if len(data) < length:
        raise JournalError(f"{path}: truncated header ({len(data)} of {length} bytes)")
    if zlib.crc32(data) != crc:
        raise JournalError(f"{path}: header checksum mismatch; the journal was altered")
    try:
        header = json.loads(data)
    except ValueError as exc:
        raise JournalError(f"{path}: header is not valid JSON: {exc}") from None
    return header, version, FILE_HEAD.size + length


class JournalReader:
    """Streams the records of one journal file.

    After :meth:`records` has been iterated to the end, :attr:`torn_tail`
    says whether a torn last frame was found (and not returned).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header, self.format_version, self.data_offset = read_header(self.path)
        self.torn_tail: TornTail | None = None
        self.end_offset = self.data_offset

    def records(self) -> Iterator[Record]:
        self.torn_tail = None
        head_size = FRAME_HEAD.size
        unpack = FRAME_HEAD.unpack_from
        crc_part = CRC_PART.size
        try:
            f = open(self.path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            f.seek(self.data_offset)
            pos = self.data_offset  # file offset of buf[0]
            buf = b""
            i = 0
            while True:
                if len(buf) - i < head_size:
                    buf = buf[i:] + f.read(_CHUNK)
                    pos += i
                    i = 0
                    if len(buf) == 0:
                        break
                    if len(buf) < head_size:
                        self._torn(pos, size, "the file ends inside a frame header")
                        break
                length, crc, kind, seq, recv_ns = unpack(buf, i)
                end = i + head_size + length
                if length > MAX_PAYLOAD:
                    self._bad(pos + i, size, None, "impossible frame length")
                    break
                if end > len(buf):
                    missing = end - len(buf)
                    buf = buf[i:] + f.read(max(_CHUNK, missing))
                    pos += i
                    i = 0
                    end = head_size + length
                    if end > len(buf):
                        self._torn(pos, size, "the file ends inside a frame")
                        break
                body_start = i + head_size
                check = zlib.crc32(buf[i + 8 : i + 8 + crc_part])
                if zlib.crc32(buf[body_start:end], check) != crc:
                    self._bad(pos + i, size, end - i, "checksum mismatch")
                    break
                yield Record(kind, seq, recv_ns, buf[body_start:end], pos + i)
                i = end
                self.end_offset = pos + i

    def _torn(self, offset: int, size: int, why: str) -> None:
        self.torn_tail = TornTail(offset, size - offset, why)

    def _bad(self, offset: int, size: int, frame_size: int | None, why: str) -> None:
        """A bad frame is a torn tail only when nothing but it (or zeros) follows."""
        if (frame_size is not None and offset + frame_size >= size) or self._zeros_from(offset):
            self._torn(offset, size, why)
            return
        raise JournalError(
            f"journal {self.path} corrupt at byte {offset}: {why}, with more data after it; "
            "refusing to read past it"
        )

    def _zeros_from(self, offset: int) -> bool:
        """True when the file holds only zero bytes from ``offset`` (a zero-filled tail)."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            while chunk := f.read(_CHUNK):
                if chunk.count(0) != len(chunk):
                    return False
        return True


def recover(path: str | Path) -> int:
    """Cut a torn tail off ``path`` in place; return the number of bytes cut."""
    reader = JournalReader(path)
    for _ in reader.records():
        pass
    if reader.torn_tail is None:
        return 0
    with open(path, "r+b") as f:
        f.truncate(reader.torn_tail.offset)
    return reader.torn_tail.size
