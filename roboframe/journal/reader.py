"""Reading a journal: streamed in chunks, every frame checked, torn tails told
apart from corruption (the rule is in :mod:`roboframe.journal.format`)."""

from __future__ import annotations

import json
import mmap
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from roboframe.errors import JournalError
from roboframe.journal.format import (
    CRC_FROM,
    FILE_HEAD,
    FORMAT_VERSION,
    FRAME_HEAD,
    KNOWN_KINDS,
    LEN_CRC,
    MAGIC,
    MAX_PAYLOAD,
    MESSAGE,
)

_CHUNK = 1 << 20  # bytes read at a time
_NONZERO = re.compile(rb"[^\x00]")
# How much work (bytes checksummed, 1 KiB a candidate offset) the search for a
# valid frame after a bad one may do: a second or two, plenty for what a crash
# of the writer leaves (at most one buffer and one frame, zeros aside); past
# it a person decides (recover(force=True)) rather than the reader hanging.
_SCAN_BUDGET = 1 << 32
_CANDIDATE_COST = 1 << 10


class Record(NamedTuple):
    """One frame: its kind, sequence number, receive time, payload and where it starts."""

    kind: int
    seq: int
    recv_ns: int
    payload: bytes
    offset: int  # byte offset of the frame in the file


class TornTail(NamedTuple):
    """What a crash mid-write left after the last good frame; never returned as a record."""

    offset: int  # where the last good frame ends (and the torn bytes start)
    size: int  # how many bytes follow, to the end of the file
    why: str  # what was wrong with the first of them


def read_header(path: str | Path) -> tuple[dict[str, Any], int, int]:
    """``(header, format_version, offset of the first frame)`` of the journal at ``path``."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(FILE_HEAD.size)
            if not head:
                raise JournalError(f"{path}: empty file, not a journal")
            if len(head) < FILE_HEAD.size:
                if not MAGIC.startswith(head[: len(MAGIC)]):
                    raise JournalError(f"{path}: not a roboframe journal (bad magic)")
                raise JournalError(f"{path}: truncated header ({len(head)} bytes), not a journal")
            magic, version, length, crc = FILE_HEAD.unpack(head)
            if magic != MAGIC:
                raise JournalError(f"{path}: not a roboframe journal (bad magic {magic!r})")
            if version > FORMAT_VERSION:
                raise JournalError(
                    f"{path}: journal format version {version} is newer than this roboframe "
                    f"reads ({FORMAT_VERSION}); upgrade roboframe to read it"
                )
            if version < 1:
                raise JournalError(f"{path}: unknown journal format version {version}")
            available = size - FILE_HEAD.size
            if length > available:
                raise JournalError(f"{path}: truncated header ({available} of {length} bytes)")
            data = f.read(length)
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from None
    if zlib.crc32(data) != crc:
        raise JournalError(f"{path}: header checksum mismatch; the journal was altered")
    try:
        header = json.loads(data)
    except ValueError as exc:
        raise JournalError(f"{path}: header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise JournalError(f"{path}: header is not a JSON object")
    return header, version, FILE_HEAD.size + length


class JournalReader:
    """Streams the records of one journal file.

    The header is read and checked at once. :meth:`records` reads the frames
    in chunks, so a journal of any size takes constant memory. After it has
    run to the end, :attr:`torn_tail` says whether a torn last frame was
    found (and not returned) and :attr:`end_offset` where the good data ends.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.header, self.format_version, self.data_offset = read_header(self.path)
        self.torn_tail: TornTail | None = None
        self.refused_at: int | None = None  # the frame records() raised at, if it did
        self.end_offset = self.data_offset
        self.skipped = 0  # frames of unknown kinds skipped by the last records()

    def records(self, *, unknown: bool = False) -> Iterator[Record]:
        """Every good frame in file order; frames of unknown kinds only if ``unknown``.

        Raises :class:`JournalError` on corruption (a bad frame that valid
        frames follow) or a MESSAGE ``seq`` that does not increase; stops
        quietly before a torn tail and records it in :attr:`torn_tail`.
        """
        self.torn_tail = None
        self.refused_at = None
        self.skipped = 0
        self.end_offset = self.data_offset
        head_size = FRAME_HEAD.size
        unpack = FRAME_HEAD.unpack_from
        crc32 = zlib.crc32
        known = KNOWN_KINDS
        make = tuple.__new__  # Record(...) through its Python __new__ costs twice as much
        last_seq = -1
        try:
            f = open(self.path, "rb")  # noqa: SIM115 -- closed by the with below
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror}") from None
        with f:
            read = f.read
            f.seek(self.data_offset)
            base = self.data_offset  # file offset of buf[0]
            buf = b""
            i = 0
            while True:
                if len(buf) - i < head_size:
                    buf = buf[i:] + read(_CHUNK)
                    base += i
                    i = 0
                    if not buf:
                        return
                    if len(buf) < head_size:
                        self._bad(f, base, "the file ends inside a frame head")
                        return
                length, crc, kind, seq, recv_ns = unpack(buf, i)
                start = i + head_size
                end = start + length
                if end > len(buf):
                    if length > MAX_PAYLOAD:
                        self._bad(f, base + i, f"impossible frame length {length}")
                        return
                    buf = buf[i:] + read(max(_CHUNK, end - len(buf)))
                    base += i
                    i, start, end = 0, head_size, head_size + length
                    if end > len(buf):
                        self._bad(f, base, "the file ends inside a frame")
                        return
                payload = buf[start:end]
                if crc32(payload, crc32(buf[i + CRC_FROM : start])) != crc:
                    self._bad(f, base + i, "checksum mismatch")
                    return
                at = base + i
                if kind == MESSAGE:
                    if seq <= last_seq:
                        self.refused_at = at
                        raise JournalError(
                            f"journal {self.path} invalid at byte {at}: message seq {seq} does "
                            f"not follow seq {last_seq}; sequence numbers must increase"
                        )
                    last_seq = seq
                i = end
                self.end_offset = base + i
                if kind not in known and not unknown:
                    self.skipped += 1
                    continue
                yield make(Record, (kind, seq, recv_ns, payload, at))

    def _bad(self, f: IO[bytes], offset: int, why: str) -> None:
        """A bad frame at ``offset``: a torn tail if no valid frame follows, else corruption."""
        size = os.fstat(f.fileno()).st_size
        try:
            found = _next_valid_frame(f, offset + 1)
        except _Undecided:
            self.refused_at = offset
            raise JournalError(
                f"journal {self.path} damaged at byte {offset}: {why}, with {size - offset} "
                "bytes after it, too many to check for valid frames; if this is what a crash "
                "left, cut it with roboframe.journal.recover(path, force=True)"
            ) from None
        if found is not None:
            self.refused_at = offset
            raise JournalError(
                f"journal {self.path} corrupt at byte {offset}: {why}, with a valid frame "
                f"after it at byte {found}; refusing to read past it"
            )
        self.torn_tail = TornTail(offset, size - offset, why)


