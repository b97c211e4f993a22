"""The control stream: commands over a real ipc socket become journaled events."""

from __future__ import annotations

import threading

from roboframe.config import load_robot
from roboframe.control import send_command
from roboframe.core import codec
from roboframe.core.events import Control
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.journal import JournalReader
from roboframe.journal.format import MESSAGE
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
    for record in JournalReader(robot.journal_path).records():
        if record.kind == MESSAGE:
            msg = codec.decode(record.payload)
            if isinstance(msg, Control):
                commands.append((msg.command, msg.args.get("reason")))
    assert commands[0] == ("start", None)
    assert ("pause", None) in commands
    assert commands[-1][0] == "stop"
    assert ("explode", None) not in commands


def test_ctl_without_a_listener_times_out_cleanly(tmp_path):
    proc = roboframe_cmd("ctl", f"ipc://{tmp_path}/nobody.sock", "status", "--timeout", "0.3")
    assert proc.returncode == 1
    assert "no answer from" in proc.stderr
    assert "Traceback" not in proc.stderr
