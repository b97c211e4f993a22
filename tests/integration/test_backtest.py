"""Backtest and replay from the command line: same kernel, verified, deterministic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roboframe.config import load_robot
from roboframe.core import codec
from roboframe.core.events import NewOrder, Replace
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.journal import ACTIONS, JournalReader

from .conftest import ROOT, roboframe_cmd

ROBOT = """\
name: csv-robot
symbols:
  Si-12.26: {{tick_size: 1}}
feed:
  plugin: csv
  params: {{path: bars.csv, symbol: Si-12.26, rate: {rate}}}
strategy:
  plugin: sma-crossover
  params: {{fast: 3, slow: 7}}
gateway:
  plugin: paper
journal:
  dir: {journal}
"""


def write_bars(path, n=240):
    """A wave, so the averages cross many times; integer prices."""
    lines = ["Date,Open,High,Low,Close,Volume"]
    prev = 92000
    for i in range(n):
        close = 92000 + round(400 * math.sin(i / 9.0)) + (i % 5)
        opening = prev + (i % 3) - 1  # small gaps: next open differs from this close
        lines.append(
            f"2026-12-01T{7 + i // 60:02d}:{i % 60:02d}:00Z,{opening},"
            f"{max(opening, close) + 3},{min(opening, close) - 3},{close},0"
        )
        prev = close
    path.write_text("\n".join(lines) + "\n")


def robot(tmp_path, rate=0):
    write_bars(tmp_path / "bars.csv")
    path = tmp_path / "robot.yaml"
    path.write_text(ROBOT.format(rate=rate, journal=tmp_path / "runs"))
    return path


def robot_with_strategy(tmp_path, module: str, source: str, cls: str, rate=0):
    """``robot`` with the strategy ``module:cls`` (written from ``source``) in
    place of the SMA crossover and its params."""
    (tmp_path / f"{module}.py").write_text(source)
    path = robot(tmp_path, rate=rate)
    path.write_text(
        path.read_text()
        .replace("plugin: sma-crossover", f"plugin: {module}:{cls}")
        .replace("  params: {fast: 3, slow: 7}\n", "")
    )
    return path


def new_orders(journal_path):
    out = []
    for record in JournalReader(journal_path).records():
        if record.kind == ACTIONS:
            actions, _rejected = codec.decode_outputs(record.payload)
            out += [(a.symbol, a.side, a.qty, a.type) for a in actions if type(a) is NewOrder]
    return out


def backtest_json(*args, env=None):
    proc = roboframe_cmd("-q", "backtest", *args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_backtest_and_live_run_give_the_same_orders(tmp_path):
    path = robot(tmp_path, rate=200)
    live = LiveRobot(load_robot(path), RunOptions()).run()
    bt = backtest_json(str(path), "--data", str(tmp_path / "bars.csv"))
    live_orders = new_orders(live["journal"])
    assert len(live_orders) >= 5
    assert live_orders == new_orders(bt["journal"])


def test_backtest_json_has_stable_keys_and_a_verifiable_journal(tmp_path):
    stats = backtest_json(str(robot(tmp_path)))
    for key in (
        "trades",
        "equity_final",
        "return_pct",
        "max_drawdown_pct",
        "win_rate_pct",
        "profit_factor",
        "exposure_pct",
        "net_pnl",
        "open_trades_at_end",
    ):
        assert key in stats
    assert stats["events"] == 240 and stats["trades"] > 5
    proc = roboframe_cmd("replay", stats["journal"], "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "events verified" in proc.stdout and "action records match" in proc.stdout


def test_backtest_table_output(tmp_path):
    proc = roboframe_cmd("backtest", str(robot(tmp_path)), "--trades")
    assert proc.returncode == 0, proc.stderr
    for label in (
        "Return [%]",
        "Max. drawdown [%]",
        "Win rate [%]",
        "Profit factor",
        "Exposure [%]",
        "Equity final",
        "Trades",
    ):
        assert label in proc.stdout
    assert "(open at end)" in proc.stdout or "open at end (closed at last price)" in proc.stdout


def test_journals_are_byte_identical_across_runs_and_hash_seeds(tmp_path):
    path = robot(tmp_path)
    contents = set()
    for seed in ("0", "1", "777"):
        out = tmp_path / f"j{seed}"
        stats = backtest_json(str(path), "--journal-dir", str(out), env={"PYTHONHASHSEED": seed})
        contents.add(Path(stats["journal"]).read_bytes())
    assert len(contents) == 1


def test_from_to_window_and_fill_at_close(tmp_path):
    path = robot(tmp_path)
    part = backtest_json(
        str(path), "--from", "2026-12-01T08:00:00Z", "--to", "2026-12-01T09:59:00Z", "--no-journal"
    )
    assert part["events"] == 120 and part["journal"] is None
    close = backtest_json(str(path), "--fill-at", "close", "--no-journal", "--cash", "500000")
    nxt = backtest_json(str(path), "--no-journal", "--cash", "500000")
    assert close["initial_cash"] == 500000.0
    assert close["trades"] == nxt["trades"] and close["equity_final"] != nxt["equity_final"]


def test_multi_symbol_files_are_merged_in_time_order(tmp_path):
    write_bars(tmp_path / "si.csv")
    (tmp_path / "rts.csv").write_text(
        "Date,Open,High,Low,Close\n2026-12-01T07:00:30Z,110000,110010,109990,110000\n"
        "2026-12-01T07:01:00Z,110000,110010,109990,110010\n"
    )
    path = tmp_path / "two.yaml"
    path.write_text(
        ROBOT.format(rate=0, journal=tmp_path / "runs").replace(
            "  Si-12.26: {tick_size: 1}", "  Si-12.26: {tick_size: 1}\n  RTS-12.26: {tick_size: 10}"
        )
    )
    stats = backtest_json(
        str(path),
        "--data",
        f"Si-12.26={tmp_path / 'si.csv'}",
        "--data",
        f"RTS-12.26={tmp_path / 'rts.csv'}",
    )
    assert stats["events"] == 242
    times = []
    symbols = []
    reader = JournalReader(stats["journal"])
    from roboframe.replay import iter_events

    for _seq, event, _rec in iter_events(reader):
        if event is not None and hasattr(event, "close"):
            times.append(event.ts)
            symbols.append(event.symbol)
    assert times == sorted(times)
    assert symbols[:3] == ["Si-12.26", "RTS-12.26", "Si-12.26"]  # 07:00, 07:00:30, 07:01 (Si first)


def test_replay_verify_on_a_live_journal(tmp_path):
    summary = LiveRobot(load_robot(robot(tmp_path, rate=0)), RunOptions()).run()
    proc = roboframe_cmd("replay", summary["journal"], "--verify")
    assert proc.returncode == 0, proc.stderr


def test_tampered_journal_is_refused(tmp_path):
    stats = backtest_json(str(robot(tmp_path)))
    journal = Path(stats["journal"])
    data = bytearray(journal.read_bytes())
    data[len(data) // 2] ^= 0x10
    journal.write_bytes(bytes(data))
    proc = roboframe_cmd("replay", stats["journal"], "--verify")
    assert proc.returncode == 1
    assert "corrupt at byte" in proc.stderr and "refusing to read past it" in proc.stderr
    assert "Traceback" not in proc.stderr


STRATEGY = """
from roboframe import Strategy

