"""Damaged journals: torn tails are cut, corruption is refused, bad files explained."""

from __future__ import annotations

import os
import random
import struct
import zlib

import pytest

from roboframe.errors import JournalError
from roboframe.journal import MESSAGE, JournalReader, JournalWriter, recover
from roboframe.journal.format import FILE_HEAD, FRAME_HEAD, MAGIC

from .conftest import HEADER, expected, read, write


def frame_offsets(path):
    return [r.offset for r in JournalReader(path).records()]


@pytest.mark.parametrize("n", [9, 10])  # the last frame is an ACTIONS / a MESSAGE frame
def test_torn_tail_at_every_offset_of_the_last_frame(tmp_path, n):
    full = write(tmp_path / "a.journal", n).read_bytes()
    last = frame_offsets(tmp_path / "a.journal")[-1]
    torn = tmp_path / "torn.journal"
    for size in range(last + 1, len(full)):
        torn.write_bytes(full[:size])
        reader, records = read(torn)
        assert records == expected(n)[:-1], size
        assert reader.torn_tail is not None, size
        assert (reader.torn_tail.offset, reader.torn_tail.size) == (last, size - last)
        assert reader.end_offset == last


def test_torn_tail_inside_a_frame_bigger_than_a_read_chunk(tmp_path):
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER) as w:
        w.append_message(1, 0, b"small")
        w.append_message(2, 0, b"0123456789abcdef" * (3 << 16))  # 3 MiB
    full = path.read_bytes()
    last = frame_offsets(path)[-1]
    chunk_end = JournalReader(path).data_offset + (1 << 20)
    sizes = [*range(last + 1, len(full), 65_537), chunk_end - 1, chunk_end, chunk_end + 1]
    for size in sizes:
        path.write_bytes(full[:size])
        reader, records = read(path)
        assert records == [(MESSAGE, 1, 0, b"small")], size
        assert reader.torn_tail.offset == last, size


def test_a_journal_cut_inside_its_header(tmp_path):
    full = write(tmp_path / "a.journal", 1).read_bytes()
    header_end = JournalReader(tmp_path / "a.journal").data_offset
    cut = tmp_path / "cut.journal"
    for size in range(1, header_end):
        cut.write_bytes(full[:size])
        with pytest.raises(JournalError, match="truncated header"):
            JournalReader(cut)


def test_every_flipped_byte_in_the_last_frame_is_a_torn_tail(tmp_path):
    full = write(tmp_path / "a.journal", 9).read_bytes()
    last = frame_offsets(tmp_path / "a.journal")[-1]
    damaged = tmp_path / "damaged.journal"
    for at in range(last, len(full)):
        data = bytearray(full)
        data[at] ^= 0x40
        damaged.write_bytes(bytes(data))
        reader, records = read(damaged)
        assert records == expected(9)[:-1], at
        assert reader.torn_tail.offset == last, at


def test_every_flipped_byte_in_a_middle_frame_is_refused(tmp_path):
    full = write(tmp_path / "a.journal", 20).read_bytes()
    offsets = frame_offsets(tmp_path / "a.journal")
    target, after = offsets[5], offsets[6]
    damaged = tmp_path / "damaged.journal"
    for at in range(target, after):
        data = bytearray(full)
        data[at] ^= 0x40
        damaged.write_bytes(bytes(data))
        reader = JournalReader(damaged)
        records = reader.records()
        assert [next(records).offset for _ in range(5)] == offsets[:5]  # good ones come first
        with pytest.raises(JournalError) as err:
            next(records)
        message = str(err.value)
        assert message.startswith(f"journal {damaged} corrupt at byte {target}: "), at
        assert message.endswith(
            f"with a valid frame after it at byte {after}; refusing to read past it"
        )


def test_checksum_mismatch_message(tmp_path):
    path = write(tmp_path / "a.journal", 20)
    offsets = frame_offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[5] + FRAME_HEAD.size + 2] ^= 0x01  # inside the 6th frame's payload
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"corrupt at byte {offsets[5]}: checksum mismatch,"):
        read(path)
    with pytest.raises(JournalError, match="corrupt at byte"):
        recover(path)
    assert path.read_bytes() == data  # recover never cuts a corrupt journal


@pytest.mark.parametrize(
    ("length", "why"),
    [(0xFFFFFFF0, "impossible frame length 4294967280"), (1 << 20, "the file ends inside a frame")],
)
def test_corrupt_length_in_the_middle_is_refused(tmp_path, length, why):
    path = write(tmp_path / "a.journal", 20)
    offsets = frame_offsets(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offsets[3], length)
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"corrupt at byte {offsets[3]}: {why}, with a valid"):
        read(path)


@pytest.mark.parametrize("size", [7, 4096, 5 << 20])
def test_a_zero_filled_tail_is_a_torn_tail(tmp_path, size):
    path = write(tmp_path / "a.journal", 12)
    end = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(size))
    reader, records = read(path)
    assert records == expected(12)
    assert reader.torn_tail.offset == end
    assert reader.torn_tail.size == size


def test_a_garbage_tail_is_a_torn_tail(tmp_path):
    path = write(tmp_path / "a.journal", 12)
    with open(path, "ab") as f:
        f.write(random.Random(7).randbytes(20_000))
    reader, records = read(path)
    assert records == expected(12)
    assert reader.torn_tail.size == 20_000


