"""``roboframe orders``: a robot's open orders read from its order store, and
cancelled without the robot, through a real exchange process on a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from roboframe.core import codec
from roboframe.core.events import Bar, NewOrder
from roboframe.core.instruments import Instrument
from roboframe.store import open_store
from roboframe.testing.helpers import wait_for
from tests.integration.conftest import ROOT, roboframe_cmd
from tests.integration.exchange import RunningExchange


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


ALPHA = NewOrder("alpha-r1-1", "Si", "buy", 2, "limit", 90)
BETA = NewOrder("beta-r1-1", "Si", "sell", 1, "limit", 120)


def resting(url: str, exchange: RunningExchange | None) -> None:
    """Two robots' limit orders resting away from the market, accepted."""
    store = open_store(url)
    try:
        store.setup()
        if exchange is not None:
            exchange.price(Bar("Si", 1, 100, 100, 100, 100))
        assert store.insert_order("alpha", "r1", ALPHA, 2)
        assert store.insert_order("beta", "r1", BETA, 2)
        if exchange is not None:
            assert wait_for(lambda: {o.status for o in store.open_orders()} == {"accepted"})
    finally:
        store.close()


def test_a_down_robots_orders_are_listed_and_cancelled_without_it(url):
    """A robot stopped by a strategy error leaves its orders working: the trader
    lists them from the store and cancels them; the exchange answers, the other
    robot's order stays, and the robot will catch up on the cancel when it runs."""
    exchange = RunningExchange(url, fast=False)
    try:
        resting(url, exchange)
        listed = roboframe_cmd("orders", url, "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(r["robot"], r["client_id"], r["qty"], r["price"]) for r in rows] == [
            ("alpha", "alpha-r1-1", 2, "90 ticks"),
            ("beta", "beta-r1-1", 1, "120 ticks"),
        ]
        done = roboframe_cmd("orders", url, "--robot", "alpha", "--cancel", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"cancelled": 1, "open": []}
        left = roboframe_cmd("orders", url)
        assert left.returncode == 0, left.stderr
        assert "beta-r1-1" in left.stdout and "alpha-r1-1" not in left.stdout
        store = open_store(url)
        try:  # what the robot's trade stream catches up on when it runs again
            _, updates = store.changes_after("alpha", "alpha-r1-", 0, 0)
            assert [(u.client_id, u.status) for _, u in updates][-1] == ("alpha-r1-1", "cancelled")
        finally:
            store.close()
    finally:
        exchange.close()


def test_cancels_nobody_answers_are_reported_and_exit_1(pg_url):
    resting(pg_url, None)
    out = roboframe_cmd("orders", pg_url, "--robot", "alpha", "--cancel", "--wait", "0.5")
    assert out.returncode == 1
    assert "1 still open after 0.5s" in out.stderr and "alpha-r1-1" in out.stderr
    assert "roboframe exchange" in out.stderr


def test_cancel_needs_a_robot_and_a_robot_file_names_its_store(pg_url, tmp_path):
    resting(pg_url, None)
    out = roboframe_cmd("orders", pg_url, "--cancel")
    assert out.returncode == 2 and "--cancel needs a robot" in out.stderr
    robot = tmp_path / "alpha.yaml"
    robot.write_text(
        "name: alpha\nsymbols: {Si: {tick_size: 0.5}}\nfeed: {plugin: synthetic}\n"
        "strategy: {plugin: sma-crossover}\n"
        f"gateway: {{plugin: postgres, params: {{url: '{pg_url}'}}}}\n"
    )
    listed = roboframe_cmd("orders", str(robot), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["client_id"], r["price"]) for r in json.loads(listed.stdout)] == [
        ("alpha-r1-1", "45.0")  # 90 ticks of 0.5, from the robot file's symbols
    ]
    paper = tmp_path / "paper.yaml"
    paper.write_text(
        robot.read_text().replace(
            f"{{plugin: postgres, params: {{url: '{pg_url}'}}}}", "{plugin: paper}"
        )
    )
    out = roboframe_cmd("orders", str(paper))
    assert out.returncode == 2 and "not an order store" in out.stderr
    assert "Traceback" not in out.stderr


RESTING = """\
from roboframe import Strategy


class Rests(Strategy):
    def __init__(self, params):
        super().__init__(params)
        self.bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == 1:
            return [ctx.buy(bar.symbol, 1, price=bar.close - 500)]
        if self.bars == 20:
            raise ValueError("lost the hedge leg")
"""
# the strategy fixed: its order rests, and it fails no more
RESTING_FIXED = RESTING.replace("self.bars == 20", "self.bars == -1")


