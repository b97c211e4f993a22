"""Writing and reading journals: round trip, byte layout, stability, policies, streaming."""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import tracemalloc
import zlib

import pytest

from roboframe.errors import JournalError
from roboframe.journal import (
    ACTIONS,
    FORMAT_VERSION,
    MESSAGE,
    NOTE,
    JournalReader,
    JournalWriter,
    read_header,
)

from .conftest import HEADER, expected, read, write


def test_round_trip(tmp_path):
    reader, records = read(write(tmp_path / "a.journal", 100))
    assert records == expected(100)
    assert reader.header == {**HEADER, "format_version": FORMAT_VERSION}
    assert reader.format_version == 1
    assert reader.torn_tail is None
    assert reader.end_offset == os.path.getsize(tmp_path / "a.journal")


def test_record_offsets_point_at_their_frames(tmp_path):
    path = write(tmp_path / "a.journal", 7)
    data = path.read_bytes()
    for record in JournalReader(path).records():
        length, _crc, kind, seq = struct.unpack_from("<IIBQ", data, record.offset)
        assert (length, kind, seq) == (len(record.payload), record.kind, record.seq)


def test_the_bytes_are_as_documented(tmp_path):
    """Parse a journal by hand from the layout in format.py's docstring."""
    with JournalWriter(tmp_path / "a.journal", {"robot": "r"}) as w:
        w.append_message(5, -7, b"\x00wire\xff")
        w.append_actions(5, b"out")
    data = (tmp_path / "a.journal").read_bytes()
    assert data[:8] == b"RFJOURNL"
    version, length, crc = struct.unpack_from("<HII", data, 8)
    header = data[18 : 18 + length]
    assert (version, header) == (1, b'{"format_version":1,"robot":"r"}')
    assert crc == zlib.crc32(header)
    at = 18 + length
    frames = []
    while at < len(data):
        size, crc, kind, seq, recv_ns = struct.unpack_from("<IIBQq", data, at)
        assert crc == zlib.crc32(data[at + 8 : at + 25 + size])
        frames.append((kind, seq, recv_ns, data[at + 25 : at + 25 + size]))
        at += 25 + size
    assert at == len(data)
    assert frames == [(MESSAGE, 5, -7, b"\x00wire\xff"), (ACTIONS, 5, 0, b"out")]


def test_identical_input_gives_identical_bytes(tmp_path):
    a = write(tmp_path / "a.journal", 500)
    b = write(tmp_path / "b.journal", 500, buffer_bytes=100)
    shuffled = dict(reversed(list(HEADER.items())))
    c = write(tmp_path / "c.journal", 500, header=shuffled, fsync="never")
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_header_values_json_lacks_are_stored_stably(tmp_path):
    name = "\u0421\u0431\u0435\u0440"  # non-ASCII, stored \u-escaped
    header = {"day": dt.date(2026, 1, 2), "tags": {"b", "a", "c"}, "name": name}
    path = tmp_path / "a.journal"
    JournalWriter(path, header).close()
    assert read_header(path)[0] == {
        "day": "2026-01-02",
        "tags": ["a", "b", "c"],
        "name": name,
        "format_version": 1,
    }
    assert path.read_bytes().isascii()


@pytest.mark.parametrize(
    ("header", "message"),
    [({"x": float("nan")}, "Out of range float"), ({1: "a", "b": 2}, "not supported between")],
)
def test_header_that_cannot_be_stored_stably_is_refused(tmp_path, header, message):
    with pytest.raises(JournalError, match=f"journal header cannot be stored: .*{message}"):
        JournalWriter(tmp_path / "a.journal", header)
    assert not (tmp_path / "a.journal").exists()


def test_writer_counters_and_attributes(tmp_path):
    path = tmp_path / "deep" / "er" / "a.journal"  # parent folders are made
    with JournalWriter(path, HEADER, buffer_bytes=1 << 20) as w:
        head = w.bytes_written
        assert head == path.stat().st_size > 18  # the header goes out at once
        w.append_message(1, 1, b"abc")
        w.append_actions(1, b"de")
        assert (w.frames, w.bytes_buffered, w.bytes_written) == (2, 25 * 2 + 5, head)
        w.flush()
        assert (w.bytes_buffered, w.bytes_written) == (0, head + 55)
        assert w.path == path and w.header["format_version"] == 1 and w.last_seq == 0
    assert w.closed and path.stat().st_size == head + 55


def test_flush_makes_records_readable_while_the_writer_is_open(tmp_path):
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER) as w:
        w.append_message(1, 10, b"one")
        assert list(JournalReader(path).records()) == []
        w.flush()
        assert [r.payload for r in JournalReader(path).records()] == [b"one"]


def test_the_buffer_spills_past_buffer_bytes(tmp_path):
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER, buffer_bytes=100) as w:
        start = w.bytes_written
        w.append_message(1, 0, bytes(60))  # 85 bytes buffered
        assert w.bytes_written == start
        w.append_message(2, 0, bytes(60))  # 170 > 100: out to the OS
        assert (w.bytes_written, w.bytes_buffered) == (start + 170, 0)
        assert path.stat().st_size == start + 170


def test_close_is_idempotent_and_ends_appending(tmp_path):
    w = JournalWriter(tmp_path / "a.journal", HEADER)
    w.append_message(1, 0, b"x")
    w.close()
    w.close()
    with pytest.raises(JournalError, match="the journal is closed"):
        w.append_message(2, 0, b"y")
    with pytest.raises(JournalError, match="the journal is closed"):
        w.append_actions(1, b"y")
    assert len(list(JournalReader(w.path).records())) == 1