def test_torn_tail_after_zeros_then_a_frame_is_corruption(tmp_path):
    """Zeros with a good frame after them are a hole, not a tail: refused."""
    path = write(tmp_path / "a.journal", 3)
    end = path.stat().st_size
    good = (tmp_path / "a.journal").read_bytes()[frame_offsets(path)[0] : frame_offsets(path)[1]]
    with open(path, "ab") as f:
        f.write(bytes(1000) + good)
    with pytest.raises(JournalError, match=f"corrupt at byte {end}: .* at byte {end + 1000};"):
        read(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, not a journal"),
        (MAGIC[:5], "truncated header (5 bytes), not a journal"),
        (b"PK\x03\x04", "not a roboframe journal (bad magic)"),
        (b"NOTAJRNL" + bytes(10), "not a roboframe journal (bad magic b'NOTAJRNL')"),
        (FILE_HEAD.pack(MAGIC, 1, 50, 0) + b"{}", "truncated header (2 of 50 bytes)"),
        (FILE_HEAD.pack(MAGIC, 1, 2, 0) + b"{}", "header checksum mismatch"),
        (FILE_HEAD.pack(MAGIC, 1, 2, zlib.crc32(b"{]")) + b"{]", "header is not valid JSON"),
        (FILE_HEAD.pack(MAGIC, 1, 2, zlib.crc32(b"[]")) + b"[]", "header is not a JSON object"),
        (FILE_HEAD.pack(MAGIC, 0, 2, 0) + b"{}", "unknown journal format version 0"),
        (
            FILE_HEAD.pack(MAGIC, 2, 2, 0) + b"{}",
            "journal format version 2 is newer than this roboframe reads (1); "
            "upgrade roboframe to read it",
        ),
    ],
)
def test_bad_files_get_clear_messages(tmp_path, content, message):
    path = tmp_path / "bad.journal"
    path.write_bytes(content)
    with pytest.raises(JournalError) as err:
        JournalReader(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_missing_file(tmp_path):
    with pytest.raises(JournalError, match=r"cannot read journal .*nope\.journal: No such file"):
        JournalReader(tmp_path / "nope.journal")
    with pytest.raises(JournalError, match="cannot read journal"):
        JournalWriter.open_append(tmp_path / "nope.journal")


def test_recover_cuts_only_a_torn_tail(tmp_path):
    path = write(tmp_path / "a.journal", 4)
    size = path.stat().st_size
    assert recover(path) == 0
    with open(path, "ab") as f:
        f.write(b"\x05\x00")
    assert recover(path) == 2
    assert path.stat().st_size == size
    assert recover(path) == 0
    assert read(path)[1] == expected(4)


def test_open_append_after_a_torn_tail(tmp_path):
    path = write(tmp_path / "a.journal", 10)  # the last frame is message 10
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 3)
    writer = JournalWriter.open_append(path, fsync="always")
    assert (writer.last_seq, writer.recovered) == (9, 25 + len(b"event-10") - 3)
    assert writer.header == {**HEADER, "format_version": 1}
    writer.append_message(10, 2010, b"event-10 again")
    writer.append_actions(10, b"actions-10")
    writer.close()
    reader, records = read(path)
    assert reader.torn_tail is None
    assert records == [
        *expected(9),
        (MESSAGE, 10, 2010, b"event-10 again"),
        (2, 10, 0, b"actions-10"),
    ]


def test_open_append_on_a_clean_journal_continues_it(tmp_path):
    path = write(tmp_path / "a.journal", 9)  # ends with the ACTIONS frame of event 9
    with JournalWriter.open_append(path) as writer:
        assert (writer.last_seq, writer.recovered, writer.frames) == (9, 0, 0)
        writer.append_message(10, 1010, b"event-10")
        assert writer.frames == 1
    assert read(path)[1] == expected(10)
    assert path.read_bytes() == write(tmp_path / "b.journal", 10).read_bytes()


def test_open_append_refuses_a_corrupt_journal(tmp_path):
    path = write(tmp_path / "a.journal", 20)
    data = bytearray(path.read_bytes())
    data[frame_offsets(path)[2] + 30] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="corrupt at byte"):
        JournalWriter.open_append(path)
    assert path.read_bytes() == data


def test_recover_force_cuts_from_a_corrupt_frame(tmp_path):
    path = write(tmp_path / "a.journal", 20)
    offsets = frame_offsets(path)
    data = bytearray(path.read_bytes())
    data[offsets[4] + 27] ^= 1
    path.write_bytes(bytes(data))
    assert recover(path, force=True) == len(data) - offsets[4]
    reader, records = read(path)
    assert records == expected(20)[:4]
    assert reader.torn_tail is None


def test_a_damaged_tail_too_long_to_check_is_left_to_a_person(tmp_path, monkeypatch):
    monkeypatch.setattr("roboframe.journal.reader._SCAN_BUDGET", 50_000)
    path = write(tmp_path / "a.journal", 12)
    end = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\xff" * 4 + bytes(100) + b"\x01\x00" * 50_000)  # many candidate offsets
    with pytest.raises(JournalError) as err:
        read(path)
    assert str(err.value) == (
        f"journal {path} damaged at byte {end}: impossible frame length 4294967295, with "
        "100104 bytes after it, too many to check for valid frames; if this is what a crash "
        "left, cut it with roboframe.journal.recover(path, force=True)"
    )
    with pytest.raises(JournalError, match="too many to check"):
        recover(path)
    assert recover(path, force=True) == 100_104
    assert read(path)[1] == expected(12)