def test_a_robot_stopped_by_its_strategy_names_its_working_orders_and_the_way_out(pg_url, tmp_path):
    """The failed robot's resting order stays at the exchange; its log says so and
    gives the command, which cancels it through the exchange process."""
    (tmp_path / "rests.py").write_text(RESTING)
    robot = tmp_path / "rests.yaml"
    robot.write_text(
        "name: rests\nsymbols: {Si: {tick_size: 1}}\n"
        "feed: {plugin: synthetic, params: {seed: 1, bars: 40, prices: {Si: 92000}, rate: 20}}\n"
        "strategy: {plugin: 'rests:Rests'}\n"
        f"gateway: {{plugin: postgres, params: {{url: '{pg_url}'}}}}\n"
        f"journal: {{dir: '{tmp_path / 'runs'}'}}\n"
    )
    exchange = RunningExchange(pg_url, fast=False)
    try:
        exchange.price(Bar("Si", 1, 92000, 92000, 92000, 92000))
        run = roboframe_cmd("run", str(robot), timeout=120)
        assert run.returncode == 3, run.stderr
        assert "1 order(s) stay working at the exchange: rests-" in run.stderr
        assert f"roboframe orders {robot} --cancel" in run.stderr
        # the trader is mid-way through fixing the strategy: the module does not import
        (tmp_path / "rests.py").write_text(
            RESTING.replace("if self.bars == 20:", "if self.bars ==")
        )
        done = roboframe_cmd("orders", str(robot), "--cancel", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"cancelled": 1, "open": []}
        assert "does not validate; its name and gateway are used" in done.stderr
    finally:
        exchange.close()