def test_an_appender_kept_past_close_fails_clearly(tmp_path):
    w = JournalWriter(tmp_path / "a.journal", HEADER, buffer_bytes=10)
    append = w.append_message  # the loop binds it once
    w.close()
    with pytest.raises(JournalError, match="the journal is closed"):
        append(1, 0, b"spills past buffer_bytes")
    assert list(JournalReader(w.path).records()) == []


def test_refuses_to_overwrite(tmp_path):
    path = write(tmp_path / "a.journal")
    before = path.read_bytes()
    with pytest.raises(JournalError, match=r"a\.journal already exists; a run never reuses one"):
        JournalWriter(path, HEADER)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fsync": "sometimes"}, "fsync must be one of never, on_close, always; got 'sometimes'"),
        ({"buffer_bytes": -1}, "buffer_bytes must be a whole number >= 0; got -1"),
    ],
)
def test_bad_options_are_refused(tmp_path, options, message):
    with pytest.raises(JournalError, match=message):
        JournalWriter(tmp_path / "a.journal", HEADER, **options)
    with pytest.raises(JournalError, match=message):
        JournalWriter.open_append(write(tmp_path / "b.journal"), **options)


@pytest.fixture
def fsyncs(monkeypatch):
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_fsync_never(tmp_path, fsyncs):
    write(tmp_path / "a.journal", 200, fsync="never", buffer_bytes=64)
    assert fsyncs == []


def test_fsync_on_close(tmp_path, fsyncs):
    with JournalWriter(tmp_path / "a.journal", HEADER, buffer_bytes=64) as w:
        for seq in range(1, 50):
            w.append_message(seq, 0, b"payload")
        w.flush()
        assert fsyncs == []
    assert len(fsyncs) >= 1  # the file (and, on POSIX, its folder)


def test_fsync_always(tmp_path, fsyncs):
    with JournalWriter(tmp_path / "a.journal", HEADER, fsync="always", buffer_bytes=64) as w:
        after_open = len(fsyncs)
        assert after_open >= 1
        w.append_message(1, 0, bytes(100))  # spills: synced without a flush call
        assert len(fsyncs) == after_open + 1
        w.append_message(2, 0, b"x")
        w.flush()
        assert len(fsyncs) == after_open + 2
        w.flush()  # nothing new: an idle flush costs no sync
        assert len(fsyncs) == after_open + 2
    assert [r.seq for r in JournalReader(w.path).records()] == [1, 2]


def test_note_is_returned_and_unknown_kinds_are_skipped(tmp_path):
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER) as w:
        w.append_message(1, 0, b"a")
        w.append_record(77, 1, 0, b"from a newer roboframe")
        w.append_record(NOTE, 1, 0, b"checkpoint")
        w.append_message(2, 0, b"b")
    reader = JournalReader(path)
    assert [r.kind for r in reader.records()] == [MESSAGE, NOTE, MESSAGE]
    assert reader.skipped == 1
    assert [r.kind for r in reader.records(unknown=True)] == [MESSAGE, 77, NOTE, MESSAGE]


def test_message_seq_must_increase_when_read(tmp_path):
    """The writer does not check (hot path); the reader does, naming the frame."""
    path = tmp_path / "a.journal"
    with JournalWriter(path, HEADER) as w:
        w.append_message(1, 0, b"batch of 3")  # events 1, 2, 3
        w.append_actions(3, b"out")
        w.append_message(4, 0, b"next")
        w.append_message(4, 0, b"again")
    last_frame = path.stat().st_size - (25 + len(b"again"))
    reader = JournalReader(path)
    records = reader.records()
    assert [next(records).seq for _ in range(3)] == [1, 3, 4]
    with pytest.raises(JournalError) as err:
        next(records)
    assert str(err.value) == (
        f"journal {path} invalid at byte {last_frame}: message seq 4 does not follow seq 4; "
        "sequence numbers must increase"
    )


def test_a_big_journal_reads_back(tmp_path):
    path = tmp_path / "big.journal"
    n = 200_000
    with JournalWriter(path, HEADER) as w:
        for seq in range(1, n + 1):
            w.append_message(seq, seq, b"0123456789abcdef0123456789")
    count = last = 0
    for record in JournalReader(path).records():
        count += 1
        last = record.seq if record.seq == last + 1 else -1
    assert (count, last) == (n, n)


def test_reading_streams_in_constant_memory(tmp_path):
    path = tmp_path / "big.journal"
    with JournalWriter(path, HEADER) as w:
        for seq in range(1, 3001):
            w.append_message(seq, seq, seq.to_bytes(4, "little") * 2048)  # 8 KiB each
    size = path.stat().st_size
    assert size > 24_000_000
    count = 0
    tracemalloc.start()
    try:
        for record in JournalReader(path).records():
            count += record.payload[:4] == record.seq.to_bytes(4, "little")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 3000
    assert peak < 6_000_000, f"reading held {peak} bytes of a {size}-byte journal"


def test_header_json_is_the_documented_form(tmp_path):
    path = write(tmp_path / "a.journal", 1)
    data = path.read_bytes()
    length = struct.unpack_from("<I", data, 10)[0]
    text = data[18 : 18 + length]
    assert (
        text
        == json.dumps(
            {**HEADER, "format_version": 1}, sort_keys=True, separators=(",", ":")
        ).encode()
    )


def test_a_new_journal_appears_whole_with_its_header(tmp_path):
    from roboframe.journal import JournalWriter, read_header

    path = tmp_path / "run.journal"
    writer = JournalWriter(path, {"robot": "r"}, fsync="never")
    # linked under its name only once the header was written: readable at once
    assert read_header(path)[0]["robot"] == "r"
    assert [p.name for p in tmp_path.iterdir()] == ["run.journal"]  # no temporary left
    writer.close()
