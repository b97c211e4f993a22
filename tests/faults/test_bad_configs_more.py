# ruff: noqa: E501 -- exact expected messages are long lines by nature
"""More wrong robot files (on top of tests/unit/config/test_bad_configs.py), each with
its exact message from ``roboframe validate``: exit 2, nothing on stdout, no traceback."""

from __future__ import annotations

import pytest

from tests.integration.conftest import roboframe_cmd
from tests.unit.config.test_bad_configs import BASE, CASES, EXPECTED

MORE = {
    "yaml_unclosed_quote": BASE.replace("name: si-trend", 'name: "si-trend'),
    "yaml_bad_indent": BASE.replace(
        "  max_order_qty: 5", "    max_order_qty: 5\n  max_position: 1"
    ),
    "name_missing": BASE.replace("name: si-trend\n", ""),
    "name_number": BASE.replace("name: si-trend", "name: 42"),
    "symbols_list": BASE.replace("symbols:\n  Si-12.26:", "symbols:\n  - Si-12.26:").replace(
        "  RTS-12.26: {tick_size: 10, point_value: 1.3}\n", ""
    ),
    "unknown_symbol_key": BASE.replace("point_value: 1.3}", "point_value: 1.3, tick: 10}"),
    "point_value_neg": BASE.replace("point_value: 1.3", "point_value: -1.3"),
    "unknown_feed_key": BASE.replace("  plugin: synthetic\n", "  plugin: synthetic\n  parms: {}\n"),
    "unknown_journal_key": BASE.replace("  fsync: on_close", "  fsync: on_close\n  folder: runs"),
    "unknown_loop_key": BASE + "loop:\n  timer: 1s\n",
    "timer_zero": BASE + "loop:\n  timer_ms: 0\n",
    "timer_negative": BASE + "loop:\n  timer_ms: -5\n",
    "drain_text": BASE + "loop:\n  drain_ms: soon\n",
    "open_orders_on_stop": BASE + "loop:\n  open_orders_on_stop: forget\n",
    "metrics_port_high": BASE + "metrics:\n  port: 70000\n",
    "metrics_port_text": BASE + "metrics:\n  port: http\n",
    "control_tcp_no_curve": BASE + "control:\n  address: tcp://0.0.0.0:5599\n",
    "control_unknown_key": BASE + "control:\n  adress: ipc://c.sock\n",
    "strategy_qty_zero": BASE.replace("{fast: 10, slow: 30}", "{fast: 10, slow: 30, qty: 0}"),
    "strategy_fast_equal": BASE.replace("{fast: 10, slow: 30}", "{fast: 30, slow: 30}"),
    "strategy_fast_text": BASE.replace("{fast: 10, slow: 30}", "{fast: ten, slow: 30}"),
    "strategy_no_class": BASE.replace("plugin: sma-crossover", "plugin: roboframe.builtin:NoSuch"),
    "strategy_not_strategy": BASE.replace("plugin: sma-crossover", "plugin: pathlib:Path"),
    "strategy_misspelt": BASE.replace("plugin: sma-crossover", "plugin: sma-crosover"),
    "breakout_params": BASE.replace(
        "plugin: sma-crossover\n  params: {fast: 10, slow: 30}",
        "plugin: breakout\n  params: {fast: 10}",
    ),
    "feed_volatility_neg": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}",
        "{seed: 1, prices: {Si-12.26: 92000}, volatility: -0.1}",
    ),
    "feed_price_zero": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}", "{seed: 1, prices: {Si-12.26: 0}}"
    ),
    "feed_bars_text": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}", "{seed: 1, bars: many, prices: {Si-12.26: 92000}}"
    ),
    "feed_interval_bad": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}",
        "{seed: 1, interval: 7 parsecs, prices: {Si-12.26: 92000}}",
    ),
    "gateway_unknown_param": BASE.replace(
        "  plugin: paper", "  plugin: paper\n  params: {comission: 2}"
    ),
    "risk_max_position_text": BASE.replace("max_order_qty: 5", "max_position: lots"),
    "risk_limit_symbol_neg": BASE.replace("max_order_qty: 5", "max_position: {Si-12.26: -2}"),
    "allowed_not_list": BASE.replace("max_order_qty: 5", "allowed_symbols: Si-12.26"),
    "duplicate_symbol_key": BASE.replace(
        "  RTS-12.26: {tick_size: 10, point_value: 1.3}",
        "  RTS-12.26: {tick_size: 10, point_value: 1.3}\n  Si-12.26: {tick_size: 1}",
    ),
    "control_same_tcp": BASE
    + "loop:\n  address: tcp://127.0.0.1:5590\ncontrol:\n  address: tcp://127.0.0.1:5590\n",
    "journal_dir_list": BASE.replace("  fsync: on_close", "  fsync: on_close\n  dir: [a, b]"),
    "section_not_map": BASE.replace("risk:\n  max_order_qty: 5", "risk: 5"),
    "feed_csv_no_path": BASE.replace(
        "  plugin: synthetic\n  params: {seed: 1, prices: {Si-12.26: 92000}}",
        "  plugin: csv\n  params: {}",
    ),
    "feed_unknown_param": BASE.replace(
        "{seed: 1, prices: {Si-12.26: 92000}}", "{seed: 1, prices: {Si-12.26: 92000}, sead: 2}"
    ),
    "daily_loss_text": BASE.replace("max_order_qty: 5", "max_daily_loss: lots"),
    "fsync_bool": BASE.replace("fsync: on_close", "fsync: true"),
    "backtest_cash_negative": BASE + "backtest:\n  cash: -5\n",
    "backtest_cash_zero": BASE + "backtest:\n  cash: '0'\n",
}

