"""Disk trouble: a robot never trades without its journal, and says why.

A journal folder it cannot create or write, a full disk (a tiny tmpfs when
mounting is allowed, else ``RLIMIT_FSIZE``), the journal deleted under the
running robot: each ends the run with exit 1 and one clear line, no traceback.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from roboframe.journal import JournalReader
from tests.integration.conftest import FAST_ROBOT, ROOT, roboframe_cmd

STOPPED = "; the robot stopped trading without its journal"


def _robot(tmp_path, journal_dir, bars=200, rate=0):
    path = tmp_path / "robot.yaml"
    path.write_text(
        FAST_ROBOT.format(
            name="fast-robot", bars=bars, rate=rate, journal_dir=journal_dir, extra=""
        )
    )
    return path


def _clean(proc):
    assert "Traceback" not in proc.stderr + proc.stdout


def _mount_tmpfs(where, options):
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name, options):
        where = tmp_path / name
        _mount_tmpfs(where, options)
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


def test_a_file_where_the_journal_folder_should_be(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    robot = _robot(tmp_path, blocker / "fast-robot")
    proc = roboframe_cmd("run", str(robot), "-q")
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        f"Error: cannot create the journal folder {blocker / 'fast-robot'}: Not a directory; "
        "a robot does not trade without its journal\n"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_journal_folder_not_writable(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o500)
    robot = _robot(tmp_path, runs)
    try:
        proc = roboframe_cmd("run", str(robot), "-q")
    finally:
        runs.chmod(0o700)
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"Error: cannot create journal {runs}/")
    assert proc.stderr.endswith(": Permission denied\n")


def test_journal_folder_on_a_read_only_file_system(tmp_path, tmpfs):
    runs = tmpfs("ro", "ro,size=64k")
    robot = _robot(tmp_path, runs)
    proc = roboframe_cmd("run", str(robot), "-q")
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(f"Error: cannot create journal {runs}/")
    assert proc.stderr.endswith(": Read-only file system\n")
    sub = _robot(tmp_path, runs / "fast-robot")
    proc = roboframe_cmd("run", str(sub), "-q")
    _clean(proc)
    assert proc.returncode == 1
    assert proc.stderr == (
        f"Error: cannot create the journal folder {runs / 'fast-robot'}: Read-only file system; "
        "a robot does not trade without its journal\n"
    )


def _no_unjournaled_orders(runs):
    """The journal, read to its last good frame, replays and verifies: every order
    the run sent has its cause and ACTIONS record in it."""
    (path,) = runs.glob("*.journal")
    JournalReader(path)  # the header made it
    proc = roboframe_cmd("replay", str(path), "--verify")
    _clean(proc)
    assert proc.returncode == 0, proc.stderr
    return path


def test_disk_full_stops_the_robot(tmp_path, tmpfs):
    runs = tmpfs("small", "size=16k")
    robot = _robot(tmp_path, runs, bars=2000)
    proc = roboframe_cmd("run", str(robot), "-q")
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    (path,) = runs.glob("*.journal")
    assert proc.stderr == (
        f"Error: cannot write journal {path}: No space left on device{STOPPED}\n"
    )
    _no_unjournaled_orders(runs)


def _file_size_limit(limit):
    def limit_writes():  # writes past the limit fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@pytest.mark.parametrize("limit", [4000, 30_000])
def test_file_size_limit_stops_the_robot(tmp_path, limit):
    runs = tmp_path / "runs"
    robot = _robot(tmp_path, runs, bars=2000)
    proc = roboframe_cmd("run", str(robot), "-q", preexec_fn=_file_size_limit(limit))
    _clean(proc)
    assert (proc.returncode, proc.stdout) == (1, "")
    (path,) = runs.glob("*.journal")
    assert proc.stderr == f"Error: cannot write journal {path}: File too large{STOPPED}\n"
    assert path.stat().st_size == limit
    _no_unjournaled_orders(runs)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_journal_deleted_under_a_running_robot(tmp_path, how):
    runs = tmp_path / "runs"
    robot = _robot(tmp_path, runs, bars=0, rate=50)  # endless, 50 bars a second
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "run", str(robot), "-q", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 15
        while not list(runs.glob("*.journal")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (path,) = runs.glob("*.journal")
        time.sleep(0.5)
        path.unlink()
        if how == "replaced":
            path.write_bytes(b"")
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    assert (proc.returncode, out) == (1, "")
    what = "deleted" if how == "deleted" else "replaced by another file"
    assert err == f"Error: journal {path} was {what} while the run wrote it{STOPPED}\n"
