"""``roboframe new``: a robot that runs as is, and a strategy module to edit."""

from __future__ import annotations

import json

import pytest

from roboframe.scaffold import class_name, module_name

from .conftest import roboframe_cmd


def test_a_new_robot_validates_backtests_runs_and_replays(tmp_path):
    proc = roboframe_cmd("new", "my-first", "--dir", str(tmp_path / "robots"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    robot = tmp_path / "robots" / "my-first.yaml"
    module = tmp_path / "robots" / "my_first_strategy.py"
    assert proc.stdout.splitlines() == [
        f"wrote {robot}",
        f"wrote {module}",
        f"next: roboframe run {robot}",
    ]
    assert '"my_first_strategy:MyFirstStrategy"' in robot.read_text()
    assert roboframe_cmd("validate", str(robot), cwd=tmp_path).returncode == 0
    proc = roboframe_cmd("-q", "backtest", str(robot), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["orders"] > 5 and stats["rejections"] == 0
    proc = roboframe_cmd("replay", stats["journal"], "--verify", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = roboframe_cmd("-q", "run", str(robot), "--json", "--duration", "30", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["stop_reason"] == "feed ended" and summary["orders"] == stats["orders"]


def test_the_module_it_writes_takes_a_set_command(tmp_path):
    """The template's on_params re-reads params (``ctl set qty=2`` acts)."""
    roboframe_cmd("new", "r", "--dir", str(tmp_path))
    namespace: dict = {}
    exec((tmp_path / "r_strategy.py").read_text(), namespace)
    strategy = namespace["RStrategy"]({"lookback": 3, "qty": 1})
    strategy.closes["X"] = __import__("collections").deque([1, 2, 3], maxlen=3)
    strategy.params = {"lookback": 2, "qty": 2}
    strategy.on_params(None, None)
    assert (strategy.qty, list(strategy.closes["X"]), strategy.closes["X"].maxlen) == (2, [2, 3], 2)


def test_a_builtin_strategy_writes_no_module(tmp_path):
    proc = roboframe_cmd("new", "b1", "--dir", str(tmp_path), "--strategy", "sma-crossover")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b1.yaml"]
    assert "plugin: sma-crossover" in (tmp_path / "b1.yaml").read_text()


def test_existing_files_are_kept_unless_forced(tmp_path):
    assert roboframe_cmd("new", "r", "--dir", str(tmp_path)).returncode == 0
    (tmp_path / "r_strategy.py").write_text("# mine\n")
    proc = roboframe_cmd("new", "r", "--dir", str(tmp_path))
    assert proc.returncode == 2
    assert "r.yaml exists; pass --force to overwrite it" in proc.stderr
    assert (tmp_path / "r_strategy.py").read_text() == "# mine\n"
    assert roboframe_cmd("new", "r", "--dir", str(tmp_path), "--force").returncode == 0
    assert "class RStrategy" in (tmp_path / "r_strategy.py").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad name"], "robot name 'bad name': use letters, digits"),
        (["r2", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["r3", "--symbol", "Si 12"], "--symbol 'Si 12': use up to 32 letters"),
        (["r4", "--symbol", ""], "--symbol '': use up to 32 letters"),  # blamed line 10
    ],
)
def test_bad_input_writes_nothing(tmp_path, args, message):
    proc = roboframe_cmd("new", *args, "--dir", str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr and "nothing was written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("robot", "module", "cls"),
    [
        ("si-trend", "si_trend_strategy", "SiTrendStrategy"),
        ("1st.robot", "robot_1st_robot_strategy", "Robot1stRobotStrategy"),
        ("RTS_v2", "rts_v2_strategy", "RTSV2Strategy"),
    ],
)
def test_module_and_class_names(robot, module, cls):
    assert (module_name(robot), class_name(robot)) == (module, cls)
    assert module.isidentifier() and cls.isidentifier()


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = roboframe_cmd("new", "r", "--dir", str(blocker / "robots"))
    assert proc.returncode == 2
    assert "nothing was written" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("symbol", "tick", "price"),
    [("RTS-12.26", "tick_size: 10", "{RTS-12.26: 110000}"), ("BR-1.27", "tick_size: 0.01", "74}")],
)
def test_a_known_contract_gets_its_own_tick_and_price(tmp_path, symbol, tick, price):
    """--symbol RTS-12.26 wrote Si's tick (1) and price (92000)."""
    from roboframe.config import load_robot

    proc = roboframe_cmd("new", "c", "--dir", str(tmp_path), "--symbol", symbol)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "c.yaml").read_text()
    assert tick in text and price in text
    assert str(load_robot(tmp_path / "c.yaml").symbols[symbol].tick_size) == tick.split()[-1]


def test_validate_names_a_handler_roboframe_never_calls(tmp_path):
    """``on_bars`` (or ``onFill``) passed validate, and the strategy never traded."""
    roboframe_cmd("new", "r", "--dir", str(tmp_path))
    module = tmp_path / "r_strategy.py"
    module.write_text(module.read_text().replace("def on_bar(", "def on_bars("))
    proc = roboframe_cmd("validate", str(tmp_path / "r.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "has on_bars(), which roboframe never calls" in proc.stderr
    fine = roboframe_cmd("new", "s", "--dir", str(tmp_path / "ok"))
    assert fine.returncode == 0
    proc = roboframe_cmd("validate", str(tmp_path / "ok" / "s.yaml"), cwd=tmp_path)
    assert "never calls" not in proc.stderr


@pytest.mark.parametrize(
    ("symbol", "tick_value"),
    [
        ("Si-12.26", "1"),  # 1 RUB a tick
        ("RTS-12.26", "13.0"),  # 0.2 USD a tick, at USD/RUB 65
        ("BR-1.27", "7.50"),  # 10 barrels x 0.01 USD = 0.1 USD a tick, at USD/RUB 75
        ("GD-3.27", "7.5"),  # 1 ounce x 0.1 USD = 0.1 USD a tick, at USD/RUB 75
        ("MIX-12.26", "25"),  # 25 points of 100 x the index = 25 RUB a tick
    ],
)
def test_a_known_contract_gets_the_money_a_tick_is_worth(tmp_path, symbol, tick_value):
    """point_value is the money of a whole point (1.00 USD for BR and GD): BR
    was written 7.5, a tick's worth, so a tick was 0.075 RUB and PnL and the
    daily-loss limit 100 times too small (GD 10 times)."""
    from decimal import Decimal

    from roboframe.config import load_robot

    proc = roboframe_cmd("new", "c", "--dir", str(tmp_path), "--symbol", symbol)
    assert proc.returncode == 0, proc.stderr
    instrument = load_robot(tmp_path / "c.yaml").symbols[symbol]
    assert instrument.tick_value == Decimal(tick_value)


def test_an_unknown_contract_is_said_to_have_sis_figures(tmp_path):
    """--symbol SBER (or RIZ6, RTS by its short code) got Si's tick, point value
    and price without a word; the file now says so where they are."""
    proc = roboframe_cmd("new", "c", "--dir", str(tmp_path), "--symbol", "RIZ6")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "c.yaml").read_text()
    assert "Si's tick, point value and price: RIZ6 is no contract `roboframe new` knows" in text