class _Undecided(Exception):
    """The search for a valid frame ran out of budget."""


def _next_valid_frame(f: IO[bytes], start: int) -> int | None:
    """The first offset from ``start`` where a whole frame with a good checksum starts.

    Every byte offset is a candidate (this runs only after a bad frame), but
    most are ruled out at C speed: a length field's top byte must be small
    enough for the frame to fit in the file, and runs of zeros (which a
    crash can leave, and which never hold a frame) are jumped over.
    """
    head_size = FRAME_HEAD.size
    size = os.fstat(f.fileno()).st_size
    last = size - head_size  # the last offset a frame could start at
    if start > last:
        return None
    longest = min(MAX_PAYLOAD, last - start)
    fits = re.compile(b"[\\x00-\\x%02x]" % (longest >> 24))  # the length's top byte
    unpack = LEN_CRC.unpack_from
    crc32 = zlib.crc32
    budget = _SCAN_BUDGET
    with (
        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        memoryview(mm) as view,
    ):
        p = start
        while True:
            found = fits.search(mm, p + 3)
            if found is None or found.start() - 3 > last:
                return None
            p = found.start() - 3
            budget -= _CANDIDATE_COST
            if budget < 0:
                raise _Undecided
            length, crc = unpack(view, p)
            if length == 0 and crc == 0:  # maybe a run of zeros: jump to its end
                nonzero = _NONZERO.search(mm, p)
                if nonzero is None:
                    return None
                if nonzero.start() - p >= head_size:
                    p = nonzero.start() - head_size + 1
                    continue
            end = p + head_size + length
            if length <= MAX_PAYLOAD and end <= size:
                budget -= length
                if crc32(view[p + CRC_FROM : end]) == crc:
                    return p
            p += 1


def recover(path: str | Path, *, force: bool = False) -> int:
    """Cut a torn tail off the journal at ``path`` in place; return the bytes cut.

    A journal the reader refuses (corrupt, or a damaged tail too long to
    check) raises :class:`JournalError` and is left as it is -- unless
    ``force``, for a person who has looked at it: then everything from the
    first refused frame on is cut too.
    """
    reader = JournalReader(path)
    try:
        for _ in reader.records(unknown=True):
            pass
    except JournalError:
        if not force or reader.refused_at is None:
            raise
        cut_at = reader.refused_at
    else:
        if reader.torn_tail is None:
            return 0
        cut_at = reader.torn_tail.offset
    try:
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            f.truncate(cut_at)
            os.fsync(f.fileno())
    except OSError as exc:
        raise JournalError(f"cannot cut the damaged tail of {path}: {exc.strerror}") from None
    return size - cut_at
