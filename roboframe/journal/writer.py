"""Appending to a journal: buffered, framed, checksummed.

The appenders are the hottest code in a run (one call per inbound message,
up to a million a second), so they are closures over local names built once
per writer, and they do no checks: the loop is the only source of sequence
numbers and makes them increase; readers verify that MESSAGE ``seq``
increases, so a writer bug is found on the first read, not hidden.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roboframe.errors import JournalError
from roboframe.journal.format import (
    ACTIONS,
    CRC_PART,
    FILE_HEAD,
    FORMAT_VERSION,
    FRAME_HEAD,
    FSYNC_POLICIES,
    LEN_CRC,
    MESSAGE,
    encode_header,
)
from roboframe.testing import faultpoints
from roboframe.testing.faultpoints import ARMED as _FAULTS


def _check_options(fsync: str, buffer_bytes: int) -> None:
    if fsync not in FSYNC_POLICIES:
        raise JournalError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}; got {fsync!r}")
    if not isinstance(buffer_bytes, int) or buffer_bytes < 0:
        raise JournalError(f"buffer_bytes must be a whole number >= 0; got {buffer_bytes!r}")


def _closed(*_args: object) -> None:
    raise JournalError("the journal is closed; nothing more can be appended")


class JournalWriter:
    """Appends records to a journal file; ``JournalWriter(path, header)`` starts a new one.

    Appends go to a memory buffer, which goes to the operating system when it
    passes ``buffer_bytes`` and on :meth:`flush`. ``fsync`` says when the
    data is forced to disk: ``never``; ``on_close`` (default), once when the
    journal is closed; ``always``, at every flush (including buffer spills).

    Usable as a context manager; :meth:`close` is idempotent. A run never
    reuses a file: a new writer refuses an existing path, and
    :meth:`open_append` is the one way to continue a journal (after a crash).
    """

    append_message: Callable[[int, int, bytes], None]
    """``append_message(seq, recv_ns, payload)``: one inbound wire message as
    received -- an event, or a batch whose events are ``seq, seq+1, ...``.
    ``seq`` must exceed the previous message's; that is not checked here."""

    append_actions: Callable[[int, bytes], None]
    """``append_actions(seq, payload)``: the encoded outputs of event ``seq``."""

    append_record: Callable[[int, int, int, bytes], None]
    """``append_record(kind, seq, recv_ns, payload)``: any kind (NOTE, or a
    kind of a newer roboframe); not on the hot path."""

    header: dict[str, Any]
    """The journal's header, ``format_version`` included."""
    last_seq: int
    """``seq`` of the last MESSAGE frame :meth:`open_append` found (0 for a new journal)."""
    recovered: int
    """Bytes of torn tail :meth:`open_append` cut (0 for a new journal)."""

    def __init__(
        self,
        path: str | Path,
        header: dict[str, Any],
        *,
        fsync: str = "on_close",
        buffer_bytes: int = 1 << 16,
    ) -> None:
        _check_options(fsync, buffer_bytes)
        try:
            head = encode_header(header)
        except (TypeError, ValueError) as exc:
            raise JournalError(f"journal header cannot be stored: {exc}") from None
        path = Path(path)
        if path.exists():
            raise JournalError(f"journal {path} already exists; a run never reuses one")
        # The header goes into a temporary file first, which is then linked under
        # the journal's name: a crash can never leave a journal without its header.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = open(tmp, "xb", buffering=0)  # noqa: SIM115 -- closed by close()
        except OSError as exc:
            raise JournalError(f"cannot create journal {path}: {exc.strerror}") from None
        self._setup(path, file, fsync, buffer_bytes, new=True)
        self.header = {**header, "format_version": FORMAT_VERSION}
        try:
            self._buf += head
            self._drain()
            if fsync == "always":
                self._sync()
            os.link(tmp, path)
        except JournalError:
            file.close()
            raise
        except FileExistsError:
            file.close()
            raise JournalError(f"journal {path} already exists; a run never reuses one") from None
        except OSError as exc:
            file.close()
            raise JournalError(f"cannot create journal {path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if fsync == "always":
            self._sync_dir()

    @classmethod
    def open_append(
        cls, path: str | Path, *, fsync: str = "on_close", buffer_bytes: int = 1 << 16
    ) -> JournalWriter:
        """Continue an existing journal after a crash.

        Reads the whole file once (refusing a corrupt one), cuts a torn tail
        (:attr:`recovered` says how many bytes), and appends after the last
        good frame. :attr:`header` is the journal's header and
        :attr:`last_seq` the ``seq`` of its last MESSAGE frame (the first
        event of that message, if it was a batch; 0 if there is none).
        """
        from roboframe.journal.reader import JournalReader

        _check_options(fsync, buffer_bytes)
        path = Path(path)
        reader = JournalReader(path)
        last = 0
        for record in reader.records():
            if record.kind == MESSAGE:
                last = record.seq
        try:
            file = open(path, "r+b", buffering=0)  # noqa: SIM115 -- closed by close()
            if reader.torn_tail is not None:
                file.truncate(reader.torn_tail.offset)
                if fsync != "never":
                    os.fsync(file.fileno())
            file.seek(0, os.SEEK_END)
        except OSError as exc:
            raise JournalError(f"cannot append to journal {path}: {exc.strerror}") from None
        self = cls.__new__(cls)
        self._setup(path, file, fsync, buffer_bytes, new=False)
        self.header = reader.header
        self.last_seq = last
        self.recovered = reader.torn_tail.size if reader.torn_tail is not None else 0
        return self

    def _setup(self, path: Path, file: Any, fsync: str, buffer_bytes: int, *, new: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.buffer_bytes = buffer_bytes
        self.last_seq = 0
        self.recovered = 0
        self.closed = False
        self._file = file
        self._new = new
        self._buf = bytearray()
        self._on_os = file.seek(0, os.SEEK_END)
        st = os.fstat(file.fileno())
        self._identity = (st.st_dev, st.st_ino)  # what self.path must go on naming
        self._synced = -1  # _on_os at the last fsync
        self._bind_appenders()

    # -- the hot path ---------------------------------------------------------

    def _bind_appenders(self) -> None:
        """Build the appenders as closures over locals (the cheapest lookups)."""
        buf = self._buf
        extend = buf.extend
        pack_part = CRC_PART.pack
        pack_head = LEN_CRC.pack
        crc32 = zlib.crc32
        limit = self.buffer_bytes
        spill = self.flush if self.fsync == "always" else self._drain
        frames = 0

        def append_message(seq: int, recv_ns: int, payload: bytes) -> None:
            nonlocal frames
            frames += 1
            part = pack_part(MESSAGE, seq, recv_ns)
            extend(pack_head(len(payload), crc32(payload, crc32(part))))
            extend(part)
            extend(payload)
            if len(buf) > limit:
                spill()

        def append_actions(seq: int, payload: bytes) -> None:
            nonlocal frames
            frames += 1
            part = pack_part(ACTIONS, seq, 0)
            extend(pack_head(len(payload), crc32(payload, crc32(part))))
            extend(part)
            extend(payload)
            if len(buf) > limit:
                spill()

        def append_record(kind: int, seq: int, recv_ns: int, payload: bytes) -> None:
            nonlocal frames
            body = pack_part(kind, seq, recv_ns) + payload  # struct.error on bad fields
            frames += 1
            extend(pack_head(len(payload), crc32(body)))
            extend(body)
            if len(buf) > limit:
                spill()

        def count() -> int:
            return frames

        self.append_message = append_message
        self.append_actions = append_actions
        self.append_record = append_record
        self._count = count

    @property
    def frames(self) -> int:
        """Frames appended by this writer (buffered ones included)."""
        return self._count()

    @property
    def bytes_written(self) -> int:
        """Bytes of the file handed to the operating system (the header included)."""
        return self._on_os

    @property
    def bytes_buffered(self) -> int:
        """Bytes appended but not yet handed to the operating system."""
        return len(self._buf)

    # -- durability -----------------------------------------------------------

    def _drain(self) -> None:
        """Hand the buffer to the OS, coping with short writes; on error keep
        what was not written, so a retried flush continues exactly."""
        if self._file.closed:  # an appender captured before close() spilled
            _closed()
        if _FAULTS:
            self._fault_point()
        buf = self._buf
        done = 0
        try:
            with memoryview(buf) as view:
                while done < len(buf):
                    done += self._file.write(view[done:])
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None
        finally:
            del buf[:done]
            self._on_os += done

    def _fault_point(self) -> None:
        """Fault tests (:mod:`roboframe.testing.faultpoints`): die mid-frame."""
        buf = self._buf
        pos = 0
        if self._on_os == 0:  # the file header is still in the buffer
            pos = FILE_HEAD.size + FILE_HEAD.unpack_from(buf)[2]
        last = -1
        while pos + FRAME_HEAD.size <= len(buf):
            last = pos
            pos += FRAME_HEAD.size + LEN_CRC.unpack_from(buf, pos)[0]
        if last < 0:
            return
        kind = FRAME_HEAD.unpack_from(buf, last)[2]
        if faultpoints.due("journal.mid_frame") or (
            kind == ACTIONS and faultpoints.due("journal.mid_actions")
        ):
            self._file.write(buf[: last + (len(buf) - last) // 2])
            faultpoints.kill()

    def flush(self) -> None:
        """Hand everything buffered to the OS; with ``fsync="always"`` also to disk.

        Raises :class:`JournalError` if the path no longer names the open file
        (deleted or replaced under the run): writes would go to a file no one
        can read, so the loop, which flushes before every order, stops instead.
        """
        self._check_file()
        if self._buf:
            self._drain()
        if self.fsync == "always" and self._synced != self._on_os:
            self._sync()

    def _check_file(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise JournalError(f"journal {self.path} was deleted while the run wrote it") from None
        except OSError as exc:
            raise JournalError(f"cannot check journal {self.path}: {exc.strerror}") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise JournalError(
                f"journal {self.path} was replaced by another file while the run wrote it"
            )

    def _sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise JournalError(f"cannot sync journal {self.path}: {exc.strerror}") from None
        self._synced = self._on_os

    def _sync_dir(self) -> None:
        """Make the new file's directory entry durable too (best effort: POSIX only)."""
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def close(self) -> None:
        """Flush, fsync unless the policy is ``never``, close. Later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        self.append_message = self.append_actions = self.append_record = _closed
        try:
            if self._buf:
                self._drain()
            if self.fsync != "never" and self._synced != self._on_os:
                self._sync()
                if self._new and self.fsync == "on_close":
                    self._sync_dir()
        finally:
            self._file.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.frames} frames"
        return f"<JournalWriter {str(self.path)!r} {state}>"