class Flip(Strategy):
    version = "{version}"

    def on_bar(self, bar, ctx):
        if bar.close % {modulo} == 0:
            return ctx.order_target(bar.symbol, 1 if ctx.position(bar.symbol) <= 0 else -1)
"""


def test_changed_strategy_warns_and_diverges_on_request(tmp_path):
    source = STRATEGY.format(version="1.0", modulo=3)
    path = robot_with_strategy(tmp_path, "flipmod", source, "Flip")
    env = {"PYTHONPATH": str(tmp_path)}
    stats = backtest_json(str(path), env=env)
    assert roboframe_cmd("replay", stats["journal"], "--verify", env=env).returncode == 0
    (tmp_path / "flipmod.py").write_text(STRATEGY.format(version="1.1", modulo=4))
    proc = roboframe_cmd("replay", stats["journal"], "--verify", env=env)
    assert proc.returncode == 1
    assert "warning: strategy version 1.0 -> 1.1" in proc.stderr
    assert "pass --force to verify anyway" in proc.stderr
    proc = roboframe_cmd("replay", stats["journal"], "--verify", "--force", env=env)
    assert proc.returncode == 1
    assert "divergence at seq" in proc.stderr
    assert "journaled: actions" in proc.stderr and "replayed:  actions" in proc.stderr


def test_replay_until_warns_when_the_strategy_changed(tmp_path):
    """The state --until prints is what the code of today makes of the journal:
    with a changed strategy it may not be the run's, and the trader is told."""
    path = robot_with_strategy(
        tmp_path, "flipmod2", STRATEGY.format(version="1.0", modulo=3), "Flip"
    )
    env = {"PYTHONPATH": str(tmp_path)}
    stats = backtest_json(str(path), env=env)
    proc = roboframe_cmd("replay", stats["journal"], "--until", "50", "--json", env=env)
    assert proc.returncode == 0 and proc.stderr == ""
    (tmp_path / "flipmod2.py").write_text(STRATEGY.format(version="1.1", modulo=4))
    proc = roboframe_cmd("replay", stats["journal"], "--until", "50", "--json", env=env)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["seq"] == 50
    assert "warning: strategy version 1.0 -> 1.1" in proc.stderr


