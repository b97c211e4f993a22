"""A whole robot run: feed, loop, paper exchange, journal, summary, replay."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roboframe.builtin.strategies.sma import SmaCrossover
from roboframe.config import load_robot
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.journal import JournalReader
from roboframe.replay import iter_events, verify
from roboframe.testing.helpers import wait_for

from .conftest import ROOT, roboframe_cmd


def test_live_run_trades_and_journals(robot_file):
    spec = load_robot(robot_file(bars=300, rate=3000))
    robot = LiveRobot(spec, RunOptions())
    summary = robot.run()
    assert summary["stop_reason"] == "feed ended"
    assert summary["state"] == "STOPPED"
    assert summary["events"] >= 600 + 2  # bars of both symbols, start, stop, fills, acks
    assert summary["orders"] > 0
    assert summary["fills"] > 0
    assert summary["error"] is None
    assert set(summary["positions"]) == {"Si-12.26", "RTS-12.26"}
    reader = JournalReader(summary["journal"])
    assert reader.header["robot"] == "fast-robot"
    assert reader.header["config_hash"] == spec.config_hash
    assert reader.header["strategy"]["version"] == SmaCrossover.version
    result = verify(summary["journal"])
    assert result.ok, str(result.divergence)
    assert result.events == summary["events"]
    assert result.compared > 0
    assert result.kernel.snapshot()["positions"] == summary["positions"]


def test_replay_is_identical_under_other_hash_seeds(robot_file):
    summary = LiveRobot(load_robot(robot_file(bars=200)), RunOptions()).run()
    code = (
        "import json, sys; from roboframe.replay import iter_events, verify; "
        "r = verify(sys.argv[1], keep_outputs=True); "
        "print(json.dumps([r.ok, r.compared, sorted(map(repr, r.outputs.items()))]))"
    )
    seen = set()
    for seed in ("0", "1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code, summary["journal"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
        )
        ok, compared, outputs = json.loads(out.stdout)
        assert ok and compared > 0
        seen.add(json.dumps(outputs))
    assert len(seen) == 1


def test_cli_run_prints_summary_and_exits_zero(robot_file):
    proc = roboframe_cmd("run", str(robot_file(bars=100)))
    assert proc.returncode == 0, proc.stderr
    assert "robot      fast-robot" in proc.stdout
    assert "stopped    feed ended; state STOPPED" in proc.stdout
    assert "Si-12.26" in proc.stdout and "RTS-12.26" in proc.stdout
    assert "journal    " in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_run_json_and_journal_dir_option(robot_file, tmp_path):
    target = tmp_path / "elsewhere"
    proc = roboframe_cmd(
        "-q", "run", str(robot_file(bars=60)), "--json", "--journal-dir", str(target)
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["journal"].startswith(str(target))
    assert os.path.exists(summary["journal"])


def test_duration_stops_an_endless_feed(robot_file):
    path = robot_file(bars=0, rate=200)
    start = time.monotonic()
    proc = roboframe_cmd("run", str(path), "--duration", "1.5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 30
    summary = json.loads(proc.stdout)
    assert summary["stop_reason"] == "duration reached"
    assert summary["events"] > 100
    assert verify(summary["journal"]).ok


def _journaled(path: Path, proc: subprocess.Popen, messages: int = 20) -> None:
    """Wait until ``proc``'s run of robot file ``path`` has ``messages`` messages
    in its journal on disk. A process can take seconds to start under load: a
    signal sent before its run takes signals ends it before its start (Ctrl-C:
    "Aborted!"), and a kill then leaves nothing to resume."""
    from roboframe.errors import JournalError
    from roboframe.journal.format import MESSAGE

    folder = Path(load_robot(path).journal.dir)

    def on_disk(journal: Path) -> int:
        try:
            return sum(1 for r in JournalReader(journal).records() if r.kind == MESSAGE)
        except JournalError:  # its header not all written yet
            return 0

    def journaled() -> bool:
        return max(map(on_disk, folder.glob("*.journal")), default=0) >= messages

    if not wait_for(lambda: proc.poll() is not None or journaled(), 30) or not journaled():
        proc.kill()
        proc.wait(10)
        raise AssertionError(f"the run of {path.name} never journaled {messages} messages")


def test_ctrl_c_stops_cleanly(robot_file):
    path = robot_file(bars=0, rate=500)
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "run", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    _journaled(path, proc)  # running, not still starting
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["stop_reason"] == "interrupted"
    reader = JournalReader(summary["journal"])
    records = list(reader.records())
    assert reader.torn_tail is None
    assert records and verify(summary["journal"]).ok


def test_a_stop_asked_together_with_an_end_to_resume_stops_the_run(robot_file):
    """SIGHUP (a feed change under roboframe up: end the run to resume it) and
    SIGTERM (``down``, or a change that makes a new run) both came while the robot
    started: the run ended unfinished, without its stop -- on_stop never ran, the
    orders open_orders_on_stop cancels stayed, and after a change beside the feed's
    the supervisor's resume was refused. The stop, a trader's, wins."""
    robot = LiveRobot(load_robot(robot_file(bars=0, rate=500)), RunOptions())
    robot.request_unfinished("ended to be resumed (SIGHUP), as its supervisor does")
    robot.request_stop("terminated")
    summary = robot.run()
    assert summary["state"] == "STOPPED" and summary["stop_reason"] == "terminated"
    assert verify(summary["journal"]).ok


@pytest.mark.parametrize("where", ["roboframe.config:load_robot", "roboframe.core.robot:RoboLoop"])
def test_a_stop_while_the_robot_is_made_ends_it_before_it_trades(robot_file, where):
    """A stop (Ctrl-C, ``roboframe down``) while ``run`` still loads the robot --
    its file, its plugins, or with its journal just opened: it ends there, with
    nothing run and no journal left (a header alone would be the run --resume
    takes), exit 0. Not deferred until the robot ran its start, which sends
    orders that a stop then leaves working."""
    path = robot_file(bars=0, rate=500)
    module, name = where.split(":")
    code = (
        "import importlib, os, signal, sys\n"
        "from roboframe.cli import main\n"
        f"module = importlib.import_module({module!r})\n"
        f"real = getattr(module, {name!r})\n"
        "def loading(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # while the robot is made\n"
        "    return real(*args, **kwargs)\n"
        f"setattr(module, {name!r}, loading)\n"
        "sys.argv = ['roboframe', 'run', sys.argv[1]]\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 0, (out.returncode, out.stderr)
    assert "stopped (terminated) before its start: nothing ran" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert list((path.parent / "runs").rglob("*.journal")) == []


def test_a_new_run_names_the_orders_the_last_run_left_working(tmp_path):
    """The last run's working orders were counted ("1 order(s) left working"),
    not named: the trader had to dig the journal for what to cancel."""
    (tmp_path / "rests.py").write_text(
        "from roboframe import Strategy\n\n\n"
        "class Rests(Strategy):\n"
        "    def on_bar(self, bar, ctx):\n"
        "        if not ctx.open_orders():\n"
        "            return [ctx.buy(bar.symbol, 1, price=bar.close // 2)]\n"
    )
    path = tmp_path / "rests.yaml"
    path.write_text(
        "name: rests\nsymbols: {Si: {tick_size: 1}}\n"
        "feed: {plugin: synthetic, params: {seed: 1, bars: 0, prices: {Si: 92000}, rate: 50}}\n"
        "strategy: {plugin: 'rests:Rests'}\ngateway: {plugin: paper}\n"
        f"journal: {{dir: '{tmp_path / 'runs'}'}}\n"
    )
    first = roboframe_cmd("-q", "run", str(path), "--duration", "1", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["open_orders"] == 1
    second = roboframe_cmd("run", str(path), "--duration", "0.5", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    run_id = summary["run_id"]
    assert f"1 order(s) left working: rests-{run_id}-1 (" in second.stderr, second.stderr


def test_sighup_while_the_robot_is_made_ends_its_run_to_be_resumed(robot_file):
    """``roboframe up`` sends SIGHUP to a robot whose feed alone changed -- also
    one still loading its file and plugins, before ``run`` took the signal: it
    died of it, as a crash, and said so. Taken from the start now, it ends the
    run to be resumed (exit 5, nothing broke), and ``--resume`` goes on with it."""
    path = robot_file(bars=0, rate=500)
    code = (
        "import os, signal, sys\n"
        "import roboframe.config as config\n"
        "from roboframe.cli import main\n"
        "real = config.load_robot\n"
        "def loading(path):\n"
        "    os.kill(os.getpid(), signal.SIGHUP)  # while the robot is made\n"
        "    return real(path)\n"
        "config.load_robot = loading\n"
        "sys.argv = ['roboframe', 'run', sys.argv[1], '--json']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 5, (out.returncode, out.stderr)
    summary = json.loads(out.stdout)
    assert summary["state"] == "SUSPENDED" and "ERROR" not in out.stderr, out.stderr
    resumed = roboframe_cmd("run", str(path), "--resume", "--duration", "1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["run_id"] == summary["run_id"]


@pytest.mark.parametrize("fsync", ["never", "always"])
def test_fsync_policies_run(robot_file, fsync):
    path = robot_file(bars=50)
    path.write_text(path.read_text().replace("journal:\n", f"journal:\n  fsync: {fsync}\n"))
    summary = LiveRobot(load_robot(path), RunOptions()).run()
    assert verify(summary["journal"]).ok


def test_resume_after_a_finished_run_starts_fresh_and_replays_exactly(robot_file):
    path = robot_file(bars=120)
    first = LiveRobot(load_robot(path), RunOptions()).run()
    time.sleep(1.1)  # run ids are whole seconds
    second = LiveRobot(load_robot(path), RunOptions(resume=True)).run()
    assert second["run_id"] != first["run_id"]  # the first run had stopped: a new run
    assert verify(second["journal"]).ok  # its strategy started fresh, not from run one


def test_resume_continues_a_killed_run_in_the_same_journal(robot_file):
    path = robot_file(bars=0, rate=300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)], cwd=ROOT
    )
    _journaled(path, proc)
    proc.kill()  # SIGKILL: no stop event, maybe a torn last frame
    proc.wait(10)
    out = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "1", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    journals = list(Path(summary["journal"]).parent.glob("*.journal"))
    assert journals == [Path(summary["journal"])]
    assert 0 < summary["process_events"] < summary["events"]  # the rest, the killed run's
    result = verify(summary["journal"])
    assert result.ok and result.events == summary["events"]
    restarted = [
        e
        for _s, e, _r in iter_events(JournalReader(summary["journal"]))
        if e is not None and getattr(e, "command", "") == "restarted"
    ]
    assert len(restarted) == 1
    # the recorded feed went on where the killed run stopped: no bar seen twice, none skipped
    bars = [
        (e.symbol, e.ts)
        for _s, e, _r in iter_events(JournalReader(summary["journal"]))
        if type(e).__name__ == "Bar"
    ]
    for symbol in ("Si-12.26", "RTS-12.26"):
        times = [ts for s, ts in bars if s == symbol]
        assert times == sorted(set(times)), f"{symbol} bars repeated after the restart"
        steps = {b - a for a, b in itertools.pairwise(times)}
        assert steps == {60 * 10**9}, f"{symbol} bars missing around the restart"


CSV_ROBOT = """\
name: csv-robot
symbols:
  Si-12.26: {{tick_size: 1, lot: 1, point_value: 1, currency: RUB}}
