"""``roboframe feed publish`` as a trader runs it: a real process, a real PUB socket."""

from __future__ import annotations

import subprocess
import sys

import zmq

from tests.integration.conftest import ROOT

ROBOT = ROOT / "robots" / "si.yaml"


def run_publish(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", "feed", "publish", str(ROBOT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_port_already_taken_is_a_clear_error_not_a_traceback():
    """An old publisher still running on the port (a restart done too early)."""
    ctx = zmq.Context()
    taken = ctx.socket(zmq.PUB)
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        done = run_publish("--bind", f"tcp://127.0.0.1:{port}", "--speed", "max", "--wait", "0")
    finally:
        taken.close(linger=0)
        ctx.term()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot bind the publisher to tcp://127.0.0.1:{port}" in done.stderr
    assert "another publisher" in done.stderr


def test_a_malformed_bind_address_is_a_clear_error():
    done = run_publish("--bind", "5561", "--speed", "max", "--wait", "0")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot bind the publisher to 5561" in done.stderr