def test_replay_until_prints_the_state_at_that_point(tmp_path):
    stats = backtest_json(str(robot(tmp_path)))
    first_fill = None
    from roboframe.core.events import Fill
    from roboframe.replay import iter_events

    for seq, event, _rec in iter_events(JournalReader(stats["journal"])):
        if isinstance(event, Fill):
            first_fill = (seq, event)
            break
    seq, fill = first_fill
    before = json.loads(
        roboframe_cmd("replay", stats["journal"], "--until", str(seq - 1), "--json").stdout
    )
    after = json.loads(
        roboframe_cmd("replay", stats["journal"], "--until", str(seq), "--json").stdout
    )
    sign = 1 if fill.side == "buy" else -1
    pos_before = before["positions"]["Si-12.26"]["position"]
    assert after["positions"]["Si-12.26"]["position"] == pos_before + sign * fill.qty
    # past the end: the state at the end, and the trader is told where it ends
    past = roboframe_cmd("replay", stats["journal"], "--until", "1000000", "--json")
    assert past.returncode == 0
    end = json.loads(past.stdout)["seq"]
    assert 0 < end < 1000000
    assert f"the journal ends at seq {end}" in past.stderr
    at_end = roboframe_cmd("replay", stats["journal"], "--until", str(end))
    assert "ends at" not in at_end.stderr
    assert before["seq"] == seq - 1 and after["seq"] == seq
    assert len(before["open_orders"]) == 1 and after["open_orders"] == []
    assert "signal" in after["strategy"]
    text = roboframe_cmd("replay", stats["journal"], "--until", str(seq))
    assert f"after seq {seq}" in text.stdout and "positions:" in text.stdout


def test_backtest_of_live_only_feed_needs_data(tmp_path):
    path = robot(tmp_path)
    path.write_text(
        path.read_text().replace(
            "  plugin: csv\n  params: {path: bars.csv, symbol: Si-12.26, rate: 0}", "  plugin: zmq"
        )
    )
    proc = roboframe_cmd("backtest", str(path))
    assert proc.returncode == 2
    assert "feed 'zmq' is live only; give history with --data FILE" in proc.stderr


def test_backtest_of_endless_feed_is_refused(tmp_path):
    path = robot(tmp_path)
    path.write_text(
        path.read_text().replace(
            "  plugin: csv\n  params: {path: bars.csv, symbol: Si-12.26, rate: 0}",
            "  plugin: synthetic\n  params: {seed: 1, prices: {Si-12.26: 92000}}",
        )
    )
    proc = roboframe_cmd("backtest", str(path))
    assert proc.returncode == 2
    assert "is endless with these params" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_backtest_refuses_cash_that_is_not_a_positive_amount(tmp_path):
    path = robot(tmp_path)
    for cash, message in [
        ("-5", "--cash: must be a positive amount, got -5"),
        ("0", "--cash: must be a positive amount, got 0"),
        ("nan", "--cash: must be a positive amount, got nan"),
        ("lots", "--cash: 'lots' is not a number"),
    ]:
        proc = roboframe_cmd("backtest", str(path), "--cash", cash)
        assert (proc.returncode, message) == (2, proc.stderr.strip()), cash


def test_backtest_in_a_subprocess_matches_in_process(tmp_path):
    path = robot(tmp_path)
    stats = backtest_json(str(path), "--no-journal")
    code = (
        "import json,sys; from roboframe.config import load_robot;"
        "from roboframe.backtest import run_backtest;"
        "print(json.dumps(run_backtest(load_robot(sys.argv[1]), journal=False).stats))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ},
    )
    inproc = json.loads(out.stdout)
    assert inproc == {k: v for k, v in stats.items() if k in inproc}


