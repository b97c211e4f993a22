"""Appending to a journal: buffered, framed, checksummed."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from roboframe.errors import JournalError
from roboframe.journal.format import (
    ACTIONS,
    CRC_PART,
    FILE_HEAD,
    FORMAT_VERSION,
    FSYNC_POLICIES,
    LEN_CRC,
    MAGIC,
    MESSAGE,
)


def encode_header(header: dict[str, Any]) -> bytes:
    """The file header bytes for ``header`` (byte-stable: sorted, compact JSON)."""
    body = dict(header)
    body["format_version"] = FORMAT_VERSION
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(data), zlib.crc32(data)) + data


class JournalWriter:
    """Appends records to a new journal file.

    ``append_message`` and ``append_actions`` only append to a memory buffer;
    the buffer goes to the OS when it passes ``buffer_bytes`` and on
    :meth:`flush`. ``fsync``: ``never``; ``on_close`` (default) -- once, when
    the journal is closed; ``always`` -- on every flush. Sequence numbers are
    not checked on the hot path; the loop is their only source.
    """

    def __init__(
        self,
        path: str | Path,
        header: dict[str, Any],
        *,
        fsync: str = "on_close",
        buffer_bytes: int = 1 << 16,
        _append: bool = False,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise JournalError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}; got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.buffer_bytes = buffer_bytes
        self.header = header
        self.last_seq = 0
        self._buf = bytearray()
        self.bytes_written = 0
        self.closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if _append:
                self._file = open(self.path, "ab")  # noqa: SIM115
            else:
                self._file = open(self.path, "xb")  # noqa: SIM115
        except FileExistsError:
            raise JournalError(
                f"journal {self.path} already exists; a run never reuses one"
            ) from None
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None
        self._bind_appenders()
        if not _append:
            self._buf += encode_header(header)
            self.flush()
        self.bytes_written = self._file.tell()

    @classmethod
    def open_append(cls, path: str | Path, *, fsync: str = "on_close") -> JournalWriter:
        """Continue an existing journal after a crash: cut a torn tail, then append."""
        from roboframe.journal.reader import JournalReader, recover

        recover(path)
        reader = JournalReader(path)
        last = 0
        for record in reader.records():
            if record.kind == MESSAGE:
                last = record.seq
        writer = cls(path, reader.header, fsync=fsync, _append=True)
        writer.last_seq = last
        return writer

    # -- the hot path ---------------------------------------------------------

    def _bind_appenders(self) -> None:
        """Build the append functions as closures over locals: this is the hot
        path (up to a million calls a second), and local lookups are cheapest."""
        buf = self._buf
        extend = buf.extend
        pack_part = CRC_PART.pack
        pack_head = LEN_CRC.pack
        crc32 = zlib.crc32
        limit = self.buffer_bytes
        write = self._write

        def append_record(kind: int, seq: int, recv_ns: int, payload: bytes) -> None:
            body = pack_part(kind, seq, recv_ns) + payload
            extend(pack_head(len(payload), crc32(body)))
            extend(body)
            if len(buf) > limit:
                write()

        def append_message(seq: int, recv_ns: int, payload: bytes) -> None:
            body = pack_part(MESSAGE, seq, recv_ns) + payload
            extend(pack_head(len(payload), crc32(body)))
            extend(body)
            if len(buf) > limit:
                write()

        def append_actions(seq: int, payload: bytes) -> None:
            append_record(ACTIONS, seq, 0, payload)

        self.append_record = append_record
        self.append_message = append_message
        """Append one inbound message (an event, or a batch starting at ``seq``)."""
        self.append_actions = append_actions
        """Append the encoded outputs of event ``seq``."""

    # -- durability -----------------------------------------------------------

    def _write(self) -> None:
        try:
            self._file.write(self._buf)
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None
        self.bytes_written += len(self._buf)
        self._buf.clear()

    def flush(self) -> None:
        """Hand everything buffered to the OS (and fsync with ``always``)."""
        if self._buf:
            self._write()
        try:
            self._file.flush()
            if self.fsync == "always":
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
            if self.fsync != "never":
                os.fsync(self._file.fileno())
        finally:
            self.closed = True
            self._file.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