feed:
  plugin: csv
  params:
    path: {path}
    symbol: Si-12.26
strategy:
  plugin: sma-crossover
  params: {{fast: 2, slow: 3}}
gateway:
  plugin: paper
journal:
  dir: runs/csv-robot
"""


def test_a_data_file_that_cannot_be_opened_stops_run_and_backtest_before_anything_is_written(
    tmp_path,
):
    robot = tmp_path / "csv.yaml"
    robot.write_text(CSV_ROBOT.format(path="data/missing.csv"))
    for command in ("run", "backtest"):
        proc = roboframe_cmd(command, str(robot), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert (
            f"{robot}:7: feed.params.path: cannot open {tmp_path}/data/missing.csv" in proc.stderr
        )
        assert "relative path is taken from the robot file's folder" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # no journal, not even its folder
    proc = roboframe_cmd("validate", str(robot), cwd=tmp_path)
    assert proc.returncode == 0  # the file is right; this machine lacks the data
    assert "ok (csv-robot" in proc.stdout
    assert "warning: on this machine, run and backtest (without --data) would stop" in proc.stderr
    assert "feed.params.path: cannot open" in proc.stderr


def test_a_data_file_whose_header_cannot_be_read_stops_run_before_anything_is_written(tmp_path):
    """A MOEX ISS export (its time column is 'begin'): run wrote a journal, failed
    as the feed started (exit 1) and left a run unfinished, which the next run
    warned of."""
    (tmp_path / "iss.csv").write_text("open,close,high,low,volume,begin\n1,2,2,1,5,2026-12-01\n")
    robot = tmp_path / "csv.yaml"
    robot.write_text(CSV_ROBOT.format(path="iss.csv"))
    proc = roboframe_cmd("run", str(robot), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"{robot}:7: feed.params.path: {tmp_path}/iss.csv:1: missing column(s) date" in (
        proc.stderr
    )
    assert "rename others with params.columns" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
    robot.write_text(
        CSV_ROBOT.format(path="iss.csv").replace("symbol:", "columns: {begin: date}\n    symbol:")
    )
    proc = roboframe_cmd("-q", "run", str(robot), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_parquet_file_without_the_columns_stops_run_before_anything_is_written(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"open": [1], "high": [2], "low": [1], "close": [2], "begin": ["2026-12-01"]})
    pq.write_table(table, tmp_path / "iss.parquet")
    robot = tmp_path / "pq.yaml"
    robot.write_text(CSV_ROBOT.format(path="iss.parquet").replace("plugin: csv", "plugin: parquet"))
    proc = roboframe_cmd("run", str(robot), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "feed.params.path: " in proc.stderr and "missing column(s) date" in proc.stderr
    assert not (tmp_path / "runs").exists()


def csv_robot(tmp_path, rows: list[str]) -> Path:
    """CSV_ROBOT over ``rows`` of Date,Open,High,Low,Close,Volume in bars.csv."""
    (tmp_path / "bars.csv").write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    robot = tmp_path / "csv.yaml"
    robot.write_text(CSV_ROBOT.format(path="bars.csv"))
    return robot


def test_a_feed_that_breaks_mid_run_ends_it_resumable(tmp_path):
    """A broken feed (or gateway) is no stop: a stop ended the run for good, and
    the next start -- a supervisor's restart, a trader's --resume -- was a new,
    flat run beside the position the broken one left. It ends as a crash does,
    and --resume goes on with it."""
    rows = [f"2026-12-01 10:{m:02d}:00,{100 + m},{101 + m},{99 + m},{100 + m},1" for m in range(9)]
    good = list(rows)
    rows.insert(6, "2026-12-01 10:06:30,not-a-price,1,1,1,1")  # a bad row after a few bars
    robot = csv_robot(tmp_path, rows)
    proc = roboframe_cmd("run", str(robot), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["stop_reason"].startswith("feed failed: ")
    assert "bars.csv:8" in summary["stop_reason"]  # where the data broke
    assert summary["state"] == "FAILED"
    assert summary["events"] > 6  # the good bars before it were traded on
    assert "--resume` goes on with it" in proc.stderr
    reader = JournalReader(tmp_path / summary["journal"])
    commands = [e.command for _, e, _ in iter_events(reader) if type(e).__name__ == "Control"]
    assert commands == ["start"]  # no stop journaled
    csv_robot(tmp_path, good)  # the data put right: the run goes on from where it broke
    proc = roboframe_cmd("run", str(robot), "--resume", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    resumed = json.loads(proc.stdout)
    assert (resumed["run_id"], resumed["stop_reason"]) == (summary["run_id"], "feed ended")
    assert resumed["events"] > summary["events"]
    assert verify(tmp_path / resumed["journal"]).ok


RESTING = """\
from roboframe import Strategy