SIZED = """\
import numpy as np
from roboframe import Strategy

class Sized(Strategy):
    version = "1.0"

    def on_bar(self, bar, ctx):
        if bar.ts // 60_000_000_000 % 7 == 0:  # every 7th minute: flip, sized by NumPy
            lots = np.int64(2) if ctx.position(bar.symbol) <= 0 else np.int64(-2)
            return ctx.order_target(bar.symbol, lots * {scale})
"""


def test_numpy_sized_orders_run_live_and_backtest_alike_and_verify(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    # paced: a flip every 7 bars sizes by the position, so each fill must reach the
    # robot within 7 bars (140 ms here; 35 ms at 200 bars/s, and once 70 ms at 100,
    # fell short on a busy host)
    path = robot_with_strategy(tmp_path, "sizedmod", SIZED.format(scale="1"), "Sized", rate=50)
    env = {"PYTHONPATH": str(tmp_path)}
    live = LiveRobot(load_robot(path), RunOptions()).run()
    assert live["error"] is None and live["rejections"] == 0
    bt = backtest_json(str(path), "--data", str(tmp_path / "bars.csv"), env=env)
    orders = new_orders(bt["journal"])
    assert len(orders) >= 5 and {qty for _, _, qty, _ in orders} == {2, 4}
    assert new_orders(live["journal"]) == orders
    assert bt["orders"] == len(orders) and bt["rejections"] == 0
    for journal in (live["journal"], bt["journal"]):
        proc = roboframe_cmd("replay", journal, "--verify", env=env)
        assert proc.returncode == 0, proc.stderr


def test_orders_sized_in_fractions_are_rejected_and_reported(tmp_path):
    path = robot_with_strategy(tmp_path, "sizedmod", SIZED.format(scale="0.5"), "Sized")
    env = {"PYTHONPATH": str(tmp_path)}
    proc = roboframe_cmd("backtest", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "orders     0 sent, 34 rejected by risk" in proc.stdout
    assert (
        "rejected   last: risk: quantity must be a whole number of lots, "
        "got np.float64(1.0) (float64)" in proc.stdout
    )
    stats = backtest_json(str(path), env=env)
    assert (stats["orders"], stats["rejections"], stats["trades"]) == (0, 34, 0)
    assert roboframe_cmd("replay", stats["journal"], "--verify", env=env).returncode == 0


def write_parquet_twin(csv_path, parquet_path):
    """The same bars as a Parquet file: timestamps and float prices, as data
    vendors write them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pacsv.read_csv(csv_path)
    for name in ("Open", "High", "Low", "Close"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table[name].cast(pa.float64()))
    assert table.schema.field("Date").type == pa.timestamp("s", tz="UTC")
    pq.write_table(table, parquet_path, row_group_size=50)


def test_backtest_from_parquet_equals_backtest_from_csv(tmp_path):
    path = robot(tmp_path)
    write_parquet_twin(tmp_path / "bars.csv", tmp_path / "bars.parquet")
    from_csv = backtest_json(str(path), "--data", str(tmp_path / "bars.csv"))
    from_parquet = backtest_json(str(path), "--data", str(tmp_path / "bars.parquet"))
    assert new_orders(from_parquet["journal"]) == new_orders(from_csv["journal"])
    different = {"journal", "elapsed_s"}
    assert {k: v for k, v in from_parquet.items() if k not in different} == {
        k: v for k, v in from_csv.items() if k not in different
    }
    assert from_parquet["events"] == 240 and from_parquet["trades"] > 5


def test_a_robot_with_a_parquet_feed_runs_live_and_backtests_alike(tmp_path):
    path = robot(tmp_path, rate=500)
    write_parquet_twin(tmp_path / "bars.csv", tmp_path / "bars.parquet")
    path.write_text(
        path.read_text()
        .replace("plugin: csv", "plugin: parquet")
        .replace("bars.csv", "bars.parquet")
    )
    proc = roboframe_cmd("validate", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = LiveRobot(load_robot(path), RunOptions()).run()
    assert live["stop_reason"] == "feed ended" and live["events"] >= 240
    bt = backtest_json(str(path))
    assert len(new_orders(live["journal"])) >= 5
    assert new_orders(live["journal"]) == new_orders(bt["journal"])


CHASER = """\
from roboframe import Strategy

class Chaser(Strategy):
    version = "1.0"

    def on_bar(self, bar, ctx):
        pos = ctx.position(bar.symbol)
        orders = ctx.open_orders(bar.symbol)
        if pos:  # filled: out at market, then chase again
            return None if orders else ctx.order_target(bar.symbol, 0)
        if not orders:
            return [ctx.buy(bar.symbol, 1, bar.close - 30)]
        own = orders[0]
        if own.type == "limit" and own.replace_pending is None and own.price != bar.close - 30:
            return [ctx.replace(own, price=bar.close - 30)]
        return None
"""


def replaces_in(journal):
    return [
        a
        for r in JournalReader(journal).records()
        if r.kind == ACTIONS
        for a in codec.decode_outputs(r.payload)[0]
        if type(a) is Replace
    ]


def test_a_strategy_that_replaces_its_limit_order_backtests_runs_and_analyses(tmp_path):
    from roboframe.analyze import analyze

    path = robot_with_strategy(tmp_path, "chaser", CHASER, "Chaser", rate=300)
    bt = backtest_json(str(path))
    replaces = replaces_in(bt["journal"])
    assert len(replaces) >= 20 and bt["trades"] >= 3 and bt["rejections"] == 0
    assert roboframe_cmd("replay", bt["journal"], "--verify").returncode == 0
    # live, answers come when the paper thread sends them, so the chase differs in
    # timing from the backtest's; it must still replace, fill and verify
    live = LiveRobot(load_robot(path), RunOptions()).run()
    assert live["error"] is None and live["fills"] >= 2
    assert replaces_in(live["journal"])
    assert roboframe_cmd("replay", live["journal"], "--verify").returncode == 0
    report = analyze([bt["journal"]], db=str(tmp_path / "a.db")).runs[0]
    assert report.stats == {k: v for k, v in bt.items() if k in report.stats}
    import sqlite3

    with sqlite3.connect(tmp_path / "a.db") as db:
        kinds = dict(db.execute("SELECT kind, count(*) FROM actions GROUP BY kind").fetchall())
    assert kinds["replace"] == len(replaces)


MOMENTUM = """\
from roboframe import Strategy

class Momentum(Strategy):
    version = "1.0"

    def on_bar(self, bar, ctx):  # reads its position on every bar
        pos = ctx.position(bar.symbol)
        if bar.close > bar.open and pos <= 0:
            return [ctx.buy(bar.symbol, 1 - pos)]
        if bar.close < bar.open and pos >= 0:
            return [ctx.sell(bar.symbol, 1 + pos)]
"""


@pytest.mark.parametrize("rate", [50, 0])
@pytest.mark.parametrize("fill_at", ["next", "close"])
def test_a_strategy_reading_its_fills_every_bar_trades_alike_live_and_backtest(
    tmp_path, monkeypatch, fill_at, rate
):
    """The live loop steps the paper exchange as the backtest does -- the fills a
    bar makes before the robot sees the bar -- so a strategy reading its position
    on every bar sends the backtest's orders live, paced or not. (Before, the
    live fill at the next bar's open came just after that bar: at next, every
    other order was sized wrong; unpaced, hundreds of bars late.)"""
    monkeypatch.syspath_prepend(str(tmp_path))
    path = robot_with_strategy(tmp_path, "momentummod", MOMENTUM, "Momentum", rate=rate)
    lines = ["Date,Open,High,Low,Close,Volume"]  # up, down, up ...: a flip on every bar
    for i in range(60):
        o, c = (100, 105) if i % 2 == 0 else (105, 100)
        lines.append(f"2026-12-01T10:{i:02d}:00Z,{o},106,99,{c},0")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    path.write_text(
        path.read_text().replace(
            "  plugin: paper\n", f"  plugin: paper\n  params: {{fill_at: {fill_at}}}\n"
        )
    )
    env = {"PYTHONPATH": str(tmp_path)}
    live = LiveRobot(load_robot(path), RunOptions()).run()
    assert live["error"] is None
    bt = backtest_json(str(path), env=env)
    orders = new_orders(bt["journal"])
    assert len(orders) == 60 and {qty for _, _, qty, _ in orders} == {1, 2}  # sized by fills
    assert new_orders(live["journal"]) == orders
    assert live["fills"] == bt["orders"] - (1 if fill_at == "next" else 0)  # the last: no bar
    proc = roboframe_cmd("replay", live["journal"], "--verify", env=env)
    assert proc.returncode == 0, proc.stderr