MORE_EXPECTED = {
    "yaml_unclosed_quote": (
        "{dir}/robot.yaml:17: invalid YAML: found unexpected end of stream while scanning a quoted scalar\n"
        "  hint: check indentation and that every 'key: value' has a space after the colon"
    ),
    "yaml_bad_indent": (
        "{dir}/robot.yaml:15: invalid YAML: expected <block end>, but found '<block mapping start>' while parsing a block mapping\n"
        "  hint: check indentation and that every 'key: value' has a space after the colon"
    ),
    "name_missing": (
        "{dir}/robot.yaml:1: missing required field 'name'\n"
        "  hint: robot name: letters, digits, '.', '_' and '-' (it is part of every client order id and journal path)"
    ),
    "name_number": (
        "{dir}/robot.yaml:1: name: expected a string, got 42 (integer)\n"
        "  hint: robot name: letters, digits, '.', '_' and '-' (it is part of every client order id and journal path)"
    ),
    "symbols_list": (
        "{dir}/robot.yaml:2: symbols: expected a mapping, got [{'Si-12.26': {'tick_size': 1, 'lot': 1, 'point_value': 1... (list)\n"
        "  hint: the instruments the robot trades, by symbol"
    ),
    "unknown_symbol_key": (
        "{dir}/robot.yaml:4: symbols.RTS-12.26.tick: unknown field 'tick'\n"
        "  hint: did you mean 'tick_size'?"
    ),
    "point_value_neg": (
        "{dir}/robot.yaml:4: symbols.RTS-12.26.point_value: must be > 0, got -1.3\n"
        "  hint: a positive number such as 1, 10 or 0.01"
    ),
    "unknown_feed_key": (
        "{dir}/robot.yaml:7: feed.parms: unknown field 'parms'\n  hint: did you mean 'params'?"
    ),
    "unknown_journal_key": (
        "{dir}/robot.yaml:17: journal.folder: unknown field 'folder'\n"
        "  hint: allowed fields: dir, flush_ms, fsync"
    ),
    "unknown_loop_key": (
        "{dir}/robot.yaml:18: loop.timer: unknown field 'timer'\n  hint: did you mean 'timer_ms'?"
    ),
    "timer_zero": (
        "{dir}/robot.yaml:18: loop.timer_ms: must be >= 1, got 0\n"
        "  hint: heartbeat timer period (write 1s, 500ms ...), null for none"
    ),
    "timer_negative": (
        "{dir}/robot.yaml:18: loop.timer_ms: must be >= 1, got -5\n"
        "  hint: heartbeat timer period (write 1s, 500ms ...), null for none"
    ),
    "drain_text": (
        "{dir}/robot.yaml:18: loop.drain_ms: expected a duration such as 500ms, 1s, 2m, 1h or a number of milliseconds, got 'soon'\n"
        "  hint: after stop, how long to wait for unacknowledged orders"
    ),
    "open_orders_on_stop": (
        "{dir}/robot.yaml:18: loop.open_orders_on_stop: must be one of: leave, cancel; got 'forget'\n"
        "  hint: what a stop (roboframe down, ctl stop, the end of the feed) does with the robot's open orders: leave them working, or cancel them"
    ),
    "metrics_port_high": (
        "{dir}/robot.yaml:18: metrics.port: must be <= 65535, got 70000\n"
        "  hint: TCP port serving the text format at /metrics, null for none (0: any free port, logged)"
    ),
    "metrics_port_text": (
        "{dir}/robot.yaml:18: metrics.port: expected an integer or null, got 'http' (string)\n"
        "  hint: TCP port serving the text format at /metrics, null for none (0: any free port, logged)"
    ),
    "control_tcp_no_curve": (
        "{dir}/robot.yaml:18: control.address: a tcp:// control endpoint needs CURVE keys: without them anyone who reaches the port could stop or flatten the robot\n"
        "  hint: add control: {curve: {secret_key: keys/robot.key_secret, clients: keys/clients}} (paths relative to the robot file); run 'roboframe keys generate --dir keys --name robot' for the robot's pair, and put each client's public NAME.key in keys/clients"
    ),
    "control_unknown_key": (
        "{dir}/robot.yaml:18: control.adress: unknown field 'adress'\n"
        "  hint: did you mean 'address'?"
    ),
    "strategy_qty_zero": (
        "{dir}/robot.yaml:10: strategy.params.qty: must be >= 1, got 0\n"
        "  hint: position size in lots when in the market"
    ),
    "strategy_fast_equal": "{dir}/robot.yaml:10: strategy.params.fast: must be less than slow (30)",
    "strategy_fast_text": (
        "{dir}/robot.yaml:10: strategy.params.fast: expected an integer, got 'ten' (string)\n"
        "  hint: bars in the fast average"
    ),
    "strategy_no_class": (
        "{dir}/robot.yaml:9: strategy.plugin: strategy 'roboframe.builtin:NoSuch': module 'roboframe.builtin' has no 'NoSuch'\n"
        "  hint: check the import path package.module:Class and that the package is installed"
    ),
    "strategy_not_strategy": (
        "{dir}/robot.yaml:9: strategy.plugin: strategy 'pathlib:Path' is not a subclass of roboframe.Strategy\n"
        "  hint: check the import path package.module:Class and that the package is installed"
    ),
    "strategy_misspelt": (
        "{dir}/robot.yaml:9: strategy.plugin: unknown strategy 'sma-crosover'\n"
        "  hint: did you mean 'sma-crossover'?"
    ),
    "breakout_params": (
        "{dir}/robot.yaml:10: strategy.params.fast: unknown field 'fast'\n"
        "  hint: allowed fields: entry, exit, qty"
    ),
    "feed_volatility_neg": (
        "{dir}/robot.yaml:7: feed.params.volatility: must be > 0, got -0.1\n"
        "  hint: relative standard deviation of one step"
    ),
    "feed_price_zero": "{dir}/robot.yaml:7: feed.params.prices.Si-12.26: must be > 0, got 0",
    "feed_bars_text": (
        "{dir}/robot.yaml:7: feed.params.bars: expected an integer, got 'many' (string)\n"
        "  hint: events per symbol; 0 (the default) for an endless feed"
    ),
    "feed_interval_bad": (
        "{dir}/robot.yaml:7: feed.params.interval: invalid value '7 parsecs'\n"
        "  hint: time between events of one symbol (500ms, 5s, 1m, 1h, 1d)"
    ),
    "gateway_unknown_param": (
        "{dir}/robot.yaml:13: gateway.params.comission: unknown field 'comission'\n"
        "  hint: did you mean 'commission'?"
    ),
    "risk_max_position_text": (
        "{dir}/robot.yaml:14: risk.max_position: expected an integer or a mapping, got 'lots' (string)\n"
        "  hint: largest absolute position in lots: one number for every symbol, or a mapping symbol -> lots"
    ),
    "risk_limit_symbol_neg": "{dir}/robot.yaml:14: risk.max_position.Si-12.26: must be >= 0, got -2",
    "allowed_not_list": (
        "{dir}/robot.yaml:14: risk.allowed_symbols: expected a list, got 'Si-12.26' (string)\n"
        "  hint: symbols orders may be sent for (default: all symbols)"
    ),
    "duplicate_symbol_key": (
        "{dir}/robot.yaml:5: duplicate key 'Si-12.26' (first defined on line 3)\n"
        "  hint: each key may appear once in a mapping"
    ),
    "control_same_tcp": (
        "{dir}/robot.yaml:20: control.address: same address as loop.address (tcp://127.0.0.1:5590)\n"
        "  hint: the control endpoint needs its own address, e.g. ipc://runs/NAME/control.sock"
    ),
    "journal_dir_list": (
        "{dir}/robot.yaml:17: journal.dir: expected a string, got ['a', 'b'] (list)\n"
        "  hint: folder of the journal files (default runs/<name>)"
    ),
    "section_not_map": (
        "{dir}/robot.yaml:13: risk: expected a mapping, got 5 (integer)\n"
        "  hint: pre-trade limits; every order is checked against them"
    ),
    "feed_csv_no_path": (
        "{dir}/robot.yaml:7: feed.params: missing required field 'path'\n"
        "  hint: CSV file, relative to the robot file's folder, or absolute"
    ),
    "feed_unknown_param": (
        "{dir}/robot.yaml:7: feed.params.sead: unknown field 'sead'\n  hint: did you mean 'seed'?"
    ),
    "daily_loss_text": (
        "{dir}/robot.yaml:14: risk.max_daily_loss: expected a number, got 'lots'\n"
        "  hint: money lost in a day (see day_starts) after which the robot halts until resumed (only reducing orders pass)"
    ),
    "fsync_bool": (
        "{dir}/robot.yaml:16: journal.fsync: must be one of: never, on_close, always; got True\n"
        "  hint: when to fsync: never, on_close, or always (every flush)"
    ),
    "backtest_cash_negative": (
        "{dir}/robot.yaml:18: backtest.cash: must be > 0, got -5\n"
        "  hint: the starting capital of a backtest, e.g. 1000000"
    ),
    "backtest_cash_zero": (
        "{dir}/robot.yaml:18: backtest.cash: must be > 0, got '0'\n"
        "  hint: the starting capital of a backtest, e.g. 1000000"
    ),
}


def test_at_least_fifty_distinct_wrong_robot_files():
    assert not set(MORE) & set(CASES)
    texts = {**CASES, **MORE}.values()
    assert len(set(texts)) == len(CASES) + len(MORE) >= 50
    messages = {**EXPECTED, **MORE_EXPECTED}.values()
    assert len(set(messages)) == len(CASES) + len(MORE)


@pytest.mark.parametrize("case", sorted(MORE))
def test_validate_prints_exact_message(tmp_path, case):
    path = tmp_path / "robot.yaml"
    path.write_text(MORE[case])
    proc = roboframe_cmd("validate", str(path))
    assert "Traceback" not in proc.stderr
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.rstrip("\n") == MORE_EXPECTED[case].replace("{dir}", str(tmp_path))