class Resting(Strategy):
    version = "1.0"

    def on_bar(self, bar, ctx):
        if ctx.position(bar.symbol) == 0 and not ctx.open_orders() and ctx.time < {first_fill}:
            return [ctx.buy(bar.symbol, 2, bar.close - 10)]
"""


@pytest.mark.parametrize("filled_before", [0, 1])
def test_a_resumed_paper_run_still_fills_the_order_resting_before_the_crash(
    tmp_path, filled_before
):
    """The embedded paper exchange starts empty after a crash: the resumed run
    places its resting order again, for the lots left, and the order fills. The
    fresh engine counted its trade ids from P1 again: the fill of the lot left
    of a partly filled order was dropped as a duplicate of the journal's P1."""
    from roboframe.core.events import Bar, Control, Fill, OrderUpdate
    from tests.unit.analyze.journals import write_journal

    lines = ["Date,Open,High,Low,Close,Volume"]
    closes = [100, 100, 100, 100, 85, 100]  # the 90 limit trades on the fifth bar
    for i, close in enumerate(closes, start=1):
        low = min(close, 99)
        lines.append(f"2026-12-01T10:0{i}:00Z,100,101,{low},{close},0")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    first_fill = 1_796_119_500 * 10**9  # 10:05: no new order after the crash
    (tmp_path / "resting.py").write_text(RESTING.format(first_fill=first_fill))
    path = tmp_path / "robot.yaml"
    path.write_text(
        CSV_ROBOT.format(path="bars.csv")
        .replace("plugin: sma-crossover", "plugin: resting:Resting")
        .replace("  params: {fast: 2, slow: 3}\n", "")
        .replace("dir: runs/csv-robot", f"dir: {tmp_path / 'runs'}")
    )
    spec = load_robot(path)
    # the run before the crash: its first bar, the order sent, accepted and resting
    (tmp_path / "runs").mkdir()
    first = Bar("Si-12.26", 1_796_119_260 * 10**9, 100, 101, 99, 100, 0)  # the 10:01 bar
    events = [
        Control("start", first.ts),
        first,  # places the buy at 90
        lambda sent: OrderUpdate(sent[0].client_id, first.ts, "accepted"),
    ]
    if filled_before:  # one of the two lots filled before the crash, as trade P1
        events.append(
            lambda sent: Fill(sent[0].client_id, first.ts, "Si-12.26", "buy", 1, 90, "P1")
        )
    write_journal(tmp_path / "runs" / "20261201T100100Z.journal", spec, events,
                  run_id="20261201T100100Z")  # fmt: skip
    summary = LiveRobot(load_robot(path), RunOptions(resume=True)).run()
    assert summary["run_id"] == "20261201T100100Z" and summary["error"] is None
    assert summary["fills"] == 1 + filled_before and summary["orders"] == 1
    assert summary["positions"]["Si-12.26"]["position"] == 2
    assert verify(summary["journal"]).ok


