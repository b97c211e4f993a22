"""A strategy module beside the robot file is found without PYTHONPATH, from
any working folder, by run, backtest, validate and replay."""

from __future__ import annotations

import json
import os
import shutil

from .conftest import roboframe_cmd
from .test_backtest import robot_with_strategy

MODULE = """\
from roboframe import Strategy
{extra}

class Flip(Strategy):
    version = "1.0"

    def on_bar(self, bar, ctx):
        if bar.ts // 60_000_000_000 % 5 == 0:
            return ctx.order_target(bar.symbol, 1 if ctx.position(bar.symbol) <= 0 else -1)
"""


def robot_with_module(tmp_path, extra=""):
    folder = tmp_path / "robots"
    folder.mkdir()
    return robot_with_strategy(folder, "flipper", MODULE.format(extra=extra), "Flip")


def no_pythonpath():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run(*args, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=no_pythonpath(),
        cwd=cwd,
    )


def test_a_module_beside_the_robot_file_needs_no_pythonpath(tmp_path):
    path = robot_with_module(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run("validate", str(path), cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run("-q", "backtest", str(path), "--json", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["orders"] >= 5
    proc = run("replay", stats["journal"], "--verify", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "events verified" in proc.stdout


def test_a_missing_module_says_where_it_was_looked_for(tmp_path):
    path = robot_with_module(tmp_path)
    (path.parent / "flipper.py").unlink()
    proc = run("validate", str(path), cwd=tmp_path)
    assert proc.returncode != 0
    assert "cannot import module 'flipper': No module named 'flipper'" in proc.stdout + proc.stderr
    assert f"no flipper.py in {path.parent.resolve()}, {tmp_path.resolve()}" in (
        proc.stdout + proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_a_dependency_the_module_lacks_is_named_as_such(tmp_path):
    path = robot_with_module(tmp_path, extra="import not_a_real_dependency_xyz")
    proc = roboframe_cmd("validate", str(path), env={"PYTHONPATH": ""})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No module named 'not_a_real_dependency_xyz'" in out
    assert "no flipper.py" not in out  # the module was found; its import is what failed


def test_replays_find_the_module_from_any_folder_and_from_a_copy_elsewhere(tmp_path):
    """Started by a relative path: replays from another folder of this host find
    the module where the robot file was; a copy of the robots and their journals
    on an analysis host (another root) finds it from that copy's root."""
    host = tmp_path / "trading"
    host.mkdir()
    path = robot_with_module(host)
    relative = str(path.relative_to(host))
    proc = run("-q", "backtest", relative, "--json", cwd=host)
    assert proc.returncode == 0, proc.stderr
    journal = host / json.loads(proc.stdout)["journal"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run("replay", str(journal), "--verify", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    copy = shutil.copytree(host, tmp_path / "analysis")
    shutil.rmtree(host)  # the trading host's paths are not there
    proc = run("replay", str(copy / journal.relative_to(host)), "--verify", cwd=copy)
    assert proc.returncode == 0, proc.stderr
    assert "events verified" in proc.stdout
