"""The control stream: commands over a real ipc socket become journaled events."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from roboframe.config import load_robot
from roboframe.control import send_command
from roboframe.core import codec
from roboframe.core.events import Control
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.errors import ConfigError
from roboframe.journal import JournalReader
from roboframe.journal.format import MESSAGE
from roboframe.replay import verify
from roboframe.testing.helpers import wait_for

from .conftest import roboframe_cmd


def test_commands_reach_the_loop_and_the_journal(robot_file, tmp_path):
    address = f"ipc://{tmp_path}/ctl.sock"
    path = robot_file(bars=0, rate=300, extra=f"control:\n  address: {address}\n")
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=20))
    thread = threading.Thread(target=robot.run)
    thread.start()
    try:
        assert wait_for(lambda: robot.status.get("seq", 0) > 1)
        reply = send_command(address, "pause")
        assert reply == {"ok": True, "queued": "pause"}
        assert wait_for(lambda: robot.kernel.risk.state == "PAUSED")
        status = send_command(address, "status")["status"]
        assert status["robot"] == "fast-robot"
        bad = send_command(address, "explode")
        assert not bad["ok"] and "unknown command 'explode'" in bad["error"]
        proc = roboframe_cmd("ctl", address, "stop")
        assert proc.returncode == 0, proc.stderr
    finally:
        thread.join(30)
    assert not thread.is_alive()
    commands = []
    last_bar = 0
    for record in JournalReader(robot.journal_path).records():
        if record.kind == MESSAGE:
            msg = codec.decode(record.payload)
            for event in getattr(msg, "events", [msg]):
                if type(event).__name__ == "Bar":
                    last_bar = max(last_bar, event.ts)
                if isinstance(event, Control):
                    commands.append((event.command, event.args.get("reason")))
                    if event.command == "pause":
                        # stamped with robot time (the synthetic data's), not the wall clock
                        assert 0 < event.ts <= last_bar
    assert commands[0] == ("start", None)
    assert ("pause", None) in commands
    assert commands[-1] == ("stop", "ctl stop")  # the summary says why (it said "-")
    assert robot.kernel.stop_reason == "ctl stop"
    assert ("explode", None) not in commands


def test_ctl_without_a_listener_times_out_cleanly(tmp_path):
    proc = roboframe_cmd("ctl", f"ipc://{tmp_path}/nobody.sock", "status", "--timeout", "0.3")
    assert proc.returncode == 1
    assert "no answer from" in proc.stderr
    assert "the robot is not running: nothing holds its endpoint" in proc.stderr
    (tmp_path / "nobody.sock.lock").write_text("")  # a run that ended leaves its lock file
    proc = roboframe_cmd("ctl", f"ipc://{tmp_path}/nobody.sock", "status", "--timeout", "0.3")
    assert "the robot is not running: nothing holds its endpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("timeout", ["-1", "0", "nan"])
def test_ctl_refuses_a_timeout_that_is_no_wait(tmp_path, timeout):
    """``--timeout -1`` became ZeroMQ's "wait forever": ctl hung on a robot that did not
    answer instead of saying so (and 0 gave up before any robot could answer)."""
    address = f"ipc://{tmp_path}/nobody.sock"
    try:
        proc = roboframe_cmd("ctl", address, "status", "--timeout", timeout, timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ctl --timeout {timeout} hung") from None
    assert proc.returncode == 2 and "--timeout" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def _controls(journal_path) -> list[Control]:
    out = []
    for record in JournalReader(journal_path).records():
        if record.kind == MESSAGE:
            msg = codec.decode(record.payload)
            if isinstance(msg, Control):
                out.append(msg)
    return out


def _start(path, **options):
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=20, **options))
    thread = threading.Thread(target=robot.run)
    thread.start()
    assert wait_for(lambda: robot.status.get("seq", 0) > 1)
    return robot, thread


def test_the_default_endpoint_is_an_owner_only_socket_in_the_journal_folder(robot_file, tmp_path):
    path = robot_file(bars=0, rate=300)
    spec = load_robot(path)
    sock = tmp_path / "runs" / "fast-robot" / "control.sock"
    assert spec.control.default and spec.control.address == f"ipc://{sock}"
    _, thread = _start(path)
    try:
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert send_command(f"ipc://{sock}", "status")["status"]["robot"] == "fast-robot"
        proc = roboframe_cmd("ctl", str(path), "status")  # the robot file resolves the default
        assert proc.returncode == 0, proc.stderr
        assert '"robot": "fast-robot"' in proc.stdout
    finally:
        send_command(f"ipc://{sock}", "stop")
        thread.join(30)
    assert not thread.is_alive()


def test_the_default_endpoint_follows_a_journal_dir_given_to_the_run(robot_file, tmp_path):
    path = robot_file(bars=0, rate=300)
    elsewhere = tmp_path / "elsewhere"
    robot, thread = _start(path, journal_dir=elsewhere)
    try:
        assert robot.control_address == f"ipc://{elsewhere}/control.sock"
        assert send_command(robot.control_address, "status")["ok"]
    finally:
        send_command(robot.control_address, "stop")
        thread.join(30)


def test_null_address_means_no_endpoint(robot_file, tmp_path):
    path = robot_file(bars=20, extra="control:\n  address: null\n")
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=20))
    assert robot.control_address is None
    robot.run()
    assert not (tmp_path / "runs" / "fast-robot" / "control.sock").exists()
    proc = roboframe_cmd("ctl", str(path), "status")
    assert proc.returncode == 2 and "no control endpoint" in proc.stderr


def test_a_too_long_ipc_path_is_a_config_error(robot_file, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = robot_file(journal_dir=deep)
    proc = roboframe_cmd("run", str(path))
    assert proc.returncode == 2, proc.stderr
    assert "journal.dir: the default control endpoint" in proc.stderr
    assert "the limit is 107" in proc.stderr and "Traceback" not in proc.stderr


def test_set_is_validated_before_it_is_journaled(robot_file):
    path = robot_file(bars=0, rate=300)
    robot, thread = _start(path)
    address = robot.control_address
    try:
        bad = send_command(address, "set", ["fast=50"])
        assert bad == {"ok": False, "error": "fast: must be less than slow (8)"}
        bad = send_command(address, "set", ["qty=0"])
        assert not bad["ok"] and bad["error"].startswith("qty: ")
        proc = roboframe_cmd("ctl", address, "set", "slow=2")  # then fast=3 >= slow
        assert proc.returncode == 1 and "must be less than slow (2)" in proc.stdout
        assert send_command(address, "set", ["qty=2"]) == {"ok": True, "queued": "set"}
        assert wait_for(lambda: robot.kernel.strategy.params["qty"] == 2)
        # the check follows what was let through: fast=5 is fine with slow=8 ...
        assert send_command(address, "set", ["fast=5"])["ok"]
        # ... and slow=4 is then checked against fast=5, not the file's fast=3
        reply = send_command(address, "set", ["slow=4"])
        assert reply["error"] == "fast: must be less than slow (4)"
    finally:
        send_command(address, "stop")
        thread.join(30)
    sets = [c.args for c in _controls(robot.journal_path) if c.command == "set"]
    assert sets == [{"qty": 2}, {"fast": 5}]
    result = verify(robot.journal_path)
    assert result.ok, result.divergence
    assert result.kernel.strategy.params["qty"] == 2 and result.kernel.strategy.params["fast"] == 5
    # the strategy acts on them, not only holds them (the live kernel and the replayed one)
    for kernel in (robot.kernel, result.kernel):
        assert (kernel.strategy.qty, kernel.strategy.fast, kernel.strategy.slow) == (2, 5, 8)


def test_journal_config_of_a_run_with_the_default_endpoint_still_loads(robot_file):
    from roboframe.config import spec_from_dict

    spec = load_robot(robot_file())
    assert spec.raw["control"] == {"address": None}  # the default is not stored: same hash
    again = spec_from_dict(spec.raw, source=spec.source)
    assert again.config_hash == spec.config_hash
    assert Path(spec.source).exists()


def test_a_second_robot_on_a_taken_control_endpoint_is_refused(robot_file):
    path = robot_file(bars=0, rate=100)
    first = LiveRobot(load_robot(path), RunOptions(duration_s=30))
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        assert wait_for(lambda: first.status.get("seq", 0) > 1)
        proc = roboframe_cmd("run", str(path), "--duration", "5")
        assert proc.returncode == 4, proc.stderr  # the robot runs already: not a bad file
        assert "is in use by another running process" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert send_command(str(path), "status")["status"]["run_id"] == first.run_id
    finally:
        first.request_stop("test over")
        thread.join(30)
    # the first robot gone, its socket file left behind is no obstacle
    proc = roboframe_cmd("-q", "run", str(path), "--duration", "1")
    assert proc.returncode == 0, proc.stderr


def test_refused_control_requests_are_logged_at_most_once_a_minute(monkeypatch, caplog):
    from roboframe.core import streams

    now = [1000.0]
    monkeypatch.setattr(streams.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(streams, "_bad", {"next": 0.0, "quiet": 0})
    with caplog.at_level("WARNING", logger="roboframe.core.streams"):
        for _ in range(5):
            streams._warn_bad(b"junk", ValueError("not JSON"))
        now[0] += 61
        streams._warn_bad(b"junk", ValueError("not JSON"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "more refused" not in lines[0]
    assert "(4 more refused since the last warning)" in lines[1]


def test_two_robots_starting_at_once_on_one_endpoint_leave_it_to_the_first(robot_file):
    """Both were past the endpoint check before either had bound (``roboframe up`` starts
    two files with one journal folder together): the later bind took the socket file
    over and the first robot could no longer be reached. Now the endpoint is the first
    one's from its check on, and the second stops before it writes a journal."""
    path = robot_file(bars=0, rate=100)
    first = LiveRobot(load_robot(path), RunOptions(duration_s=30))  # checked, not yet bound
    journals = set(first.journal_dir.iterdir())
    try:
        LiveRobot(load_robot(path), RunOptions(duration_s=30))
    except ConfigError as exc:
        assert "is in use by another running process" in str(exc)
    else:
        raise AssertionError("a second robot was let onto the first one's endpoint")
    assert set(first.journal_dir.iterdir()) == journals  # nothing written by the second
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        assert wait_for(lambda: first.status.get("seq", 0) > 1)
        assert send_command(str(path), "status")["status"]["run_id"] == first.run_id
    finally:
        first.request_stop("test over")
        thread.join(30)
    again = LiveRobot(load_robot(path), RunOptions(duration_s=0.2))  # the first is gone
    assert again.run()["stop_reason"] == "duration reached"


