"""Journal round trip, torn tails, corruption, versions, append after a crash."""

from __future__ import annotations

import os
import struct

import pytest

from roboframe.errors import JournalError
from roboframe.journal import (
    ACTIONS,
    MESSAGE,
    JournalReader,
    JournalWriter,
    recover,
)
from roboframe.journal.format import FILE_HEAD, FRAME_HEAD, MAGIC

HEADER = {"robot": "si-trend", "run_id": "r1", "config": {"a": [1, 2]}}


def write(path, n=10, header=HEADER, **kw):
    with JournalWriter(path, header, **kw) as w:
        for i in range(1, n + 1):
            w.append_message(i, 1000 + i, f"event-{i}".encode())
            if i % 3 == 0:
                w.append_actions(i, f"actions-{i}".encode())
    return path


def expected(n):
    out = []
    for i in range(1, n + 1):
        out.append((MESSAGE, i, 1000 + i, f"event-{i}".encode()))
        if i % 3 == 0:
            out.append((ACTIONS, i, 0, f"actions-{i}".encode()))
    return out


def read(path):
    reader = JournalReader(path)
    return reader, [(r.kind, r.seq, r.recv_ns, r.payload) for r in reader.records()]


def test_round_trip(tmp_path):
    reader, records = read(write(tmp_path / "a.journal"))
    assert records == expected(10)
    assert reader.header == {**HEADER, "format_version": 1}
    assert reader.torn_tail is None


def test_identical_input_gives_identical_bytes(tmp_path):
    a = write(tmp_path / "a.journal", 50)
    b = write(tmp_path / "b.journal", 50)
    assert a.read_bytes() == b.read_bytes()


def test_small_buffer_and_flush_policies(tmp_path):
    for policy in ("never", "on_close", "always"):
        path = write(tmp_path / f"{policy}.journal", 100, fsync=policy, buffer_bytes=64)
        assert read(path)[1] == expected(100)


def test_invalid_fsync_policy(tmp_path):
    with pytest.raises(JournalError, match="fsync must be one of never, on_close, always"):
        JournalWriter(tmp_path / "x.journal", HEADER, fsync="sometimes")


def test_refuses_to_overwrite(tmp_path):
    path = write(tmp_path / "a.journal")
    with pytest.raises(JournalError, match="already exists"):
        JournalWriter(path, HEADER)


def test_torn_tail_at_every_offset_of_the_last_frame(tmp_path):
    path = write(tmp_path / "a.journal", 9)  # ends with an ACTIONS frame
    full = path.read_bytes()
    last_len = FRAME_HEAD.size + len(b"actions-9")
    cut_from = len(full) - last_len
    for size in range(cut_from + 1, len(full)):
        torn = tmp_path / f"torn-{size}.journal"
        torn.write_bytes(full[:size])
        reader, records = read(torn)
        assert records == expected(9)[:-1], size
        assert reader.torn_tail is not None
        assert reader.torn_tail.offset == cut_from
        assert reader.torn_tail.size == size - cut_from


def test_flipped_byte_in_last_frame_is_a_torn_tail(tmp_path):
    path = write(tmp_path / "a.journal", 9)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    reader, records = read(path)
    assert records == expected(9)[:-1]
    assert reader.torn_tail.why == "checksum mismatch"


def test_flipped_byte_in_the_middle_is_refused(tmp_path):
    path = write(tmp_path / "a.journal", 20)
    data = bytearray(path.read_bytes())
    reader = JournalReader(path)
    offsets = [r.offset for r in reader.records()]
    target = offsets[5] + FRAME_HEAD.size + 2  # inside the 6th frame's payload
    data[target] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError) as err:
        read(path)
    assert str(err.value).startswith(f"journal {path} corrupt at byte {offsets[5]}: checksum")


def test_corrupt_length_in_the_middle_is_refused(tmp_path):
    path = write(tmp_path / "a.journal", 20)
    offsets = [r.offset for r in JournalReader(path).records()]
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offsets[3], 0xFFFFFFF0)
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"corrupt at byte {offsets[3]}: impossible"):
        read(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, not a journal"),
        (MAGIC[:5], "truncated header (5 bytes), not a journal"),
        (b"NOTAJRNL" + bytes(10), "not a roboframe journal (bad magic b'NOTAJRNL')"),
        (FILE_HEAD.pack(MAGIC, 1, 50, 0) + b"{}", "truncated header (2 of 50 bytes)"),
        (FILE_HEAD.pack(MAGIC, 1, 2, 0) + b"{}", "header checksum mismatch"),
        (
            FILE_HEAD.pack(MAGIC, 2, 2, 0) + b"{}",
            "journal format version 2 is newer than this roboframe reads (1)",
        ),
    ],
)
def test_bad_files_get_clear_messages(tmp_path, content, message):
    path = tmp_path / "bad.journal"
    path.write_bytes(content)
    with pytest.raises(JournalError) as err:
        JournalReader(path)
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(JournalError, match="cannot read journal"):
        JournalReader(tmp_path / "nope.journal")


def test_zero_filled_tail_is_a_torn_tail(tmp_path):
    path = write(tmp_path / "a.journal", 12)
    with open(path, "ab") as f:
        f.write(bytes(4096))
    reader, records = read(path)
    assert records == expected(12)
    assert reader.torn_tail.size == 4096


def test_unknown_record_kinds_are_returned_for_callers_to_skip(tmp_path):
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER) as w:
        w.append_message(1, 0, b"a")
        w.append_record(77, 1, 0, b"future")
        w.append_message(2, 0, b"b")
    kinds = [r.kind for r in JournalReader(path).records()]
    assert kinds == [MESSAGE, 77, MESSAGE]


def test_recover_and_append_after_a_crash(tmp_path):
    path = write(tmp_path / "a.journal", 10)  # the last frame is message 10
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    writer = JournalWriter.open_append(path)
    assert writer.last_seq == 9
    writer.append_message(10, 2010, b"event-10 again")
    writer.close()
    reader, records = read(path)
    assert reader.torn_tail is None
    assert records == [*expected(9), (MESSAGE, 10, 2010, b"event-10 again")]


def test_recover_reports_bytes_cut(tmp_path):
    path = write(tmp_path / "a.journal", 4)
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"\x05\x00")
    assert recover(path) == 2
    assert os.path.getsize(path) == size
    assert recover(path) == 0


def test_streams_a_large_journal(tmp_path):
    path = tmp_path / "big.journal"
    n = 200_000
    with JournalWriter(path, HEADER) as w:
        for i in range(1, n + 1):
            w.append_message(i, i, b"0123456789abcdef0123456789")
    count = 0
    last = 0
    for record in JournalReader(path).records():
        count += 1
        assert record.seq == last + 1
        last = record.seq
    assert count == n
