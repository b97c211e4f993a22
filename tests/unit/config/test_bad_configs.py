"""The bad-config suite: each mistake gets its exact message and exit code 2."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ROOT, roboframe_cmd

BASE = """\
name: si-trend
symbols:
  Si-12.26: {tick_size: 1, lot: 1, point_value: 1, currency: RUB}
  RTS-12.26: {tick_size: 10, point_value: 1.3}
feed:
  plugin: synthetic
  params: {seed: 1, prices: {Si-12.26: 92000}}
strategy:
  plugin: sma-crossover
  params: {fast: 10, slow: 30}
gateway:
  plugin: paper
risk:
  max_order_qty: 5
journal:
  fsync: on_close
"""

CASES = {
    "yaml_syntax": BASE.replace("  plugin: paper", "  plugin: [paper"),
    "tab": BASE.replace("  max_order_qty: 5", "\tmax_order_qty: 5"),
    "duplicate_key": BASE + "risk:\n  max_position: 1\n",
    "empty": "",
    "top_list": "- a\n- b\n",
    "missing_strategy": BASE.replace(
        "strategy:\n  plugin: sma-crossover\n  params: {fast: 10, slow: 30}\n", ""
    ),
    "unknown_top": BASE + "gatway: {plugin: paper}\n",
    "unknown_risk_key": BASE.replace("max_order_qty: 5", "max_ordr_qty: 5"),
    "qty_type": BASE.replace("max_order_qty: 5", "max_order_qty: five"),
    "qty_zero": BASE.replace("max_order_qty: 5", "max_order_qty: 0"),
    "tick_zero": BASE.replace("tick_size: 10", "tick_size: 0"),
    "tick_text": BASE.replace("tick_size: 10", "tick_size: ten"),
    "bad_fsync": BASE.replace("fsync: on_close", "fsync: sometimes"),
    "bad_duration": BASE + "loop:\n  timer_ms: 5 minutes\n",
    "bad_address": BASE + "loop:\n  address: http://robo\n",
    "same_control": BASE
    + "loop:\n  address: ipc://robo.sock\ncontrol:\n  address: ipc://robo.sock\n",
    "unknown_feed": BASE.replace("plugin: synthetic", "plugin: synthetik"),
    "unknown_gateway": BASE.replace("plugin: paper", "plugin: papper"),
    "unknown_strategy": BASE.replace("plugin: sma-crossover", "plugin: sma"),
    "strategy_import": BASE.replace("plugin: sma-crossover", "plugin: no_such_pkg.mod:Strat"),
    "strategy_param_schema": BASE.replace("{fast: 10, slow: 30}", "{fast: 0, slow: 30}"),
    "strategy_param_unknown": BASE.replace("{fast: 10, slow: 30}", "{fast: 10, slow: 30, qyt: 2}"),
    "strategy_validate": BASE.replace("{fast: 10, slow: 30}", "{fast: 30, slow: 10}"),
    "risk_unknown_symbol": BASE.replace(
        "max_order_qty: 5", "max_order_qty: 5\n  max_position: {Si-3.27: 2}"
    ),
    "allowed_unknown": BASE.replace("max_order_qty: 5", "allowed_symbols: [Si-12.26, BR-1.27]"),
    "feed_price_symbol": BASE.replace("prices: {Si-12.26: 92000}", "prices: {Si-12.25: 92000}"),
    "feed_param_missing": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}", "{prices: {Si-12.26: 92000}}"
    ),
    "bad_name": BASE.replace("name: si-trend", "name: si trend!"),
    "no_symbols": BASE.replace(
        """  Si-12.26: {tick_size: 1, lot: 1, point_value: 1, currency: RUB}
  RTS-12.26: {tick_size: 10, point_value: 1.3}