def test_ps_counts_the_events_per_second_of_this_process_after_a_resume(robot_file):
    """``roboframe ps`` divided the journal's whole seq by this process's uptime, so a
    robot resumed from a long run showed thousands of events/s for a feed of a few
    dozen. The status now says how many events this process handled."""
    from roboframe.supervisor import robot_rows
    from roboframe.testing.helpers import T0, bar
    from tests.unit.analyze.journals import write_journal

    path = robot_file(bars=0, rate=20)
    spec = load_robot(path)
    Path(spec.journal.dir).mkdir(parents=True)
    earlier = [Control("start", T0), *(bar("Si-12.26", i, 92000) for i in range(1, 5000))]
    write_journal(Path(spec.journal.dir) / "20261201T070000Z.journal", spec, earlier,
                  run_id="20261201T070000Z")  # fmt: skip
    robot, thread = _start(path, resume=True)
    try:
        assert robot.run_id == "20261201T070000Z"
        assert wait_for(lambda: robot.status.get("seq", 0) > 5010)
        supervised = {"name": "fast-robot", "state": "running", "control": robot.control_address}
        (row,) = robot_rows({"robots": [supervised]})
        assert row["events"] > 5010  # the run's own numbering goes on
        assert 0 < row["events_per_s"] < 500, row  # 20 bars/s of two symbols, not 5000/s
    finally:
        robot.request_stop("test over")
        thread.join(30)