def test_an_unpaced_file_paper_fills_each_order_at_the_bar_after_it(tmp_path):
    """A csv feed runs unpaced (rate 0, its default): the data stream publishes
    whole batches before the robot handles their first bar. The paper exchange
    took them at once, so every order filled at a price many bars after the one
    it was sent on -- orders of minutes 30 to 91 all at minute 129, differently
    from run to run. Now it keeps in step with the robot: as in a backtest, a
    market order fills at the open of the bar after the one it was sent on."""
    from roboframe.core import codec
    from roboframe.core.events import Bar, Fill, NewOrder

    rows, price = [], 1000
    for m in range(600):
        price += (7, -5, 9, -11, 3, -8)[m % 6] + (m // 40 % 2) * 4 - 2
        rows.append(
            f"2026-12-01 {10 + m // 60:02d}:{m % 60:02d}:00,{price},{price + 3},"
            f"{price - 3},{price + 1},0"
        )  # fmt: skip  (volume unknown: whole fills)
    robot = csv_robot(tmp_path, rows)
    proc = roboframe_cmd("run", str(robot), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the loop steps the paper exchange: unpaced is exact, nothing to warn of
    assert "runs unpaced" not in proc.stderr
    summary = json.loads(proc.stdout)
    (journal,) = (tmp_path / "runs" / "csv-robot").glob("*.journal")
    bars, by_seq, sent_at, fills = [], {}, {}, []
    for seq, event, record in iter_events(JournalReader(journal)):
        if event is None:  # what event seq made the robot do
            actions, _ = codec.decode_outputs(record.payload)
            for action in actions:
                if type(action) is NewOrder:
                    sent_at[action.client_id] = by_seq[seq].ts
            continue
        by_seq[seq] = event
        if type(event) is Bar:
            bars.append(event)
        elif type(event) is Fill:
            fills.append(event)
    assert summary["orders"] >= 10 and len(fills) == len(sent_at)
    opens = {b.ts: b.open for b in bars}
    times = [b.ts for b in bars]
    for fill in fills:
        after = times[times.index(sent_at[fill.client_id]) + 1]
        assert (fill.ts, fill.price) == (after, opens[after]), fill
    # and the run's orders are the backtest's, fills included
    bt = roboframe_cmd("-q", "backtest", str(robot), "--json", cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    backtest = json.loads(bt.stdout)
    assert backtest["orders"] == summary["orders"]
    assert backtest["net_pnl"] == float(summary["net_pnl"])


def test_an_order_a_replay_makes_at_the_stop_of_a_live_run_diverges(robot_file, monkeypatch):
    """The stop is a live journal's last event: an order a replay makes there,
    after the journal's last actions, is a divergence, not actions a crash cut
    off (a backtest's journal had that hole: tests/unit/test_replay.py)."""
    from tests.unit.test_replay import ExtraAtTheEnd

    path = robot_file(bars=12)
    path.write_text(
        path.read_text().replace(
            "plugin: sma-crossover", "plugin: tests.unit.test_replay:ExtraAtTheEnd"
        )
    )
    spec = load_robot(path)
    summary = LiveRobot(spec, RunOptions()).run()
    assert summary["error"] is None and summary["orders"] == 2
    assert verify(summary["journal"]).ok
    monkeypatch.setattr(ExtraAtTheEnd, "extra", True)
    monkeypatch.setattr(ExtraAtTheEnd, "on_stop_too", True)
    result = verify(summary["journal"])
    assert not result.ok and type(result.divergence.event).__name__ == "Control"


def _killed_run(path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)], cwd=ROOT
    )
    _journaled(path, proc)
    proc.kill()  # SIGKILL: the run is left to resume
    proc.wait(10)


def test_a_run_whose_file_changed_resumes_once_the_file_is_put_back(robot_file):
    """The trader edits the robot file while its run is down. The resume is
    refused (the journal's rebuild must run as the run did), and the refusal says
    what changed and how to go on; `replay --config` gives back the file as the
    run had it, and with it put back the run resumes in its own journal."""
    path = robot_file(bars=0, rate=300)
    _killed_run(path)
    journal = next((path.parent / "runs" / "fast-robot").glob("*.journal"))
    original = path.read_text()
    path.write_text(original.replace("max_position: 3", "max_position: 4"))
    refused = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "1")
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert "risk.max_position: 3 -> 4" in refused.stderr
    assert f"roboframe replay {journal} --config" in refused.stderr
    assert "ctl" not in refused.stderr  # a risk limit cannot be changed live

    put_back = roboframe_cmd("replay", str(journal), "--config")
    assert put_back.returncode == 0, put_back.stderr
    path.write_text(put_back.stdout)
    # the default control endpoint comes back (stored as null, written out it was off:
    # no ctl for the set the refusal names, no one-process lock)
    assert load_robot(path).control.address is not None
    out = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "1", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert Path(summary["journal"]) == journal
    assert verify(journal).ok


