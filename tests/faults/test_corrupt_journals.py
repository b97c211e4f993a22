"""Corrupt journals through the real CLI: each damage gets a clear message and
its documented outcome -- a torn tail is cut and the run goes on, anything
else is refused with the byte offset -- never a traceback, never silently
wrong state.

One real run makes the journal; a copy cut just before its stop is what a
killed robot leaves, and the cases damage copies of that.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from roboframe.journal import JournalReader
from roboframe.replay import iter_events
from tests.integration.conftest import FAST_ROBOT, roboframe_cmd

FRAME_HEAD = 25


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """``(robot file, bytes of a journal of a run killed before its stop, frames)``."""
    base = tmp_path_factory.mktemp("corrupt")
    robot = base / "robot.yaml"
    robot.write_text(
        FAST_ROBOT.format(name="fast-robot", bars=200, rate=0, journal_dir=base / "runs", extra="")
    )
    proc = roboframe_cmd("run", str(robot), "-q")
    assert proc.returncode == 0, proc.stderr
    (path,) = (base / "runs").glob("*.journal")
    stop_at = next(
        rec.offset
        for _seq, event, rec in iter_events(JournalReader(path))
        if event is not None and getattr(event, "command", None) == "stop"
    )
    data = path.read_bytes()[:stop_at]
    next_frame = path.read_bytes()[stop_at : stop_at + 60]
    short = Path(base / "short.journal")
    short.write_bytes(data)
    frames = list(JournalReader(short).records())
    return robot, data, frames, next_frame


def flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


def middle(frames):
    """A small frame in the middle of the journal (offset, payload length)."""
    rec = next(r for r in frames[len(frames) // 2 :] if len(r.payload) < 200)
    return rec.offset, len(rec.payload)


# name -> (damage(data, frames, next_frame), expected tail note for a torn tail)
TORN = {
    "cut_mid_frame": (
        lambda d, f, n: d + n[:30],
        "30 bytes at byte {end}: the file ends inside a frame",
    ),
    "garbage_appended": (
        lambda d, f, n: d + b"\x17garbage after a crash" * 3,
        "66 bytes at byte {end}: impossible frame length 1918986007",
    ),
    "zero_filled_tail": (
        lambda d, f, n: d + bytes(4096),
        "4096 bytes at byte {end}: checksum mismatch",
    ),
}


def _corrupt(why):
    return (
        "journal {path} corrupt at byte {at}: " + why + ", with a valid frame after it at byte "
        "{after}; refusing to read past it"
    )


# name -> (damage, expected message of every reader)
REFUSED = {
    "flipped_header_json": (
        lambda d, f, n: flip(d, 40),
        "{path}: header checksum mismatch; the journal was altered",
    ),
    "flipped_frame_seq": (
        lambda d, f, n: flip(d, middle(f)[0] + 10),
        _corrupt("checksum mismatch"),
    ),
    "flipped_frame_length": (
        lambda d, f, n: flip(d, middle(f)[0] + 1),
        _corrupt("the file ends inside a frame"),
    ),
    "flipped_frame_payload": (
        lambda d, f, n: flip(d, middle(f)[0] + FRAME_HEAD + 2),
        _corrupt("checksum mismatch"),
    ),
    "truncated_fixed_header": (
        lambda d, f, n: d[:10],
        "{path}: truncated header (10 bytes), not a journal",
    ),
    "truncated_json_header": (
        lambda d, f, n: d[:200],
        "{path}: truncated header (182 of {json} bytes)",
    ),
    "empty_file": (lambda d, f, n: b"", "{path}: empty file, not a journal"),
    "bad_magic": (
        lambda d, f, n: b"XXJOURNL" + d[8:],
        "{path}: not a roboframe journal (bad magic b'XXJOURNL')",
    ),
    "newer_version": (
        lambda d, f, n: d[:8] + struct.pack("<H", 2) + d[10:],
        "{path}: journal format version 2 is newer than this roboframe reads (1); "
        "upgrade roboframe to read it",
    ),
}


def _place(tmp_path, crashed, damage):
    robot, data, frames, next_frame = crashed
    runs = tmp_path / "runs"
    runs.mkdir()
    path = runs / "20261201T070000Z.journal"
    path.write_bytes(damage(data, frames, next_frame))
    at, length = middle(frames)
    fields = {
        "path": path,
        "end": len(data),
        "at": at,
        "after": at + FRAME_HEAD + length,
        "json": frames[0].offset - 18,
    }
    return robot, runs, path, fields


def _clean(proc):
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("case", sorted(TORN))
def test_torn_tail_replay_verifies_up_to_the_last_good_frame(tmp_path, crashed, case):
    damage, note = TORN[case]
    _robot, _runs, path, fields = _place(tmp_path, crashed, damage)
    proc = roboframe_cmd("replay", str(path), "--verify")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert f"note: torn last frame ignored ({note.format(**fields)})" in proc.stderr
    assert proc.stdout.startswith(f"{path}: ok, ")


@pytest.mark.parametrize("case", sorted(TORN))
def test_torn_tail_analyze_reports_a_run_still_running(tmp_path, crashed, case):
    _robot, _runs, path, _fields = _place(tmp_path, crashed, TORN[case][0])
    proc = roboframe_cmd("analyze", str(path), "--db", str(tmp_path / "a.db"))
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert "(live, still running)" in proc.stdout
    assert "1 run(s) analysed" in proc.stderr


@pytest.mark.parametrize("case", sorted(TORN))
def test_torn_tail_resume_cuts_it_and_continues_the_same_run(tmp_path, crashed, case):
    robot, runs, path, fields = _place(tmp_path, crashed, TORN[case][0])
    size = path.stat().st_size
    proc = roboframe_cmd("run", str(robot), "--resume", "--journal-dir", str(runs), "--json")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    cut = size - fields["end"]
    assert f"{path}: cut a torn last frame of {cut} bytes" in proc.stderr
    assert "resuming run" in proc.stderr
    assert sorted(runs.glob("*.journal")) == [path]  # the same file, no new run
    verified = roboframe_cmd("replay", str(path), "--verify")
    assert verified.returncode == 0, verified.stderr
    assert "torn" not in verified.stderr


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_damage_is_refused_by_replay_and_analyze(tmp_path, crashed, case):
    damage, message = REFUSED[case]
    _robot, _runs, path, fields = _place(tmp_path, crashed, damage)
    expected = message.format(**fields)
    proc = roboframe_cmd("replay", str(path), "--verify")
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"Error: {expected}\n"
    db = tmp_path / "a.db"
    proc = roboframe_cmd("analyze", str(path), "--db", str(db))
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: {path}: {expected}\n0 run(s) analysed into {db}\n"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_resume_refuses_a_damaged_journal_and_says_what_to_do(tmp_path, crashed, case):
    damage, message = REFUSED[case]
    robot, runs, path, fields = _place(tmp_path, crashed, damage)
    before = path.read_bytes()
    proc = roboframe_cmd("run", str(robot), "--resume", "--journal-dir", str(runs), "-q")
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"Error: cannot resume from {path}: {message.format(**fields)}\n"
        "  hint: the run cannot continue from a damaged journal; to start a new run, "
        f"move {path.name} out of {runs} (keep it for inspection)\n"
    )
    assert sorted(runs.glob("*.journal")) == [path]  # no new run started behind its back
    assert path.read_bytes() == before  # and nothing cut


def test_moving_the_damaged_journal_aside_lets_a_new_run_start(tmp_path, crashed):
    robot, runs, path, _fields = _place(tmp_path, crashed, REFUSED["flipped_frame_payload"][0])
    path.rename(tmp_path / path.name)
    proc = roboframe_cmd("run", str(robot), "--resume", "--journal-dir", str(runs), "-q")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert len(list(runs.glob("*.journal"))) == 1