def test_ctl_reaches_a_running_robot_whose_file_no_longer_validates(robot_file):
    """A trader mid-edit at 19:00 (a typo in the risk section, a strategy module that
    does not import) asked ``ctl robots/si.yaml flatten`` and got the file's problems
    instead: ctl validated the whole robot to learn its control address. The address
    is all it needs: it now reads it and says what is wrong with the file."""
    path = robot_file(bars=0, rate=100)
    robot, thread = _start(path)
    try:
        path.write_text(path.read_text().replace("max_order_qty: 5", "max_order_qty: five"))
        proc = roboframe_cmd("ctl", str(path), "pause")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"ok": True, "queued": "pause"}
        assert "max_order_qty" in proc.stderr and "Traceback" not in proc.stderr
        assert wait_for(lambda: robot.kernel.risk.state == "PAUSED")
    finally:
        send_command(robot.control_address, "stop")
        thread.join(30)
    path.write_text("name: [unclosed\n")  # nothing to read an address from: the error stands
    proc = roboframe_cmd("ctl", str(path), "status")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_ctl_refuses_a_robot_file_whose_endpoint_another_robot_answers(robot_file, tmp_path):
    """A robot file copied and renamed, its journal.dir left as it was: both robots
    have one control endpoint, and `ctl b.yaml flatten` (which `ps` advised for b,
    shown 'elsewhere') flattened robot a. ctl now checks who answers."""
    shared = tmp_path / "runs" / "shared"
    a = robot_file(name="rob-a", bars=0, rate=100, journal_dir=shared)
    b = robot_file(name="rob-b", bars=0, rate=100, journal_dir=shared)
    robot, thread = _start(a)
    try:
        for command in ("flatten", "status"):
            proc = roboframe_cmd("ctl", str(b), command)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "is 'rob-a', not 'rob-b'; nothing was sent" in proc.stderr
            assert "Traceback" not in proc.stderr
        proc = roboframe_cmd("ctl", str(a), "pause")
        assert proc.returncode == 0, proc.stderr
    finally:
        send_command(robot.control_address, "stop")
        thread.join(30)
    # the flatten never reached robot a: only its own file's pause did
    assert [c.command for c in _controls(robot.journal_path)] == ["start", "pause", "stop"]