@pytest.mark.parametrize("fast", [False, True], ids=["postgres", "zmq"])
def test_a_robot_stopped_by_its_strategy_cancels_its_orders_when_its_file_says_so(
    pg_url, tmp_path, fast
):
    """``loop.open_orders_on_error: cancel``: the failed robot writes a cancel
    request for its resting order and waits for the exchange to answer (the fast
    path's order went over ZeroMQ; its cancel goes through the store all the same).
    Resumed with the strategy fixed, it learns of the cancel from the store."""
    (tmp_path / "rests.py").write_text(RESTING)
    exchange = RunningExchange(pg_url, fast=fast)
    if fast:
        gateway = f"{{plugin: zmq, params: {{url: '{pg_url}', address: '{exchange.orders}'}}}}"
    else:
        gateway = f"{{plugin: postgres, params: {{url: '{pg_url}'}}}}"
    robot = tmp_path / "rests.yaml"
    robot.write_text(
        "name: rests\nsymbols: {Si: {tick_size: 1}}\n"
        "feed: {plugin: synthetic, params: {seed: 1, bars: 40, prices: {Si: 92000}, rate: 20}}\n"
        "strategy: {plugin: 'rests:Rests'}\n"
        f"gateway: {gateway}\n"
        f"journal: {{dir: '{tmp_path / 'runs'}'}}\n"
        "loop: {open_orders_on_error: cancel, drain_ms: 10s}\n"
    )
    try:
        exchange.price(Bar("Si", 1, 92000, 92000, 92000, 92000))
        run = roboframe_cmd("run", str(robot), "--json", timeout=120)
        assert run.returncode == 3, run.stderr
        summary = json.loads(run.stdout)
        assert summary["cancelled_on_error"] == {"asked": 1, "still_open": []}
        assert "a cancel was written for each of 1 open order(s)" in run.stderr
        assert "stay working at the exchange" not in run.stderr
        listed = roboframe_cmd("orders", str(robot), "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == []

        (tmp_path / "rests.py").write_text(RESTING_FIXED)
        resumed = roboframe_cmd("run", str(robot), "--resume", "--json", timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        after = json.loads(resumed.stdout)
        assert after["open_orders"] == 0 and after["cancelled_on_error"] is None
        assert after["orders"] == 1  # the one resting order, never sent again
        # the cancel, made without the loop, is in the journal as the answer it got
        # (--force: the strategy was fixed since the journal began)
        verified = roboframe_cmd("replay", after["journal"], "--verify", "--force")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        exchange.close()


def test_cancel_left_reaches_an_order_the_exchange_took_but_has_not_recorded(pg_url):
    """The fast path's store is written behind: a robot failing right after an
    order may find the store without its row. The order the robot holds open is
    cancelled all the same, and waited for until its row shows it finished."""
    from roboframe.builtin.zmqgw import FastGateway

    exchange = RunningExchange(pg_url, fast=True)
    writer = exchange.exchange.writer.proc
    resume = threading.Timer(1.0, os.kill, (writer.pid, signal.SIGCONT))
    try:
        exchange.price(Bar("Si", 1, 92000, 92000, 92000, 92000))
        os.kill(writer.pid, signal.SIGSTOP)  # the store falls behind
        cid = "alpha-r1-1"
        exchange.dealer.send(codec.encode([NewOrder(cid, "Si", "buy", 1, "limit", 91000)]))
        assert exchange.dealer.poll(5000)  # taken and acknowledged over ZeroMQ
        gateway = FastGateway(
            {"url": pg_url, "address": exchange.orders},
            {"Si": Instrument("Si", Decimal(1))},
            robot="alpha",
        )
        resume.start()
        asked, left = gateway.cancel_left("r1", 10.0, [cid])
        assert (asked, left) == ([cid], [])
        rows = open_store(pg_url)
        try:
            assert cid in rows.recent_finished(10) and not rows.open_orders()
        finally:
            rows.close()
    finally:
        resume.cancel()
        if resume.ident is not None:  # started
            resume.join()
        os.kill(writer.pid, signal.SIGCONT)  # the writer outlives the test's asserts
        exchange.close()


def test_cancel_left_reports_a_known_order_never_seen_closed(pg_url):
    """An order the robot holds open that the exchange never got (lost in flight):
    asked, and reported as not seen closed once the wait is over."""
    from roboframe.builtin.storegw import StoreGateway

    gateway = StoreGateway({"url": pg_url}, {"Si": Instrument("Si", Decimal(1))}, robot="alpha")
    started = time.monotonic()
    asked, left = gateway.cancel_left("r1", 0.5, ["alpha-r1-7", "alpha-r0-1"])
    assert (asked, left) == (["alpha-r1-7"], ["alpha-r1-7"])  # another run's id: not ours
    assert 0.5 <= time.monotonic() - started < 5


def test_a_run_ended_on_sighup_to_be_resumed_leaves_its_orders_working(pg_url, tmp_path):
    """SIGHUP (what ``roboframe up`` sends a robot whose feed alone changed) ends the
    run to be resumed at once. With ``open_orders_on_error: cancel`` it was taken for a
    broken run: every working order was cancelled through the store, and the resumed
    run found its resting order gone. It is left working, and the resumed run keeps it."""
    (tmp_path / "rests.py").write_text(RESTING_FIXED)
    robot = tmp_path / "rests.yaml"
    robot.write_text(
        "name: rests\nsymbols: {Si: {tick_size: 1}}\n"
        "feed: {plugin: synthetic, params: {seed: 1, bars: 0, prices: {Si: 92000}, rate: 20}}\n"
        "strategy: {plugin: 'rests:Rests'}\n"
        f"gateway: {{plugin: postgres, params: {{url: '{pg_url}', poll_ms: 100}}}}\n"
        f"journal: {{dir: '{tmp_path / 'runs'}'}}\n"
        "loop: {open_orders_on_error: cancel, drain_ms: 5s}\n"
    )
    exchange = RunningExchange(pg_url, fast=False)
    try:
        exchange.price(Bar("Si", 1, 92000, 92000, 92000, 92000))
        proc = subprocess.Popen(
            [sys.executable, "-m", "roboframe.cli", "run", str(robot), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        try:

            def accepted() -> bool:
                listed = roboframe_cmd("orders", str(robot), "--json")
                return listed.returncode == 0 and [
                    r["status"] for r in json.loads(listed.stdout)
                ] == ["accepted"]

            assert wait_for(accepted, timeout=30, step=0.5)
            proc.send_signal(signal.SIGHUP)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 5, err  # ended as asked, to be resumed
        assert "ERROR" not in err, err  # nothing broke
        assert json.loads(out)["cancelled_on_error"] is None
        assert "a cancel was written" not in err
        listed = roboframe_cmd("orders", str(robot), "--json")
        assert [r["status"] for r in json.loads(listed.stdout)] == ["accepted"]
        resumed = roboframe_cmd("run", str(robot), "--resume", "--duration", "2", "--json")
        assert resumed.returncode == 0, resumed.stderr
        after = json.loads(resumed.stdout)
        assert after["orders"] == 1 and after["open_orders"] == 1 and after["cancels"] == 0
        verified = roboframe_cmd("replay", after["journal"], "--verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        exchange.close()
