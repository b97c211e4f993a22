"""``roboframe up / ps / down`` with real processes: restarts, new robots, clean stops."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roboframe.backtest import run_backtest
from roboframe.config import load_robot
from roboframe.core import codec
from roboframe.core.events import Bar, NewOrder
from roboframe.journal import JournalReader
from roboframe.journal.format import ACTIONS
from roboframe.replay import iter_events, verify

from .conftest import ROOT
from .test_strategy_failure import FAILING, isolate_imports

ROBOT = """\
name: {name}
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: synthetic
  params: {{seed: {seed}, bars: {bars}, interval: 1m, prices: {{Si-12.26: 92000}}, rate: {rate}}}
strategy:
  plugin: sma-crossover
  params: {{fast: 3, slow: 8, qty: 1}}
gateway:
  plugin: paper
"""


def cli(*args, cwd, timeout=30):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env,
    )  # fmt: skip


def ps(cwd) -> dict[str, dict]:
    out = cli("ps", "--json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def wait_until(predicate, timeout=30.0, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
def up(tmp_path):
    """Start ``roboframe up robots/`` in tmp_path; stop it (and its robots) after."""
    (tmp_path / "robots").mkdir()
    procs = []

    def start():
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "roboframe.cli", "up", "robots"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        wait_until(lambda: (tmp_path / "runs" / ".supervisor" / "supervisor.sock").exists())
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def write_robot(tmp_path, name, *, bars=800, rate=200, seed=3) -> Path:
    path = tmp_path / "robots" / f"{name}.yaml"
    path.write_text(ROBOT.format(name=name, bars=bars, rate=rate, seed=seed))
    return path


def one_robot(tmp_path, **robot):
    """A supervisor of ``robots/`` with robot si's file in it, scanned once: the
    supervisor, its robot and the file (close with _kill_all)."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si", **robot)
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    sup._scan(0.0)
    return sup, sup.robots[path.resolve()], path


def orders_in(journal) -> list[str]:
    out = []
    for record in JournalReader(journal).records():
        if record.kind == ACTIONS:
            actions, _ = codec.decode_outputs(record.payload)
            out += [a.client_id for a in actions if type(a) is NewOrder]
    return out


def test_a_killed_robot_is_restarted_and_ends_where_an_uninterrupted_run_ends(tmp_path, up):
    path = write_robot(tmp_path, "alpha")
    up()
    first = wait_until(lambda: (r := ps(tmp_path).get("alpha")) and (r.get("events") or 0) > 200
                       and r)  # fmt: skip
    os.kill(first["pid"], signal.SIGKILL)  # mid-run, mid-whatever
    done = wait_until(lambda: (r := ps(tmp_path)["alpha"])["state"] == "stopped" and r, 60)
    assert done["restarts"] == 1 and done["last_exit"] == 0
    journals = list((tmp_path / "runs" / "alpha").glob("*.journal"))
    assert len(journals) == 1  # the restarted robot went on in the killed run's journal
    result = verify(journals[0])
    assert result.ok, str(result.divergence)
    bars = [e.ts for _s, e, _r in iter_events(JournalReader(journals[0])) if type(e) is Bar]
    assert len(bars) == 800 and all(b > a for a, b in itertools.pairwise(bars))
    ids = orders_in(journals[0])
    assert len(ids) == len(set(ids))  # no order sent twice
    # the same robot, uninterrupted, over the same data: the same decisions and positions
    os.chdir(tmp_path)
    try:
        clean = run_backtest(load_robot(path), journal=False)
    finally:
        os.chdir(ROOT)
    state = result.kernel.snapshot()
    assert state["strategy"] == clean.kernel.snapshot()["strategy"]
    assert len(ids) == clean.kernel.counters["orders"]
    assert state["positions"]["Si-12.26"]["position"] == clean.kernel.book.positions["Si-12.26"].qty