def test_a_params_change_refused_at_resume_names_the_live_set_that_makes_it(robot_file):
    path = robot_file(bars=0, rate=300)
    _killed_run(path)
    path.write_text(path.read_text().replace("qty: 1", "qty: 2, long_only: true"))
    refused = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "1")
    assert refused.returncode == 2
    assert "strategy.params.long_only: false -> true" in refused.stderr
    assert "strategy.params.qty: 1 -> 2" in refused.stderr
    assert f"roboframe ctl {path} set long_only=true qty=2" in refused.stderr


def test_finish_stops_a_killed_run_under_the_file_it_started_with(robot_file):
    """A run killed, then its file changed: the resume is refused, and the run's
    position and working orders stayed unmanaged until the trader put the file
    back, resumed and stopped it. ``run --finish`` stops it as a stop would have,
    under the robot file its journal holds, before any market event of its own;
    nothing new starts, and the next run is a new one under the file as it is."""
    from roboframe.core.events import Bar, Control

    path = robot_file(bars=0, rate=300)
    _killed_run(path)
    journal = next((path.parent / "runs" / "fast-robot").glob("*.journal"))
    path.write_text(path.read_text().replace("max_position: 3", "max_position: 4"))
    both = roboframe_cmd("-q", "run", str(path), "--finish", "--resume")
    assert both.returncode == 2 and "not with --resume" in both.stderr

    out = roboframe_cmd("-q", "run", str(path), "--finish", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert Path(summary["journal"]) == journal
    assert summary["state"] == "STOPPED" and summary["stop_reason"].startswith("finished")
    assert verify(journal).ok
    events = [e for _s, e, _r in iter_events(JournalReader(journal))]
    kinds = [(type(e), getattr(e, "command", None)) for e in events]
    restarted = kinds.index((Control, "restarted"))
    stop = kinds.index((Control, "stop"))
    assert restarted < stop and kinds.count((Control, "stop")) == 1
    assert not [e for e in events[restarted:stop] if type(e) is Bar]  # stopped at once

    again = roboframe_cmd("-q", "run", str(path), "--finish")
    assert again.returncode == 0 and "nothing to finish" in again.stderr
    fresh = roboframe_cmd("-q", "run", str(path), "--resume", "--duration", "1", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert Path(json.loads(fresh.stdout)["journal"]) != journal  # a new run, the new file


def test_finish_of_a_journal_without_its_robot_file_says_so(robot_file):
    """A journal whose header holds no robot file (another writer's) cannot say
    what to finish the run under: one line naming the journal, no traceback."""
    from roboframe.core import codec
    from roboframe.core.events import Control
    from roboframe.journal import JournalWriter

    path = robot_file()
    folder = path.parent / "runs" / "fast-robot"
    folder.mkdir(parents=True)
    header = {"robot": "fast-robot", "run_id": "20260101T000000Z", "config_hash": "other"}
    writer = JournalWriter(folder / "20260101T000000Z.journal", header)
    writer.append_message(1, 0, codec.encode(Control("start", 0)))
    writer.close()
    out = roboframe_cmd("-q", "run", str(path), "--finish")
    assert out.returncode == 2, out.stderr
    assert "holds no robot file to finish the run under" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_position_limit_that_leaves_a_symbol_out_is_warned_of(robot_file):
    """``max_position: {Si-12.26: 3}`` on a robot that also trades RTS left RTS
    with no limit, and validate said ok: limits are optional, so it stays valid,
    but validate and the run both say which symbols have none."""
    path = robot_file(bars=50)
    both = roboframe_cmd("validate", str(path))
    assert both.returncode == 0 and "max_position" not in both.stderr  # one number: all
    path.write_text(path.read_text().replace("max_position: 3", "max_position: {Si-12.26: 3}"))
    one = roboframe_cmd("validate", str(path))
    assert one.returncode == 0, one.stderr
    assert "risk.max_position sets no limit for RTS-12.26" in one.stderr
    run = roboframe_cmd("run", str(path))
    assert run.returncode == 0, run.stderr
    assert "risk.max_position sets no limit for RTS-12.26" in run.stderr


def test_a_loop_address_that_cannot_be_bound_is_one_line_not_a_traceback(robot_file, tmp_path):
    path = robot_file(extra=f"loop: {{address: 'ipc://{tmp_path}/no/such/folder/loop.sock'}}\n")
    out = roboframe_cmd("-q", "run", str(path), "--duration", "1")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"loop.address ipc://{tmp_path}/no/such/folder/loop.sock: cannot bind" in out.stderr


def test_a_new_run_says_what_the_last_run_left(robot_file):
    """`down` then `up`, or a stop then `run`: the new run starts flat, and the
    position and working orders the last run ended with were forgotten without
    a word (max_position and the daily loss then count per run, not per
    account). The new run names them; and a last run that never ended, which
    --resume would have continued."""
    path = robot_file(bars=300, rate=0)
    first = roboframe_cmd("-q", "run", str(path), "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    held = {s: p["position"] for s, p in summary["positions"].items() if p["position"]}
    assert held  # the crossover ends in the market
    second = roboframe_cmd("run", str(path), "--duration", "1", "--json")
    assert second.returncode == 0, second.stderr
    name = Path(summary["journal"]).name
    said = f"the last run ({name}) ended with " + ", ".join(
        f"{s} {q:+d}" for s, q in sorted(held.items())
    )
    assert said in second.stderr and "this run starts flat" in second.stderr
    # a run killed mid-way: the next one without --resume is told it leaves it behind
    endless = robot_file(name="endless", bars=0, rate=300)
    _killed_run(endless)
    third = roboframe_cmd("run", str(endless), "--duration", "1")
    assert "did not end cleanly" in third.stderr and "run --resume" in third.stderr


@pytest.mark.parametrize("second", ["--resume", "new run"])
def test_a_second_process_of_a_robot_stops_before_it_touches_the_journal(robot_file, second):
    """With its control endpoint off nothing stopped a second process: a --resume
    of the running run read it, cut its "torn" tail and appended beside the first
    (checksum mismatch: the run could no longer be resumed or analysed); a new
    run traded beside it. The journal folder is one process's."""
    path = robot_file(bars=0, rate=200, extra="control: {address: null}\n")
    first = subprocess.Popen([sys.executable, "-m", "roboframe.cli", "-q", "run", str(path)])
    try:
        journals = path.parent / "runs" / "fast-robot"
        assert wait_for(lambda: list(journals.glob("*.journal")), timeout=10)
        time.sleep(1.0)
        args = ["--resume"] if second == "--resume" else []
        out = roboframe_cmd("-q", "run", str(path), *args, "--duration", "1")
        assert out.returncode == 4, out.stderr
        assert "is in use by another running process" in out.stderr
        assert len(list(journals.glob("*.journal"))) == 1
    finally:
        first.terminate()
        first.wait(30)
    (journal,) = journals.glob("*.journal")
    assert verify(journal).ok  # whole, and the first run's alone


LIMIT_THEN_FAIL = """\
import os
from roboframe import Strategy

class LimitThenFail(Strategy):
    version = "1.0"

    def __init__(self, params):
        super().__init__(params)
        self.seen = {}

    def on_bar(self, bar, ctx):
        n = self.seen[bar.symbol] = self.seen.get(bar.symbol, 0) + 1
        if bar.symbol == "BBB" and n == 5:
            return [ctx.buy("BBB", 1, price=1950)]
        if bar.symbol == "AAA" and n == 10 and os.path.exists(os.environ["RF_FLAG"]):
            raise RuntimeError("a bug, fixed before the resume")
        if bar.symbol == "AAA" and n in (3, 12):
            return [ctx.buy("AAA", 1)]
        return None
"""


def fail_fix_resume(tmp_path, module: str, source: str, rows: list[str], robot: str):
    """Run the robot of ``robot`` (YAML) on ``rows`` with its strategy ``source``
    (module ``module``) raising while the flag file exists (exit 3); remove the
    flag and resume. The resumed run's summary and the backtest's statistics,
    once ``replay --verify`` passed on the journal."""
    (tmp_path / f"{module}.py").write_text(source)
    (tmp_path / "bars.csv").write_text(
        "\n".join(["Date,Symbol,Open,High,Low,Close,Volume", *rows]) + "\n"
    )
    (tmp_path / "r.yaml").write_text(
        robot + "feed: {plugin: csv, params: {path: bars.csv}}\ngateway: {plugin: paper}\n"
        "journal: {dir: runs}\ncontrol: {address: null}\n"
    )
    flag = tmp_path / "broken"
    flag.touch()
    env = {"PYTHONPATH": str(tmp_path), "RF_FLAG": str(flag)}

    def cli(*args):
        return roboframe_cmd(*args, env=env, cwd=tmp_path)

    first = cli("-q", "run", "r.yaml")
    assert first.returncode == 3, first.stderr
    flag.unlink()
    resumed = cli("-q", "run", "r.yaml", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    check = cli("replay", summary["journal"], "--verify")
    assert check.returncode == 0, check.stderr
    bt = cli("-q", "backtest", "r.yaml", "--json")
    assert bt.returncode == 0, bt.stderr
    return summary, json.loads(bt.stdout)


def test_a_paper_run_resumed_after_an_error_fills_what_the_uninterrupted_run_fills(tmp_path):
    """After a resume the open orders went to a fresh paper engine placed anew, at
    the last journaled time: the rest of that time's bars, which the feed sends
    again, could not fill them (a limit the next BBB bar traded through stayed
    open). They rest again as they were, placed when they were."""
    rows = []
    for m in range(1, 16):
        low = 1900 if m == 10 else 1990
        rows.append(f"2026-12-01T10:{m:02d}:00Z,AAA,100,101,99,100,0")
        rows.append(f"2026-12-01T10:{m:02d}:00Z,BBB,2000,2010,{low},2000,0")
    robot = (
        "name: resumer\nsymbols: {AAA: {tick_size: 1}, BBB: {tick_size: 1}}\n"
        "strategy: {plugin: limitmod:LimitThenFail}\n"
    )
    summary, bt = fail_fix_resume(tmp_path, "limitmod", LIMIT_THEN_FAIL, rows, robot)
    assert summary["positions"]["BBB"]["position"] == 1  # the limit filled at 10:10
    assert summary["positions"]["AAA"]["position"] == 2
    assert float(summary["net_pnl"]) == bt["net_pnl"]


FAILS_ON_A_FILL = """\
import os
from roboframe import Strategy

class FailsOnAFill(Strategy):
    version = "1.0"

    def __init__(self, params):
        super().__init__(params)
        self.bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == 1:
            return [ctx.buy("S", 10, price=98), ctx.buy("S", 5, price=80)]
        if self.bars == 2:  # the second order waits at the back; a replace moves it
            return [ctx.replace(ctx.open_orders()[1], price=99)]
        return None

    def on_fill(self, fill, ctx):
        if os.path.exists(os.environ["RF_FLAG"]):
            raise RuntimeError("a bug, fixed before the resume")
"""


def test_a_paper_run_resumed_after_an_error_on_a_fill_matches_no_bar_twice(tmp_path):
    """The fills a bar makes are journaled before the bar: a run stopped between
    them left the bar unhandled, the feed sent it again, and the fresh engine
    matched it again -- 6 lots from a bar of volume 3. And a replaced order
    rests again where the replace put it, at the back of the queue."""
    rows = [
        f"2026-12-01T10:0{m}:00Z,S,100,101,{low},100,3"
        for m, low in enumerate((99, 99, 95, 99, 95, 99))
    ]
    robot = (
        "name: filler\nsymbols: {S: {tick_size: 1}}\n"
        "strategy: {plugin: failmod:FailsOnAFill}\n"
        "risk: {max_order_qty: 100, max_position: 100}\n"
    )
    summary, bt = fail_fix_resume(tmp_path, "failmod", FAILS_ON_A_FILL, rows, robot)
    assert summary["positions"]["S"]["position"] == 6  # 3 a bar at 10:02 and 10:04
    assert float(summary["net_pnl"]) == bt["net_pnl"]


def postgres_robot(robot_file, url: str, name: str = "fast-robot", poll_ms: int | None = None):
    """An endless robot file (stopped by --duration) whose orders go to the order
    store at ``url``, with no exchange unless the test starts one."""
    path = robot_file(name=name, bars=0, rate=50)
    paper = "gateway:\n  plugin: paper\n  params: {commission: 2.0}\n"
    text = path.read_text()
    assert paper in text
    params = f'url: "{url}"' + (f", poll_ms: {poll_ms}" if poll_ms is not None else "")
    path.write_text(
        text.replace(paper, "") + f"gateway:\n  plugin: postgres\n  params: {{{params}}}\n"
    )
    return path


def test_orders_nothing_acknowledges_are_said_in_the_log(robot_file, pg_url, monkeypatch, caplog):
    """With the exchange process dead, the store took the robot's orders, the order
    path stayed "up", and nothing said the orders sat unanswered."""
    import roboframe.core.robot as robot_module

    monkeypatch.setattr(robot_module, "UNACKNOWLEDGED_S", 0.3)
    path = postgres_robot(robot_file, pg_url)
    with caplog.at_level("WARNING"):
        summary = LiveRobot(load_robot(path), RunOptions(duration_s=3)).run()
    assert summary["orders"] >= 1
    said = [r.getMessage() for r in caplog.records if "not acknowledged" in r.getMessage()]
    assert len(said) == 1  # once, not every second
    assert re.match(r"\d+ order\(s\) not acknowledged by the exchange side for 0.3s", said[0])
    assert "is it running (`roboframe exchange`, the broker bridge)?" in said[0]


def test_new_orders_wait_while_nothing_acknowledges_the_ones_sent(
    robot_file, pg_url, monkeypatch, caplog
):
    """With the exchange process dead, the store took every order and the order path
    stayed "up": the strategy's orders piled up behind the first, to fill at once,
    at later prices, when an exchange came back. Now, once orders wait unacknowledged,
    new ones are refused (journaled, so replay agrees) until the exchange side takes
    them, and then they go again."""
    import threading

    import roboframe.core.robot as robot_module
    from roboframe.core.events import Control
    from tests.integration.exchange import RunningExchange

    monkeypatch.setattr(robot_module, "UNACKNOWLEDGED_S", 0.3)
    path = postgres_robot(robot_file, pg_url, "stalled", poll_ms=100)
    exchanges = []
    late_start = threading.Timer(3.0, lambda: exchanges.append(RunningExchange(pg_url, fast=False)))
    late_start.start()
    try:
        with caplog.at_level("INFO", logger="roboframe.core.kernel"):
            summary = LiveRobot(load_robot(path), RunOptions(duration_s=6)).run()
    finally:
        late_start.join()
        for running in exchanges:
            running.close()
    said = [r.getMessage() for r in caplog.records]
    again = next(i for i, m in enumerate(said) if "acknowledges orders again" in m)
    refused = [i for i, m in enumerate(said) if "exchange side not acknowledging orders" in m]
    assert refused, "no order was refused while the first ones waited"
    assert max(refused) < again  # none after the exchange side took them
    assert re.search(r"\(\d+ order\(s\) unacknowledged for 0.3s: stalled-", said[refused[0]])
    acks = [
        event.args["status"]
        for _seq, event, _record in iter_events(JournalReader(summary["journal"]))
        if type(event) is Control and event.command == "acks"
    ]
    assert acks[:2] == ["late", "ok"]
    assert verify(summary["journal"]).ok  # the refusals replay as they happened


def test_a_run_resumed_stalled_stays_stalled_until_its_orders_are_taken(
    robot_file, pg_url, monkeypatch, caplog
):
    """A stalled run ended unfinished (SIGHUP: its feed changed under roboframe up; a
    crash) and resumed journaled "ok" at once, with nothing acknowledged: the log
    said the exchange side acknowledged orders again, and new orders piled up behind
    the old ones for another wait. It stays stalled until the exchange side takes
    the orders it waited on."""
    import threading

    import roboframe.core.robot as robot_module
    from roboframe.core.events import Control
    from tests.integration.exchange import RunningExchange

    monkeypatch.setattr(robot_module, "UNACKNOWLEDGED_S", 0.3)
    path = postgres_robot(robot_file, pg_url, "stalled", poll_ms=100)

    def acks(journal) -> list[str]:
        return [
            "restarted" if event.command == "restarted" else event.args["status"]
            for _seq, event, _record in iter_events(JournalReader(journal))
            if type(event) is Control and event.command in ("acks", "restarted")
        ]

    robot = LiveRobot(load_robot(path), RunOptions())

    def end_once_stalled() -> None:  # as SIGHUP does
        wait_for(lambda: bool(robot.kernel.risk.unacknowledged), timeout=30, step=0.05)
        robot.request_unfinished("ended to be resumed (SIGHUP)")

    ending = threading.Thread(target=end_once_stalled)
    ending.start()
    try:
        first = robot.run()
    finally:
        ending.join()
    assert first["state"] == "SUSPENDED" and acks(first["journal"]) == ["late"]
    exchanges: list = []
    started: list[float] = []

    def exchange_back() -> None:
        started.append(time.time())
        exchanges.append(RunningExchange(pg_url, fast=False))

    late_start = threading.Timer(3.0, exchange_back)
    late_start.start()
    try:
        with caplog.at_level("WARNING", logger="roboframe.core.robot"):
            again = LiveRobot(load_robot(path), RunOptions(resume=True, duration_s=7)).run()
    finally:
        late_start.join()
        for running in exchanges:
            running.close()
    assert again["run_id"] == first["run_id"]
    assert acks(again["journal"])[:3] == ["late", "restarted", "ok"]
    back = [r.created for r in caplog.records if "acknowledges orders again" in r.getMessage()]
    assert back and back[0] > started[0]  # not at the resume: once they were taken
    assert verify(again["journal"]).ok


def test_a_run_a_broken_feed_ended_resumes_once_the_file_names_a_good_one(tmp_path):
    """A bad row ended the run unfinished (exit 1, resumable). The trader points the
    feed at a corrected file: the resume was refused as a changed robot file, and
    the way on was a new, flat run beside the old one's position. A change of the
    feed alone is resumed: the same run goes on, and its journal verifies."""
    header = "Date,Symbol,Open,High,Low,Close,Volume"
    rows = [
        f"2026-12-01 10:{m:02d}:00,BBB,{2000 + m % 7 * 5},{2005 + m % 7 * 5},"
        f"{1995 + m % 7 * 5},{2000 + m % 7 * 5},10"
        for m in range(1, 21)
    ]
    broken = [*rows[:10], "2026-12-01 10:11:00,BBB,abc,1,1,1,1", *rows[11:]]
    (tmp_path / "bars.csv").write_text("\n".join([header, *broken]) + "\n")
    (tmp_path / "fixed.csv").write_text("\n".join([header, *rows]) + "\n")
    robot = (
        "name: fr\nsymbols: {BBB: {tick_size: 1}}\n"
        "strategy: {plugin: sma-crossover, params: {fast: 2, slow: 4}}\n"
        "risk: {max_order_qty: 5, max_position: 5}\n"
        "gateway: {plugin: paper}\njournal: {dir: runs}\ncontrol: {address: null}\n"
    )
    path = tmp_path / "r.yaml"
    path.write_text(robot + "feed: {plugin: csv, params: {path: bars.csv}}\n")
    first = roboframe_cmd("-q", "run", "r.yaml", "--json", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    ended = json.loads(first.stdout)
    assert ended["state"] == "FAILED"
    path.write_text(robot + "feed: {plugin: csv, params: {path: fixed.csv}}\n")
    resumed = roboframe_cmd("run", "r.yaml", "--resume", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed under a changed market-data feed" in resumed.stderr
    assert 'feed.params.path: "bars.csv" -> "fixed.csv"' in resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == ended["run_id"]
    assert summary["events"] > ended["events"]  # the bars after the bad row
    check = roboframe_cmd("replay", summary["journal"], "--verify", cwd=tmp_path)
    assert check.returncode == 0, check.stderr


def test_orders_waiting_out_a_store_outage_do_not_stall_the_order_path(
    robot_file, pg_url, monkeypatch, caplog
):
    """Orders kept through a store outage waited for the store, not the exchange
    side: the robot said the exchange side acknowledged nothing ("is it running?")
    and stalled its order path, refused for the outage already."""
    import threading

    import roboframe.core.robot as robot_module
    from roboframe.core.events import Control
    from roboframe.core.orders import NEW
    from roboframe.testing.tcpproxy import proxied_url
    from tests.integration.exchange import RunningExchange

    monkeypatch.setattr(robot_module, "UNACKNOWLEDGED_S", 1.0)
    proxy, proxied = proxied_url(pg_url)
    path = postgres_robot(robot_file, proxied, "outage", poll_ms=100)
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=60))
    exchanges: list = []
    waiting: list[str] = []

    def unacknowledged() -> list[str]:
        return [cid for cid, own in list(robot.kernel.orders.open.items()) if own.status == NEW]

    def outage() -> None:
        """No exchange until an order waits: the store is cut with it unanswered
        (for longer than UNACKNOWLEDGED_S), and an exchange answers it from then."""
        try:
            if wait_for(lambda: bool(unacknowledged()), timeout=30, step=0.005):
                proxy.cut()
                waiting.extend(unacknowledged())
                exchanges.append(RunningExchange(pg_url, fast=False))
                time.sleep(2.5)  # the outage
                proxy.restore()
                time.sleep(2.5)  # the order path back up, the exchange side answering
        finally:
            robot.request_stop("test over")

    cutter = threading.Thread(target=outage)
    cutter.start()
    try:
        with caplog.at_level("WARNING"):
            summary = robot.run()
    finally:
        cutter.join()
        for running in exchanges:
            running.close()
        proxy.close()
    assert waiting, "no order waited for an answer to be cut off with"
    assert not set(waiting) & set(unacknowledged())  # answered once the store was back
    controls = [
        (event.command, event.args.get("status"))
        for _seq, event, _record in iter_events(JournalReader(summary["journal"]))
        if type(event) is Control and event.command in ("gateway", "acks")
    ]
    assert ("gateway", "down") in controls and ("gateway", "up") in controls  # it was out
    assert not [c for c in controls if c[0] == "acks"], controls
    assert not [r for r in caplog.records if "not acknowledged" in r.getMessage()]