""",
        "  {}\n",
    ).replace("symbols:\n  {}", "symbols: {}"),
    "currency": BASE.replace("currency: RUB", "currency: rubles"),
    "lot_float": BASE.replace("lot: 1,", "lot: 1.5,"),
    "gateway_param": BASE.replace("  plugin: paper", "  plugin: paper\n  params: {commission: -2}"),
    "daily_loss_neg": BASE.replace("max_order_qty: 5", "max_daily_loss: -100"),
    "day_starts": BASE.replace("max_order_qty: 5", "day_starts: 7pm MSK"),
    "backtest_tz": BASE + "backtest:\n  tz: Moscow\n",
    # validate said ok; run connected, failed as the feed started, left its run unfinished
    "feed_address_no_port": BASE.replace(
        "plugin: synthetic\n  params: {seed: 1, prices: {Si-12.26: 92000}}",
        'plugin: zmq\n  params: {address: "tcp://127.0.0.1"}',
    ),
    # validate said ok; run failed as the feed started and left its run unfinished
    "synthetic_start": BASE.replace("{seed: 1,", '{seed: 1, start: "2026-13-01",'),
    # validate said ok; the backtest then failed on its data
    "backtest_open_no_interval": BASE + "backtest:\n  time_is: open\n",
    "holiday_no_date": BASE.replace("max_order_qty: 5", 'closed: ["2027-01-01", "2027-02-30"]'),
    "hours_holiday": BASE.replace(
        "max_order_qty: 5",
        'checks: [{plugin: trading-hours, params: {sessions: ["10:00-18:50"], '
        'closed: ["2027-02-31"]}}]',
    ),
    # meant as "all day", it was an empty session: every order refused, validate said ok
    "hours_empty_session": BASE.replace(
        "max_order_qty: 5",
        'checks: [{plugin: trading-hours, params: {sessions: ["10:00-18:50", "00:00-00:00"]}}]',
    ),
    "trading_days": BASE.replace("max_order_qty: 5", "trading_days: [monday]"),
    "max_position_neg": BASE.replace("max_order_qty: 5", "max_position: -1"),
    "params_not_map": BASE.replace("params: {fast: 10, slow: 30}", "params: [10, 30]"),
    "missing_tick": BASE.replace("{tick_size: 10, point_value: 1.3}", "{point_value: 1.3}"),
}

EXPECTED = {
    "yaml_syntax": (
        "{dir}/robot.yaml:13: invalid YAML: expected ',' or ']', but got ':' while parsing a flow sequence\n"
        "  hint: check indentation and that every 'key: value' has a space after the colon"
    ),
    "tab": (
        "{dir}/robot.yaml:14: invalid YAML: found character '\\t' that cannot start any token while scanning for the next token\n"
        "  hint: YAML does not allow tabs for indentation; use spaces"
    ),
    "duplicate_key": (
        "{dir}/robot.yaml:17: duplicate key 'risk' (first defined on line 13)\n"
        "  hint: each key may appear once in a mapping"
    ),
    "empty": (
        "{dir}/robot.yaml: empty file\n"
        "  hint: a robot file is a YAML mapping; see robots/si.yaml for an example"
    ),
    "top_list": (
        "{dir}/robot.yaml:1: the file must be a mapping of sections, got a list\n"
        "  hint: start with 'name: my-robot' and see robots/si.yaml"
    ),
    "missing_strategy": (
        "{dir}/robot.yaml:1: missing required field 'strategy'\n"
        "  hint: the strategy plugin and its params"
    ),
    "unknown_top": (
        "{dir}/robot.yaml:17: gatway: unknown field 'gatway'\n  hint: did you mean 'gateway'?"
    ),
    "unknown_risk_key": (
        "{dir}/robot.yaml:14: risk.max_ordr_qty: unknown field 'max_ordr_qty'\n"
        "  hint: did you mean 'max_order_qty'?"
    ),
    "qty_type": (
        "{dir}/robot.yaml:14: risk.max_order_qty: expected an integer, got 'five' (string)\n"
        "  hint: largest order, in lots"
    ),
    "qty_zero": (
        "{dir}/robot.yaml:14: risk.max_order_qty: must be >= 1, got 0\n"
        "  hint: largest order, in lots"
    ),
    "tick_zero": (
        "{dir}/robot.yaml:4: symbols.RTS-12.26.tick_size: must be > 0, got 0\n"
        "  hint: a positive number such as 1, 10 or 0.01"
    ),
    "tick_text": (
        "{dir}/robot.yaml:4: symbols.RTS-12.26.tick_size: expected a number, got 'ten'\n"
        "  hint: minimum price step, e.g. 1 for Si, 10 for RTS"
    ),
    "bad_fsync": (
        "{dir}/robot.yaml:16: journal.fsync: must be one of: never, on_close, always; got 'sometimes'\n"
        "  hint: when to fsync: never, on_close, or always (every flush)"
    ),
    "bad_duration": (
        "{dir}/robot.yaml:18: loop.timer_ms: expected a duration such as 500ms, 1s, 2m, 1h or a number of milliseconds, got '5 minutes'\n"
        "  hint: heartbeat timer period (write 1s, 500ms ...), null for none"
    ),
    "bad_address": (
        "{dir}/robot.yaml:18: loop.address: expected a ZeroMQ address inproc://..., ipc://... or tcp://HOST:PORT, got 'http://robo'\n"
        "  hint: ZeroMQ address the loop binds: inproc://, ipc:// or tcp://"
    ),
    "same_control": (
        "{dir}/robot.yaml:20: control.address: same address as loop.address (ipc://robo.sock)\n"
        "  hint: the control endpoint needs its own address, e.g. ipc://runs/NAME/control.sock"
    ),
    "unknown_feed": (
        "{dir}/robot.yaml:6: feed.plugin: unknown feed 'synthetik'\n"
        "  hint: did you mean 'synthetic'?"
    ),
    "unknown_gateway": (
        "{dir}/robot.yaml:12: gateway.plugin: unknown gateway 'papper'\n"
        "  hint: did you mean 'paper'?"
    ),
    "unknown_strategy": (
        "{dir}/robot.yaml:9: strategy.plugin: unknown strategy 'sma'\n"
        "  hint: registered: breakout, sma-crossover; or name a class as package.module:Class"
    ),
    "strategy_import": (
        "{dir}/robot.yaml:9: strategy.plugin: strategy 'no_such_pkg.mod:Strat': cannot import module 'no_such_pkg.mod': No module named 'no_such_pkg'; not installed, and no no_such_pkg.py in {dir}, {cwd}\n"
        "  hint: check the import path package.module:Class and that the package is installed"
    ),
    "strategy_param_schema": (
        "{dir}/robot.yaml:10: strategy.params.fast: must be >= 1, got 0\n"
        "  hint: bars in the fast average"
    ),
    "strategy_param_unknown": (
        "{dir}/robot.yaml:10: strategy.params.qyt: unknown field 'qyt'\n  hint: did you mean 'qty'?"
    ),
    "strategy_validate": ("{dir}/robot.yaml:10: strategy.params.fast: must be less than slow (10)"),
    "risk_unknown_symbol": (
        "{dir}/robot.yaml:15: risk.max_position.Si-3.27: limit for 'Si-3.27', which the robot does not trade\n"
        "  hint: did you mean 'Si-12.26'?"
    ),
    "allowed_unknown": (
        "{dir}/robot.yaml:14: risk.allowed_symbols[1]: 'BR-1.27' is not one of the robot's symbols\n"
        "  hint: did you mean 'RTS-12.26'?"
    ),
    "feed_price_symbol": (
        "{dir}/robot.yaml:7: feed.params.prices.Si-12.25: price for 'Si-12.25', which is not in symbols\n"
        "  hint: did you mean 'Si-12.26'?"
    ),
    "feed_param_missing": (
        "{dir}/robot.yaml:7: feed.params: missing required field 'seed'\n"
        "  hint: random seed; same seed, same market"
    ),
    "bad_name": (
        "{dir}/robot.yaml:1: name: invalid value 'si trend!'\n"
        "  hint: robot name: letters, digits, '.', '_' and '-' (it is part of every client order id and journal path)"
    ),
    "no_symbols": (
        "{dir}/robot.yaml:2: symbols: must not be empty\n"
        "  hint: the instruments the robot trades, by symbol"
    ),
    "currency": (
        "{dir}/robot.yaml:3: symbols.Si-12.26.currency: invalid value 'rubles'\n"
        "  hint: currency of PnL, a 3-letter code such as RUB or USD"
    ),
    "lot_float": (
        "{dir}/robot.yaml:3: symbols.Si-12.26.lot: expected an integer, got 1.5 (number)\n"
        "  hint: contracts (units) per lot"
    ),
    "gateway_param": (
        "{dir}/robot.yaml:13: gateway.params.commission: must be >= 0, got -2\n"
        "  hint: fee per lot per fill, in the instrument's currency"
    ),
    "daily_loss_neg": (
        "{dir}/robot.yaml:14: risk.max_daily_loss: must be > 0, got -100\n"
        "  hint: a positive number; leave the field out for no limit"
    ),
    "holiday_no_date": (
        "{dir}/robot.yaml:14: risk.closed[1]: '2027-02-30' is not a date\n"
        "  hint: write a real date YYYY-MM-DD"
    ),
    "hours_holiday": (
        "{dir}/robot.yaml:14: risk.checks[0].params: risk check 'trading-hours' refused its "
        "params: closed: '2027-02-31' is not a date\n"
        "  hint: see the check's params in 'roboframe schema' or its documentation"
    ),
    "hours_empty_session": (
        "{dir}/robot.yaml:14: risk.checks[0].params: risk check 'trading-hours' refused its "
        "params: sessions: '00:00-00:00' ends where it starts, so it is never open (a "
        "session past midnight ends before it starts; for no hours limit leave the check out)\n"
        "  hint: see the check's params in 'roboframe schema' or its documentation"
    ),
    "trading_days": (
        "{dir}/robot.yaml:14: risk.trading_days[0]: must be one of: mon, tue, wed, thu, fri, "
        "sat, sun; got 'monday'\n"
        "  hint: did you mean 'mon'?"
    ),
    "day_starts": (
        "{dir}/robot.yaml:14: risk.day_starts: expected a time and a zone such as "
        '"19:00 MSK", "00:00 UTC" or "17:00 -05:00", got \'7pm MSK\'\n'
        '  hint: when the day of max_daily_loss begins: "HH:MM" and a zone (UTC, MSK, '
        '+03:00); default "00:00 UTC". MOEX futures: "19:00 MSK", the evening session '
        "opens the next trading day (a day begun at 12:00 or later is the next date's "
        "trading day)"
    ),
    "backtest_open_no_interval": (
        "{dir}/robot.yaml:18: backtest.time_is: time_is: open needs interval\n"
        "  hint: the bars' length, as the file's are: interval: 1m (5m, 1h, 1d)"
    ),
    "synthetic_start": (
        "{dir}/robot.yaml:7: feed.params.start: '2026-13-01' is not a time: month must be "
        "in 1..12\n"
        "  hint: an ISO-8601 time such as 2026-01-05T07:00:00Z"
    ),
    "feed_address_no_port": (
        "{dir}/robot.yaml:7: feed.params.address: expected a ZeroMQ address inproc://..., "
        "ipc://... or tcp://HOST:PORT, got 'tcp://127.0.0.1'\n"
        "  hint: publisher address to connect to"
    ),
    "backtest_tz": (
        "{dir}/robot.yaml:18: backtest.tz: expected a zone: UTC, MSK or an offset such as "
        "+03:00, got 'Moscow'\n"
        "  hint: zone of --data times without an offset: UTC, MSK, +03:00"
    ),
    "max_position_neg": (
        "{dir}/robot.yaml:14: risk.max_position: must be >= 0, got -1\n"
        "  hint: largest absolute position in lots: one number for every symbol, or a mapping symbol -> lots"
    ),
    "params_not_map": (
        "{dir}/robot.yaml:10: strategy.params: expected a mapping, got [10, 30] (list)\n"
        "  hint: settings of the strategy, checked by its own schema"
    ),
    "missing_tick": (
        "{dir}/robot.yaml:4: symbols.RTS-12.26: missing required field 'tick_size'\n"
        "  hint: minimum price step, e.g. 1 for Si, 10 for RTS"
    ),
}


def test_at_least_twenty_distinct_mistakes():
    assert len(CASES) >= 20
    assert len(set(EXPECTED.values())) == len(EXPECTED)


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_prints_exact_message(tmp_path, case):
    path = tmp_path / "robot.yaml"
    path.write_text(CASES[case])
    proc = roboframe_cmd("validate", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.rstrip("\n") == EXPECTED[case].format(dir=tmp_path, cwd=ROOT)
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("case", ["unknown_risk_key", "empty", "strategy_validate"])
def test_run_exits_2_with_the_same_message(tmp_path, case):
    path = tmp_path / "robot.yaml"
    path.write_text(CASES[case])
    proc = roboframe_cmd("run", str(path))
    assert proc.returncode == 2
    assert proc.stderr.rstrip("\n") == EXPECTED[case].format(dir=tmp_path)


def test_all_problems_of_a_file_are_reported_in_line_order(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text(
        BASE.replace("max_order_qty: 5", "max_order_qty: 0").replace(
            "fsync: on_close", "fsync: maybe"
        )
    )
    proc = roboframe_cmd("validate", str(path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("  hint")]
    assert lines == [
        f"{path}:14: risk.max_order_qty: must be >= 1, got 0",
        f"{path}:16: journal.fsync: must be one of: never, on_close, always; got 'maybe'",
    ]


def test_missing_file(tmp_path):
    proc = roboframe_cmd("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2
    assert proc.stderr == f"{tmp_path / 'nope.yaml'}: no such file\n"


def test_good_file_validates(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text(BASE)
    proc = roboframe_cmd("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"{path}: ok (si-trend: sma-crossover on RTS-12.26, Si-12.26, feed synthetic, "
        "gateway paper)\n"
    )


def test_a_csv_feed_of_bar_opens_without_interval_is_a_config_error(tmp_path):
    """It passed validate; run then wrote a journal, failed as the feed started
    (exit 1) and left a run that no --resume could finish."""
    (tmp_path / "bars.csv").write_text("Date,Open,High,Low,Close\n2026-12-01 10:00,1,2,1,2\n")
    path = tmp_path / "robot.yaml"
    path.write_text(
        BASE.replace(
            "plugin: synthetic\n  params: {seed: 1, prices: {Si-12.26: 92000}}",
            "plugin: csv\n  params: {path: bars.csv, symbol: Si-12.26, time_is: open}",
        )
    )
    for command in ("validate", "run"):
        proc = roboframe_cmd(command, str(path), cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"{path}:7: feed.params.time_is: time_is: open needs interval" in proc.stderr
    assert not (tmp_path / "runs").exists()