def test_ps_new_files_invalid_files_and_down(tmp_path, up):
    write_robot(tmp_path, "alpha", bars=0, rate=50)
    supervisor = up()
    wait_until(lambda: ps(tmp_path).get("alpha", {}).get("events"))
    write_robot(tmp_path, "beta", bars=0, rate=50, seed=4)  # a new file is a new robot
    (tmp_path / "robots" / "broken.yaml").write_text("name: broken\nsymbols: 3\n")
    rows = wait_until(
        lambda: (r := ps(tmp_path)).get("beta", {}).get("events") and "broken" in r and r
    )
    assert rows["alpha"]["state"] == rows["beta"]["state"] == "running"
    assert rows["broken"]["state"] == "invalid" and "symbols" in rows["broken"]["problem"]
    assert rows["beta"]["positions"].keys() == {"Si-12.26"}
    text = cli("ps", cwd=tmp_path).stdout
    assert text.splitlines()[0].split()[:3] == ["ROBOT", "STATE", "PID"]
    assert any(line.startswith("alpha ") and "ACTIVE" in line for line in text.splitlines())
    # down one robot: it stops cleanly and is not restarted
    out = cli("down", "beta", cwd=tmp_path)
    assert out.returncode == 0 and "stopped: beta" in out.stdout
    time.sleep(1.5)
    rows = ps(tmp_path)
    assert rows["beta"]["state"] == "stopped" and rows["beta"]["pid"] is None
    assert rows["alpha"]["state"] == "running"
    beta_journal = next((tmp_path / "runs" / "beta").glob("*.journal"))
    assert verify(beta_journal).kernel.risk.state == "STOPPED"  # its stop was journaled
    log = (tmp_path / "runs" / ".supervisor" / "beta.log").read_text()
    assert "robot      beta" in log and "journal    " in log  # its summary (the log was empty)
    # down everything: the supervisor exits, its socket and pid file go
    out = cli("down", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert supervisor.wait(30) == 0
    assert not (tmp_path / "runs" / ".supervisor" / "supervisor.sock").exists()
    alpha_journal = next((tmp_path / "runs" / "alpha").glob("*.journal"))
    assert verify(alpha_journal).kernel.risk.state == "STOPPED"
    assert "no supervisor answers" in cli("ps", cwd=tmp_path).stderr


def test_an_impossible_state_folder_is_a_clear_error(tmp_path):
    (tmp_path / "robots").mkdir()
    (tmp_path / "file").write_text("in the way")
    for extra in ([], ["--detach"]):
        out = cli("up", "robots", "--state-dir", str(tmp_path / "file" / "state"), *extra,
                  cwd=tmp_path)  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert "--state-dir: cannot create" in out.stderr and "Traceback" not in out.stderr


def test_a_robot_whose_strategy_raises_is_failed_not_restarted_until_its_strategy_changes(
    tmp_path, up, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # where the journal's robot file, and its strategy, are
    isolate_imports(monkeypatch)
    module = tmp_path / "robots" / "flaky.py"
    module.write_text(FAILING.format(fails_at=150))
    robot = ROBOT.format(name="flaky", bars=300, rate=300, seed=5)
    (tmp_path / "robots" / "flaky.yaml").write_text(
        robot.replace("plugin: sma-crossover", "plugin: flaky:Flaky").replace(
            "params: {fast: 3, slow: 8, qty: 1}", "params: {}"
        )
    )
    up()
    row = wait_until(lambda: (r := ps(tmp_path).get("flaky")) and r["state"] == "failed" and r)
    assert row["last_exit"] == 3 and row["pid"] is None
    assert "no price feed for the hedge leg" in row["problem"]
    assert "not restarted" in row["problem"] and "flaky.py" in row["problem"]
    time.sleep(1.5)  # a crash would have been restarted after 1 s
    row = ps(tmp_path)["flaky"]
    assert row["state"] == "failed" and row["restarts"] == 0
    journal = next((tmp_path / "runs" / "flaky").glob("*.journal"))
    failed = verify(journal)
    assert failed.ok and failed.failure is not None  # the run, reproduced up to its error
    # the fix (a different size: no stale bytecode) starts it again, in the same run
    module.write_text(FAILING.format(fails_at=-1) + "\n# fixed\n")
    done = wait_until(lambda: (r := ps(tmp_path)["flaky"])["state"] == "stopped" and r, 60)
    assert done["last_exit"] == 0 and done["problem"] is None
    assert list((tmp_path / "runs" / "flaky").glob("*.journal")) == [journal]
    sys.modules.pop("flaky")  # the failing code this process imported
    result = verify(journal)
    assert result.ok and result.failure is None, str(result.divergence)
    bars = [e.ts for _s, e, _r in iter_events(JournalReader(journal)) if type(e) is Bar]
    assert len(bars) == 300 and all(b > a for a, b in itertools.pairwise(bars))
    assert result.kernel.strategy.bars == 300  # every bar, the one it failed on too
    ids = orders_in(journal)
    assert len(ids) == len(set(ids)) and len(ids) >= 2  # traded before and after; none twice


def test_ctl_finds_a_supervised_robot_by_its_name(tmp_path, up):
    """The README says a robot under ``up`` is told ``ctl NAME stop``; ctl took NAME for a
    file and answered "no such file". Now a name that is no file is looked up in the
    supervisor's list (``--state-dir``, as for ps and down)."""
    write_robot(tmp_path, "alpha", bars=0, rate=50)
    up()
    wait_until(lambda: ps(tmp_path).get("alpha", {}).get("events"))
    out = cli("ctl", "alpha", "pause", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"ok": True, "queued": "pause"}
    wait_until(lambda: ps(tmp_path)["alpha"]["robot_state"] == "PAUSED")
    out = cli("ctl", "alhpa", "status", cwd=tmp_path)
    assert out.returncode == 2 and "no robot 'alhpa'" in out.stderr and "alpha" in out.stderr
    assert "Traceback" not in out.stderr
    out = cli("ctl", "alpha", "stop", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: ps(tmp_path)["alpha"]["state"] == "stopped")
    out = cli("ctl", "alpha", "status", cwd=tmp_path)  # known, but not running
    assert out.returncode == 1 and "alpha is stopped" in out.stderr, out.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = cli("ctl", "alpha", "status", cwd=elsewhere)  # no file, no supervisor here
    assert out.returncode == 2 and "no such robot file" in out.stderr
    assert "--state-dir" in out.stderr and "Traceback" not in out.stderr


def test_orders_finds_a_failed_supervised_robots_orders_by_its_name(tmp_path, up, pg_url):
    """Under ``up`` a robot is known by its name: ``roboframe orders NAME`` finds its
    file through the supervisor, also once its strategy failed (no process left)."""
    (tmp_path / "robots" / "rests.py").write_text(
        "from roboframe import Strategy\n\n\n"
        "class Rests(Strategy):\n"
        "    bars = 0\n\n"
        "    def on_bar(self, bar, ctx):\n"
        "        self.bars += 1\n"
        "        if self.bars == 1:\n"
        "            return [ctx.buy(bar.symbol, 1, price=bar.close - 500)]\n"
        "        if self.bars == 30:\n"
        "            raise ValueError('one order is all it knows')\n"
    )
    (tmp_path / "robots" / "rests.yaml").write_text(
        "name: rests\nsymbols: {Si: {tick_size: 1}}\n"
        "feed: {plugin: synthetic, params: {seed: 1, bars: 50, prices: {Si: 92000}, rate: 20}}\n"
        "strategy: {plugin: 'rests:Rests'}\n"
        f"gateway: {{plugin: postgres, params: {{url: '{pg_url}'}}}}\n"
    )
    up()
    wait_until(lambda: ps(tmp_path).get("rests", {}).get("state") == "failed")
    out = cli("orders", "rests", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    assert (row["robot"], row["side"], row["qty"], row["status"]) == ("rests", "buy", 1, "new")


def _stuck_robot(sup, path):
    """``path``'s robot, running as a process that ignores SIGTERM."""
    sup._scan(0.0)
    robot = sup.robots[path.resolve()]
    stuck = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    stuck += "print('ready', flush=True); time.sleep(120)"
    robot.proc = subprocess.Popen([sys.executable, "-c", stuck], stdout=subprocess.PIPE, text=True)
    assert robot.proc.stdout.readline().strip() == "ready"
    robot.state, robot.started = "running", 0.0
    return robot


def _kill_all(sup):
    for robot in sup.robots.values():
        if robot.proc is not None and robot.proc.poll() is None:
            robot.proc.kill()
    sup.close()


def test_a_robot_file_saved_mid_edit_leaves_its_running_robot_alone(tmp_path, caplog):
    """A robot file saved mid-edit (invalid YAML): the supervisor stopped the
    robot to restart it, found the file invalid, and left it down -- its orders
    working, unwatched. Now it checks the new file first: the robot goes on as it
    was started, the log says why, and a valid save of a new definition restarts it."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    good = path.read_text()
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        robot = _stuck_robot(sup, path)
        path.write_text("name: si\nsymbols: [Si-12.26\n")
        os.utime(path, (time.time() + 5, time.time() + 5))
        with caplog.at_level("ERROR", logger="roboframe.supervisor"):
            sup._scan(1.0)
            sup._scan(1.5)  # said once per change, not at every scan
        assert robot.state == "running" and robot.proc.poll() is None
        said = [r.getMessage() for r in caplog.records if "goes on running" in r.getMessage()]
        assert len(said) == 1 and "invalid YAML" in said[0]
        path.write_text(good)
        os.utime(path, (time.time() + 10, time.time() + 10))
        sup._scan(2.0)
        assert robot.state == "running"  # the file it runs, back: nothing to restart
        path.write_text(good.replace("seed: 3", "seed: 5"))
        os.utime(path, (time.time() + 15, time.time() + 15))
        sup._scan(3.0)
        assert robot.state == "stopping"  # a valid new file: restarted with it
    finally:
        _kill_all(sup)


def test_a_robot_that_does_not_stop_for_a_restart_is_killed_after_the_grace(tmp_path):
    """A changed robot file restarts its robot; one that does not stop (stuck in a
    call, SIGTERM unanswered) is killed after the grace, then started again."""
    from roboframe.supervisor import STOP_GRACE_S, Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        robot = _stuck_robot(sup, path)
        path.write_text(path.read_text().replace("fast: 3", "fast: 4"))  # not the feed alone
        os.utime(path, (time.time() + 5, time.time() + 5))
        sup._scan(1.0)
        assert robot.state == "stopping"
        sup._watch(robot, 2.0)
        assert robot.proc.poll() is None  # within the grace: SIGTERM ignored, still there
        stuck = robot.proc
        sup._watch(robot, 1.0 + STOP_GRACE_S)
        assert stuck.wait(10) is not None  # killed
        sup._watch(robot, 2.0 + STOP_GRACE_S)
        assert robot.proc is not stuck and robot.state in ("backoff", "running")  # again
    finally:
        _kill_all(sup)


def test_a_robot_another_process_runs_is_shown_so_and_never_said_stopped(tmp_path, up):
    """A supervisor killed without `down` leaves its robots running. The next one
    found their endpoints taken and called the files invalid; `ctl NAME` said
    nothing answers; `down` said "stopped" of robots it never stopped. Now: state
    `elsewhere` with the reason, ctl reaches the robot that runs, and down says it
    did not stop it."""
    path = write_robot(tmp_path, "alpha", bars=100_000, rate=100)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    orphan = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        running = wait_until(lambda: cli("ctl", str(path), "status", cwd=tmp_path).returncode == 0)
        assert running
        up()
        row = wait_until(
            lambda: (r := ps(tmp_path).get("alpha")) and r["state"] == "elsewhere" and r
        )
        assert "another process answers at its control endpoint" in row["problem"]
        asked = cli("ctl", "alpha", "status", cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr  # the robot that runs answers
        assert json.loads(asked.stdout)["status"]["state"] == "ACTIVE"
        out = cli("down", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "not stopped: alpha runs in a process this supervisor did not start" in out.stderr
        assert "alpha" not in out.stdout  # never "stopped: alpha"
        assert orphan.poll() is None  # and indeed it runs on
    finally:
        orphan.terminate()
        orphan.wait(30)


def test_down_during_a_retry_of_a_robot_another_process_runs_does_not_call_it_stopped(tmp_path):
    """The supervisor retries a robot another process runs every 10 s; a `down`
    landing on a retry took the retry for the robot and said "stopped", while the
    other process ran on, unreachable by name. Retries are no restarts either."""
    from roboframe.supervisor import EXIT_RUNNING

    sup, robot, path = one_robot(tmp_path)
    try:
        robot.proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({EXIT_RUNNING})"])
        robot.state, robot.started = "running", 0.0
        robot.proc.wait(10)
        sup._watch(robot, 1.0)
        assert (robot.state, robot.elsewhere, robot.restarts) == ("elsewhere", True, 0)
        # the retry: a process that is (for a moment) running
        robot.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        robot.state, robot.started = "elsewhere", 11.0
        reply = sup._command("down", "si")
        assert reply["stopping"] == [] and reply["elsewhere"] == {"si": str(path)}
        robot.proc.wait(10)  # the retry, stopped
        sup._watch(robot, 12.0)
        assert robot.state == "elsewhere" and robot.restarts == 0
        assert "out of its care since down" in robot.info(13.0)["problem"]
    finally:
        if robot.proc is not None and robot.proc.poll() is None:
            robot.proc.kill()
        sup.close()


def test_down_names_only_the_robots_it_stops(tmp_path):
    """``down`` printed "stopped: , pg2": an invalid file's robot has no name, and
    robots already stopped were listed as stopped again."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    running = write_robot(tmp_path, "si")
    stopped = write_robot(tmp_path, "rts")
    waiting = write_robot(tmp_path, "br")  # crashed, to be restarted: down keeps it down
    (tmp_path / "robots" / "bad.yaml").write_text("name: bad\nsymbols: {}\n")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        sup._scan(0.0)
        robot = sup.robots[running.resolve()]
        robot.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        robot.state, robot.started = "running", 0.0
        sup.robots[stopped.resolve()].state = "stopped"
        sup.robots[waiting.resolve()].state = "backoff"
        reply = sup._command("down", None)
        assert reply == {"ok": True, "stopping": ["br", "si"], "elsewhere": {}}
    finally:
        _kill_all(sup)


def test_a_restart_for_a_changed_file_names_the_position_the_new_run_leaves(
    tmp_path, caplog, monkeypatch
):
    """A changed file restarts its robot as a new run, flat: the old run's
    position and working orders went unmanaged without a word."""
    from roboframe.control import send_command
    from roboframe.supervisor import Supervisor

    monkeypatch.chdir(tmp_path)  # the robot's control endpoint is relative to it
    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si", bars=5000, rate=200)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)], cwd=tmp_path, env=env
    )
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        sup._scan(0.0)
        robot = sup.robots[path.resolve()]
        robot.state = "running"  # run by the test: the supervisor asks it, as its own
        control = robot.control

        def held():
            try:
                status = send_command(control, "status")["status"]
            except Exception:
                return None
            return status["positions"]["Si-12.26"]["position"] or None

        assert wait_until(held)
        with caplog.at_level("WARNING", logger="roboframe.supervisor"):
            sup._say_what_stays(robot)
        (said,) = [r.getMessage() for r in caplog.records if "starts flat" in r.getMessage()]
        assert "the old run's Si-12.26 " in said and "roboframe ctl si flatten" in said
    finally:
        proc.terminate()
        proc.wait(30)
        sup.close()


def test_a_robot_file_saved_unchanged_leaves_its_running_robot_alone(tmp_path):
    """A touch, an editor's save, a deploy of the same file: the supervisor took
    any new modification time for a change and restarted the robot as a new run,
    flat -- the old run's position and orders left unmanaged, and the new run
    trading on top of them. A save that changes only comments is no change
    either; a real change still restarts."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        robot = _stuck_robot(sup, path)
        os.utime(path, (time.time() + 5, time.time() + 5))
        sup._scan(1.0)
        path.write_text("# deployed again\n" + path.read_text())
        os.utime(path, (time.time() + 10, time.time() + 10))
        sup._scan(2.0)
        assert robot.state == "running" and robot.proc.poll() is None
        path.write_text(path.read_text().replace("seed: 3", "seed: 4"))
        os.utime(path, (time.time() + 15, time.time() + 15))
        sup._scan(3.0)
        assert robot.state == "stopping"
    finally:
        _kill_all(sup)


def test_a_robot_another_process_runs_is_retried_once_a_period(tmp_path, monkeypatch):
    """While another process ran a robot, the supervisor's retry was started anew
    at every turn of its loop (every 100 ms) as long as the last retry was still
    starting up: hundreds of processes on a two-core host."""
    from roboframe import supervisor as sv

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    real = subprocess.Popen
    started = []

    def retry(cmd, **kw):  # a retry that takes its time to find the endpoint taken
        started.append(cmd)
        return real([sys.executable, "-c", "import time; time.sleep(60)"])

    sup = sv.Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        sup._scan(0.0)
        robot = sup.robots[path.resolve()]
        robot.proc = real([sys.executable, "-c", f"raise SystemExit({sv.EXIT_RUNNING})"])
        robot.state, robot.started = "running", 0.0
        robot.proc.wait(10)
        sup._watch(robot, 1.0)
        assert robot.state == "elsewhere"
        monkeypatch.setattr(sv.subprocess, "Popen", retry)
        for tick in range(100):  # ten seconds of turns from the first retry on
            sup._watch(robot, 1.0 + sv.ELSEWHERE_RETRY_S + tick * 0.1)
        assert len(started) == 1
    finally:
        _kill_all(sup)


def test_a_robot_file_moved_away_and_back_is_a_robot_again(tmp_path):
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        robot = _stuck_robot(sup, path)
        away = tmp_path / "si.off"
        path.rename(away)
        sup._scan(1.0)
        assert robot.state == "stopping" and not robot.wanted
        robot.proc.kill()
        robot.proc.wait(10)
        sup._watch(robot, 2.0)
        assert robot.state == "stopped"
        away.rename(path)
        sup._scan(3.0)
        assert robot.wanted and robot.state == "backoff"  # started at the next turn
    finally:
        _kill_all(sup)


def test_a_robot_refused_while_its_strategy_module_was_mid_edit_starts_when_it_is_fixed(
    tmp_path,
):
    """A robot that crashed while its strategy's module was saved mid-edit came
    back refusing it (exit 2), and stayed down after the module was fixed: only
    a change of the robot file was watched."""
    from roboframe.supervisor import EXIT_CONFIG, Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    module = tmp_path / "robots" / "strategy_module.py"
    module.write_text("def broken(:\n")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        sup._scan(0.0)
        robot = sup.robots[path.resolve()]
        robot.strategy_file = module
        robot.proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({EXIT_CONFIG})"])
        robot.state, robot.started = "running", 0.0
        robot.proc.wait(10)
        sup._watch(robot, 1.0)
        assert robot.state == "invalid"
        sup._scan(2.0)
        assert robot.state == "invalid"  # nothing changed: not retried
        module.write_text("x = 1\n")
        os.utime(module, (time.time() + 5, time.time() + 5))
        sup._scan(3.0)
        assert robot.state == "backoff"
    finally:
        _kill_all(sup)


def test_two_supervisors_of_one_state_folder_never_both_run(tmp_path):
    """Started at the same moment, both found no supervisor answering, the second
    unlinked the first's socket, and both ran every robot."""
    from roboframe.errors import RoboframeError
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    first = Supervisor(tmp_path / "robots", tmp_path / "state")
    second = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        first.bind()
        with pytest.raises(RoboframeError, match="a supervisor already runs"):
            second.bind()
    finally:
        first.close()
        second.close()
    third = Supervisor(tmp_path / "robots", tmp_path / "state")
    third.bind()  # the lock went with the first
    third.close()


def test_up_detach_fails_when_another_supervisor_has_the_folder(tmp_path):
    """The second `up --detach` took the first supervisor's answer for its own and
    said "supervisor started" while it had exited: its robots ran nowhere."""
    (tmp_path / "robots").mkdir()
    (tmp_path / "other").mkdir()
    first = cli("up", "robots", "--detach", cwd=tmp_path)
    try:
        assert first.returncode == 0, first.stderr
        second = cli("up", "other", "--detach", cwd=tmp_path)
        assert second.returncode != 0
        assert "exited at once" in second.stderr
    finally:
        cli("down", cwd=tmp_path)


def test_ps_shows_a_running_robot_whose_order_path_is_down():
    """A robot with its exchange or store gone trades nothing, yet `ps` said
    ACTIVE like any other: it says the order path is down now."""
    from roboframe.supervisor import format_ps

    row = {"name": "si", "state": "running", "pid": 1, "uptime_s": 5.0, "restarts": 0,
           "robot_state": "ACTIVE",
           "order_path": "down: the order store is unreachable"}  # fmt: skip
    older = {**row, "order_path": None}  # an older robot's status has none
    text = format_ps([row, {**row, "name": "rts", "order_path": "up"}, {**older, "name": "br"}])
    assert "order path down: the order store is unreachable" in text
    assert text.count("order path") == 1


def test_an_invalid_robot_file_is_read_again_only_when_something_changes(tmp_path, caplog):
    """A file saved broken while its robot was stopped was defined anew at every
    scan, each time saying its strategy's source had changed."""

    sup, robot, path = one_robot(tmp_path)
    try:
        robot.state = "stopped"
        path.write_text("name: si\nsymbols: [Si-12.26\n")
        os.utime(path, (time.time() + 5, time.time() + 5))
        with caplog.at_level("WARNING", logger="roboframe.supervisor"):
            for n in range(5):
                sup._scan(1.0 + n)
        assert robot.state == "invalid"
        assert not [r for r in caplog.records if "starting si again" in r.getMessage()]
        assert len([r for r in caplog.records if "not a valid robot" in r.getMessage()]) == 1
    finally:
        _kill_all(sup)


def test_start_runs_a_robot_down_stopped_again(tmp_path):
    """`down NAME` stopped a robot for good: nothing but restarting the whole
    supervisor (all its robots) started it again."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    try:
        robot = _stuck_robot(sup, path)
        assert sup._command("start", "si") == {"ok": False, "error": "si is running already"}
        assert sup._command("down", "si")["stopping"] == ["si"]
        robot.proc.kill()
        robot.proc.wait(10)
        sup._watch(robot, 1.0)
        assert robot.state == "stopped" and not robot.wanted
        assert sup._command("start", "si") == {"ok": True, "starting": "si"}
        assert robot.wanted and robot.state == "backoff"  # started at the next turn
        reply = sup._command("start", "rts")
        assert not reply["ok"] and reply["error"] == "no robot 'rts' here; robots: si"
    finally:
        _kill_all(sup)


def test_start_without_a_supervisor_says_so(tmp_path):
    out = cli("start", "si", cwd=tmp_path)
    assert out.returncode == 1 and "no supervisor answers" in out.stderr


CSV_ROBOT = """\
name: csvbot
symbols:
  Si-12.26: {tick_size: 1}
feed:
  plugin: csv
  params: {path: ../data/bars.csv, symbol: Si-12.26}
strategy:
  plugin: sma-crossover
  params: {fast: 2, slow: 3, qty: 1}
gateway:
  plugin: paper
"""


def test_a_robot_its_data_broke_is_resumed_its_reason_shown_and_start_retries_at_once(tmp_path, up):
    """A bad row ended the run as stopped: the restart was a new, flat run. It ends
    unfinished now, and the supervisor resumes it; `ps` said only "backoff" (the
    reason was in the robot's own log) and `start` was refused through the wait."""
    from roboframe.supervisor import ask, supervisor_address

    rows = [f"2026-12-01 10:{m:02d}:00,{100 + m % 4},{104},{99},{100 + m % 5},1" for m in range(40)]
    bad = [*rows[:20], "2026-12-01 10:20:30,not-a-price,1,1,1,1", *rows[20:]]
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "bars.csv"
    data.write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(bad) + "\n")
    (tmp_path / "robots" / "csvbot.yaml").write_text(CSV_ROBOT)
    up()
    # failed three times: the next try waits 4 s or more, and `start` comes first --
    # asked from this process: `ps` and `start` processes took seconds apiece to
    # start under load, and the wait was over before `start` came
    address = supervisor_address(tmp_path / "runs" / ".supervisor")

    def csvbot() -> dict:
        return {r["name"]: r for r in ask(address, "ps")["robots"]}["csvbot"]

    wait_until(lambda: ps(tmp_path).get("csvbot", {}).get("restarts", 0) >= 2)
    row = wait_until(lambda: (r := csvbot())["state"] == "backoff" and r, step=0.02)
    assert "feed failed" in row["problem"] and "bars.csv:22" in row["problem"]
    journals = list((tmp_path / "runs" / "csvbot").glob("*.journal"))
    assert len(journals) == 1
    data.write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    assert ask(address, "start", "csvbot") == {"ok": True, "starting": "csvbot"}
    wait_until(lambda: ps(tmp_path)["csvbot"]["last_exit"] == 0, timeout=20)
    assert list((tmp_path / "runs" / "csvbot").glob("*.journal")) == journals  # the same run
    assert verify(journals[0]).ok
    events = [e for _, e, _ in iter_events(JournalReader(journals[0])) if type(e) is Bar]
    assert len(events) == len(rows)  # each bar once, across the failure


def test_a_running_robot_whose_feed_alone_changed_goes_on_with_its_run(tmp_path, up):
    """A changed file restarted its robot as a new run, flat: a trader who moved the
    publisher's address (or paced the feed anew) left the old run's position
    unmanaged. A change of the feed alone ends the run unfinished (SIGHUP: its
    journal flushed) and resumes it: one journal, each bar once, verified."""
    path = write_robot(tmp_path, "alpha", bars=1500, rate=200)
    up()
    wait_until(lambda: (r := ps(tmp_path).get("alpha")) and (r.get("events") or 0) > 200)
    path.write_text(path.read_text().replace("rate: 200", "rate: 300"))
    done = wait_until(lambda: (r := ps(tmp_path)["alpha"])["state"] == "stopped" and r, 60)
    # a planned end, not a crash: no restart counted (it showed exit 1 and an error)
    assert done["restarts"] == 0 and done["last_exit"] == 0
    journals = list((tmp_path / "runs" / "alpha").glob("*.journal"))
    assert len(journals) == 1  # the same run, resumed under the new feed
    assert verify(journals[0]).ok
    bars = [e.ts for _s, e, _r in iter_events(JournalReader(journals[0])) if type(e) is Bar]
    assert len(bars) == 1500 and all(b > a for a, b in itertools.pairwise(bars))
    log = (tmp_path / "runs" / ".supervisor" / "alpha.log").read_text()
    assert "resumed under a changed market-data feed" in log
    assert "feed.params.rate: 200 -> 300" in log


def test_a_save_while_a_robot_ends_to_be_resumed_stops_it_only_for_a_new_run(tmp_path):
    """A feed change sends SIGHUP (end the run, to be resumed). A second save before the
    process was gone -- the feed put back, or changed again -- sent SIGTERM as for any
    change: a robot still starting then stopped its run, and the restart began a new,
    flat run beside the old one's position. Only a change beside the feed's, which is
    a new run, stops it now; a feed's change is taken by the resume."""
    from roboframe.supervisor import Supervisor

    (tmp_path / "robots").mkdir()
    path = write_robot(tmp_path, "si")
    sup = Supervisor(tmp_path / "robots", tmp_path / "state")
    sup._scan(0.0)
    robot = sup.robots[path.resolve()]
    said = "import signal, time; "
    said += "signal.signal(signal.SIGHUP, lambda *_: print('HUP', flush=True)); "
    said += "signal.signal(signal.SIGTERM, lambda *_: print('TERM', flush=True)); "
    said += "print('ready', flush=True); time.sleep(120)"
    robot.proc = subprocess.Popen([sys.executable, "-c", said], stdout=subprocess.PIPE, text=True)
    try:
        assert robot.proc.stdout.readline().strip() == "ready"
        robot.state, robot.started = "running", 0.0

        def save(old, new, at):
            path.write_text(path.read_text().replace(old, new))
            os.utime(path, (time.time() + at, time.time() + at))
            sup._scan(float(at))

        save("rate: 200", "rate: 300", 5)  # the feed alone
        assert robot.state == "stopping"
        assert robot.proc.stdout.readline().strip() == "HUP"
        save("rate: 300", "rate: 200", 10)  # and back, before the process is gone
        save("seed: 3", "seed: 4", 15)  # the feed again
        assert robot.state == "stopping" and robot.raw["feed"]["params"]["seed"] == 4
        save("fast: 3", "fast: 4", 20)  # beside the feed: a new run
        assert robot.proc.stdout.readline().strip() == "TERM"
        robot.proc.kill()
        assert robot.proc.stdout.read().split() == []  # nothing sent in between
    finally:
        _kill_all(sup)


@pytest.mark.parametrize("stop", ["change", "down", "mid-edit"])
def test_a_stop_after_a_robot_ended_its_run_to_be_resumed_stops_that_run(
    tmp_path, monkeypatch, stop
):
    """A feed change ends the run to be resumed (SIGHUP); a change beside the feed
    (or ``down``) came before the supervisor saw the process gone, too late for the
    run, which had already ended. The resume under the changed file was refused:
    the robot was left invalid, its last run's position and orders unmanaged
    whatever open_orders_on_stop said (after ``down``, the run was left as a
    crash leaves it). The supervisor now stops that run as it started
    (``run --finish``), then starts the robot under its file as it is, if wanted;
    a finish the file mid-edit stopped is tried again once the file is saved."""
    from roboframe.supervisor import EXIT_SUSPENDED

    from .test_robot_run import _journaled

    monkeypatch.chdir(tmp_path)  # the robots' journals, as under `up` run here
    sup, robot, path = one_robot(tmp_path, bars=0, rate=200)
    folder = tmp_path / load_robot(path).journal.dir

    def save(old, new, at):
        path.write_text(path.read_text().replace(old, new))
        os.utime(path, (time.time() + at, time.time() + at))
        sup._scan(float(at))

    try:
        sup._watch(robot, 0.0)
        first = robot.proc
        _journaled(path, first)
        save("rate: 200", "rate: 300", 5)  # the feed alone: SIGHUP
        assert robot.state == "stopping" and robot.resuming
        assert first.wait(30) == EXIT_SUSPENDED  # gone, not yet seen gone
        if stop == "down":
            assert sup._command("down", "si")["ok"]
        else:  # beside the feed: a stop, too late for the run
            save("qty: 1", "qty: 2", 10)
        if stop == "mid-edit":
            good = path.read_text()
            path.write_text("name: si\nsymbols: [Si-12.26\n")
            sup._watch(robot, 11.0)
            assert robot.state == "finishing" and robot.proc.wait(60) == 2
            sup._watch(robot, 11.0)
            assert robot.state == "failed" and robot.finish and "--finish" in robot.problem
            path.write_text(good)
            os.utime(path, (time.time() + 20, time.time() + 20))
            sup._scan(20.0)
        sup._watch(robot, 21.0)
        assert robot.state == "finishing" and robot.proc is not first
        assert robot.proc.wait(60) == 0
        (old,) = folder.glob("*.journal")
        sup._watch(robot, 22.0)  # its last run stopped: the robot starts again, if wanted
        sup._watch(robot, 22.0)
        assert not robot.finish and robot.last_exit == 0
        assert robot.state == ("stopped" if stop == "down" else "running")
        stops = [e for _s, e, _r in iter_events(JournalReader(old)) if getattr(e, "command", "")]
        assert [e.command for e in stops][-1] == "stop"
        assert verify(old).ok
        if stop == "down":
            return
        wait_until(lambda: len(list(folder.glob("*.journal"))) == 2)
        (new,) = set(folder.glob("*.journal")) - {old}
        assert JournalReader(new).header["config"]["strategy"]["params"]["qty"] == 2
    finally:
        _kill_all(sup)


def test_down_waits_for_a_finish_about_to_start_and_not_for_one_left_failed(tmp_path):
    """``down`` of everything waits for a run being stopped (``run --finish``) that
    is about to start; one that failed and waits for its file to change has no
    process to wait for: the supervisor waited for it for good."""

    sup, robot, _path = one_robot(tmp_path)
    try:
        robot.finish, robot.state = True, "backoff"
        assert not sup._all_stopped()
        robot.state = "failed"
        assert sup._all_stopped()
    finally:
        _kill_all(sup)
