"""The bad-config suite: each mistake in a robot file and its exact message.

Every case edits the good file :data:`GOOD` (from conftest) into one mistake
and asserts the whole rendered :class:`~roboframe.errors.ConfigError`: file,
line, field, message and hint. The texts are part of the interface.
"""
# ruff: noqa: E501  (exact expected messages are long lines by nature)

from __future__ import annotations

import pytest

from tests.unit.config.conftest import GOOD


def sub(old: str, new: str, text: str = GOOD) -> str:
    """``text`` with the first ``old`` replaced (which must be there)."""
    assert old in text, old
    return text.replace(old, new, 1)


CASES = [
    pytest.param(
        sub("  plugin: paper", "  plugin: [paper"),
        (
            "{dir}/robot.yaml:13: invalid YAML: expected ',' or ']', but got ':' while parsing a flow sequence\n"
            "  hint: check indentation and that every 'key: value' has a space after the colon"
        ),
        id="yaml_syntax",
    ),
    pytest.param(
        sub("  max_order_qty: 5", "\tmax_order_qty: 5"),
        (
            "{dir}/robot.yaml:14: invalid YAML: found character '\\t' that cannot start any token while scanning for the next token\n"
            "  hint: YAML does not allow tabs for indentation; use spaces"
        ),
        id="tab_indent",
    ),
    pytest.param(
        GOOD + "risk:\n  max_position: 1\n",
        (
            "{dir}/robot.yaml:17: duplicate key 'risk' (first defined on line 13)\n"
            "  hint: each key may appear once in a mapping"
        ),
        id="duplicate_top_key",
    ),
    pytest.param(
        sub("  RTS-12.26:", "  Si-12.26: {tick_size: 1}\n  RTS-12.26:"),
        (
            "{dir}/robot.yaml:4: duplicate key 'Si-12.26' (first defined on line 3)\n"
            "  hint: each key may appear once in a mapping"
        ),
        id="duplicate_nested_key",
    ),
    pytest.param(
        GOOD + "---\nname: other\n",
        (
            "{dir}/robot.yaml:17: invalid YAML: expected a single document in the stream, but found another document\n"
            "  hint: a robot file is one YAML document; remove the '---' separator"
        ),
        id="multiple_documents",
    ),
    pytest.param(
        sub("name: test-bot", "name: !!python/object/apply:os.getcwd []"),
        (
            "{dir}/robot.yaml:1: invalid YAML: unsupported tag '!!python/object/apply:os.getcwd'\n"
            "  hint: only plain data is allowed: no tags such as !!python/..."
        ),
        id="python_tag",
    ),
    pytest.param(
        sub(
            "plugin: crossover\n  params: {fast: 3, slow: 8}",
            "plugin: tests.unit.config.conftest:Exploding",
        ),
        "{dir}/robot.yaml:8: strategy.params: Exploding.validate_params raised KeyError: 'slow'",
        id="validate_params_raises",
    ),
    pytest.param(
        sub(
            "plugin: crossover\n  params: {fast: 3, slow: 8}",
            "plugin: tests.unit.config.conftest:BadSchema",
        ),
        (
            "{dir}/robot.yaml:9: strategy.plugin: strategy BadSchema has an invalid params_schema: 'objekt' is not valid under any of the given schemas\n"
            "  hint: fix params_schema in the strategy class"
        ),
        id="strategy_bad_params_schema",
    ),
    pytest.param(
        "",
        (
            "{dir}/robot.yaml: empty file\n"
            "  hint: a robot file is a YAML mapping; see robots/si.yaml for an example"
        ),
        id="empty_file",
    ),
    pytest.param(
        "# nothing here yet\n",
        (
            "{dir}/robot.yaml: empty file\n"
            "  hint: a robot file is a YAML mapping; see robots/si.yaml for an example"
        ),
        id="only_comments",
    ),
    pytest.param(
        "- name: a\n- name: b\n",
        (
            "{dir}/robot.yaml:1: the file must be a mapping of sections, got a list\n"
            "  hint: start with 'name: my-robot' and see robots/si.yaml"
        ),
        id="top_level_list",
    ),
    pytest.param(
        "test-bot\n",
        (
            "{dir}/robot.yaml:1: the file must be a mapping of sections, got a string\n"
            "  hint: start with 'name: my-robot' and see robots/si.yaml"
        ),
        id="top_level_scalar",
    ),
    pytest.param(
        sub("strategy:\n  plugin: crossover\n  params: {fast: 3, slow: 8}\n", ""),
        (
            "{dir}/robot.yaml:1: missing required field 'strategy'\n"
            "  hint: the strategy plugin and its params"
        ),
        id="missing_section",
    ),
    pytest.param(
        sub("name: test-bot\n", ""),
        (
            "{dir}/robot.yaml:1: missing required field 'name'\n"
            "  hint: robot name: letters, digits, '.', '_' and '-' (it is part of every client order id and journal path)"
        ),
        id="missing_name",
    ),
    pytest.param(
        GOOD + "gatway: {plugin: paper}\n",
        ("{dir}/robot.yaml:17: gatway: unknown field 'gatway'\n  hint: did you mean 'gateway'?"),
        id="unknown_top_key_close",
    ),
    pytest.param(
        GOOD + "colour: blue\n",
        (
            "{dir}/robot.yaml:17: colour: unknown field 'colour'\n"
            "  hint: allowed fields: alerts, backtest, control, description, feed, gateway, journal, loop, metrics, name, risk, strategy, symbols"
        ),
        id="unknown_top_key_far",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_ordr_qty: 5"),
        (
            "{dir}/robot.yaml:14: risk.max_ordr_qty: unknown field 'max_ordr_qty'\n"
            "  hint: did you mean 'max_order_qty'?"
        ),
        id="unknown_risk_key",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_ordr_qty: 5\n  max_postion: 3"),
        (
            "{dir}/robot.yaml:14: risk.max_ordr_qty: unknown field 'max_ordr_qty'\n"
            "  hint: did you mean 'max_order_qty'?\n"
            "{dir}/robot.yaml:15: risk.max_postion: unknown field 'max_postion'\n"
            "  hint: did you mean 'max_position'?"
        ),
        id="two_unknown_keys",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_order_qty: five"),
        (
            "{dir}/robot.yaml:14: risk.max_order_qty: expected an integer, got 'five' (string)\n"
            "  hint: largest order, in lots"
        ),
        id="qty_wrong_type",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_order_qty: 0"),
        (
            "{dir}/robot.yaml:14: risk.max_order_qty: must be >= 1, got 0\n"
            "  hint: largest order, in lots"
        ),
        id="qty_zero",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_order_qty: -3"),
        (
            "{dir}/robot.yaml:14: risk.max_order_qty: must be >= 1, got -3\n"
            "  hint: largest order, in lots"
        ),
        id="qty_negative",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_order_qty: yes"),
        (
            "{dir}/robot.yaml:14: risk.max_order_qty: expected an integer, got True (boolean)\n"
            "  hint: largest order, in lots"
        ),
        id="qty_boolean",
    ),
    pytest.param(  # YAML's float: JSON Schema's integer, but every order would be refused
        sub("max_order_qty: 5", "max_order_qty: 5.0"),
        (
            "{dir}/robot.yaml:14: risk.max_order_qty: expected an integer, got 5.0: write 5, without the decimal point\n"
            "  hint: largest order, in lots"
        ),
        id="qty_whole_float",
    ),
    pytest.param(
        sub("params: {fast: 3, slow: 8}", "params: {fast: 3.0, slow: 8}"),
        (
            "{dir}/robot.yaml:10: strategy.params.fast: expected an integer, got 3.0: write 3, without the decimal point\n"
            "  hint: fast bars"
        ),
        id="strategy_param_whole_float",
    ),
    pytest.param(
        sub("tick_size: 10", "tick_size: 0"),
        (
            "{dir}/robot.yaml:4: symbols.RTS-12.26.tick_size: must be > 0, got 0\n"
            "  hint: a positive number such as 1, 10 or 0.01"
        ),
        id="tick_size_zero",
    ),
    pytest.param(
        sub("tick_size: 10", "tick_size: ten"),
        (
            "{dir}/robot.yaml:4: symbols.RTS-12.26.tick_size: expected a number, got 'ten'\n"
            "  hint: minimum price step, e.g. 1 for Si, 10 for RTS"
        ),
        id="tick_size_text",
    ),
    pytest.param(
        sub("point_value: 1.3", "point_value: -1.3"),
        (
            "{dir}/robot.yaml:4: symbols.RTS-12.26.point_value: must be > 0, got -1.3\n"
            "  hint: a positive number such as 1, 10 or 0.01"
        ),
        id="point_value_negative",
    ),
    pytest.param(
        sub("lot: 1,", "lot: 1.5,"),
        (
            "{dir}/robot.yaml:3: symbols.Si-12.26.lot: expected an integer, got 1.5 (number)\n"
            "  hint: contracts (units) per lot"
        ),
        id="lot_fraction",
    ),
    pytest.param(
        sub("{tick_size: 10, point_value: 1.3}", "{point_value: 1.3}"),
        (
            "{dir}/robot.yaml:4: symbols.RTS-12.26: missing required field 'tick_size'\n"
            "  hint: minimum price step, e.g. 1 for Si, 10 for RTS"
        ),
        id="missing_tick_size",
    ),
    pytest.param(
        sub("currency: RUB", "currency: rubles"),
        (
            "{dir}/robot.yaml:3: symbols.Si-12.26.currency: invalid value 'rubles'\n"
            "  hint: currency of PnL, a 3-letter code such as RUB or USD"
        ),
        id="bad_currency",
    ),
    pytest.param(
        sub("  RTS-12.26:", "  RTS 12.26:"),
        (
            "{dir}/robot.yaml:4: symbols.RTS 12.26: invalid name 'RTS 12.26'\n"
            "  hint: a symbol: up to 32 letters, digits and . _ : / @ -, starting with a letter or digit"
        ),
        id="bad_symbol_name",
    ),
    pytest.param(
        sub("symbols:\n", "symbols: {}\n").replace(
            "  Si-12.26: {tick_size: 1, lot: 1, point_value: 1, currency: RUB}\n"
            "  RTS-12.26: {tick_size: 10, point_value: 1.3}\n",
            "",
        ),
        (
            "{dir}/robot.yaml:2: symbols: must not be empty\n"
            "  hint: the instruments the robot trades, by symbol"
        ),
        id="empty_symbols",
    ),
    pytest.param(
        sub("name: test-bot", "name: test bot!"),
        (
            "{dir}/robot.yaml:1: name: invalid value 'test bot!'\n"
            "  hint: robot name: letters, digits, '.', '_' and '-' (it is part of every client order id and journal path)"
        ),
        id="bad_robot_name",
    ),
    pytest.param(
        sub("fsync: on_close", "fsync: sometimes"),
        (
            "{dir}/robot.yaml:16: journal.fsync: must be one of: never, on_close, always; got 'sometimes'\n"
            "  hint: when to fsync: never, on_close, or always (every flush)"
        ),
        id="bad_fsync_enum",
    ),
    pytest.param(
        sub("journal:\n", "journal:\n  dir: [runs]\n"),
        (
            "{dir}/robot.yaml:16: journal.dir: expected a string, got ['runs'] (list)\n"
            "  hint: folder of the journal files (default runs/<name>)"
        ),
        id="journal_dir_not_string",
    ),
    pytest.param(
        sub("journal:\n", "journal:\n  flush_ms: 5 minutes\n"),
        (
            "{dir}/robot.yaml:16: journal.flush_ms: expected a duration such as 500ms, 1s, 2m, 1h or a number of milliseconds, got '5 minutes'\n"
            "  hint: longest time buffered events wait before reaching the OS; write 500ms, 1s or a number of milliseconds"
        ),
        id="bad_duration",
    ),
    pytest.param(
        sub("journal:\n", "journal:\n  flush_ms: 0.5\n"),
        (
            "{dir}/robot.yaml:16: journal.flush_ms: expected a duration such as 500ms, 1s, 2m, 1h or a number of milliseconds, got 0.5 (number)\n"
            "  hint: longest time buffered events wait before reaching the OS; write 500ms, 1s or a number of milliseconds"
        ),
        id="duration_float",
    ),
    pytest.param(
        GOOD + "loop: {timer_ms: 0s}\n",
        (
            "{dir}/robot.yaml:17: loop.timer_ms: must be at least 1ms, got '0s'\n"
            "  hint: leave timer_ms out (or null) for no heartbeat timer"
        ),
        id="timer_zero",
    ),
    pytest.param(
        GOOD + "loop:\n  address: http://robo\n",
        (
            "{dir}/robot.yaml:18: loop.address: expected a ZeroMQ address inproc://..., ipc://... or tcp://HOST:PORT, got 'http://robo'\n"
            "  hint: ZeroMQ address the loop binds: inproc://, ipc:// or tcp://"
        ),
        id="bad_address_scheme",
    ),
    pytest.param(
        GOOD + "loop:\n  address: ipc://robo.sock\ncontrol:\n  address: ipc://robo.sock\n",
        (
            "{dir}/robot.yaml:20: control.address: same address as loop.address (ipc://robo.sock)\n"
            "  hint: the control endpoint needs its own address, e.g. ipc://runs/NAME/control.sock"
        ),
        id="control_equals_loop",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_daily_loss: -100"),
        (
            "{dir}/robot.yaml:14: risk.max_daily_loss: must be > 0, got -100\n"
            "  hint: a positive number; leave the field out for no limit"
        ),
        id="daily_loss_negative",
    ),
    pytest.param(
        sub("max_order_qty: 5", "price_band_pct: five%"),
        (
            "{dir}/robot.yaml:14: risk.price_band_pct: expected a number, got 'five%'\n"
            "  hint: limit prices must be within this percent of the last price"
        ),
        id="price_band_text",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_orders_per_second: 0"),
        (
            "{dir}/robot.yaml:14: risk.max_orders_per_second: must be > 0, got 0\n"
            "  hint: orders per second, measured in event time (a fraction too: 0.5 is "
            "one order per 2 s)"
        ),
        id="orders_per_second_zero",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_position: -1"),
        (
            "{dir}/robot.yaml:14: risk.max_position: must be >= 0, got -1\n"
            "  hint: largest absolute position in lots: one number for every symbol, or a mapping symbol -> lots"
        ),
        id="max_position_negative",
    ),
    pytest.param(
        sub("max_order_qty: 5", "max_position: {Si-3.27: 2}"),
        (
            "{dir}/robot.yaml:14: risk.max_position.Si-3.27: limit for 'Si-3.27', which the robot does not trade\n"
            "  hint: did you mean 'Si-12.26'?"
        ),
        id="risk_unknown_symbol",
    ),
    pytest.param(
        sub("max_order_qty: 5", "allowed_symbols: [Si-12.26, BR-1.27]"),
        (
            "{dir}/robot.yaml:14: risk.allowed_symbols[1]: 'BR-1.27' is not one of the robot's symbols\n"
            "  hint: did you mean 'RTS-12.26'?"
        ),
        id="allowed_unknown_symbol",
    ),
    pytest.param(
        sub("prices: {Si-12.26: 92000}", "prices: {Si-12.25: 92000}"),
        (
            "{dir}/robot.yaml:7: feed.params.prices.Si-12.25: price for 'Si-12.25', which is not in symbols\n"
            "  hint: did you mean 'Si-12.26'?"
        ),
        id="feed_price_unknown_symbol",
    ),
    pytest.param(
        sub(
            "plugin: ticks\n  params: {seed: 1, prices: {Si-12.26: 92000}}",
            "plugin: file\n  params: {path: a.csv, symbols: [Si-12.26, Eu-12.26]}",
        ),
        (
            "{dir}/robot.yaml:7: feed.params.symbols[1]: 'Eu-12.26' is not in symbols\n"
            "  hint: did you mean 'Si-12.26'?"
        ),
        id="feed_symbols_unknown",
    ),
    pytest.param(
        sub("{seed: 1, prices: {Si-12.26: 92000}}", "{prices: {Si-12.26: 92000}}"),
        ("{dir}/robot.yaml:7: feed.params: missing required field 'seed'\n  hint: random seed"),
        id="feed_param_missing",
    ),
    pytest.param(
        sub("seed: 1,", "seed: one,"),
        (
            "{dir}/robot.yaml:7: feed.params.seed: expected an integer, got 'one' (string)\n"
            "  hint: random seed"
        ),
        id="feed_param_type",
    ),
    pytest.param(
        sub(
            "feed:\n  plugin: ticks\n  params: {seed: 1, prices: {Si-12.26: 92000}}", "feed: ticks"
        ),
        (
            "{dir}/robot.yaml:5: feed: expected a mapping, got 'ticks' (string)\n"
            "  hint: the feed plugin and its params"
        ),
        id="feed_not_mapping",
    ),
    pytest.param(
        sub("plugin: ticks", "plugin: tiks"),
        ("{dir}/robot.yaml:6: feed.plugin: unknown feed 'tiks'\n  hint: did you mean 'ticks'?"),
        id="unknown_feed",
    ),
    pytest.param(
        sub("plugin: paper", "plugin: quik"),
        ("{dir}/robot.yaml:12: gateway.plugin: unknown gateway 'quik'\n  hint: registered: paper"),
        id="unknown_gateway",
    ),
    pytest.param(
        sub("plugin: crossover", "plugin: breakout"),
        (
            "{dir}/robot.yaml:9: strategy.plugin: unknown strategy 'breakout'\n"
            "  hint: registered: crossover, momentum; or name a class as package.module:Class"
        ),
        id="unknown_strategy",
    ),
    pytest.param(
        sub("plugin: crossover", "plugin: crosover"),
        (
            "{dir}/robot.yaml:9: strategy.plugin: unknown strategy 'crosover'\n"
            "  hint: did you mean 'crossover'?"
        ),
        id="misspelt_strategy",
    ),
    pytest.param(
        sub("plugin: crossover", "plugin: no_such_pkg.mod:Strat"),
        (
            "{dir}/robot.yaml:9: strategy.plugin: strategy 'no_such_pkg.mod:Strat': cannot import module 'no_such_pkg.mod': No module named 'no_such_pkg'; not installed, and no no_such_pkg.py in {dir}\n"
            "  hint: check the import path package.module:Class and that the package is installed"
        ),
        id="strategy_import_fails",
    ),
    pytest.param(
        sub("plugin: crossover", "plugin: tests.unit.config.conftest:Nope"),
        (
            "{dir}/robot.yaml:9: strategy.plugin: strategy 'tests.unit.config.conftest:Nope': module 'tests.unit.config.conftest' has no 'Nope'\n"
            "  hint: check the import path package.module:Class and that the package is installed"
        ),
        id="strategy_class_missing",
    ),
    pytest.param(
        sub("plugin: crossover", "plugin: tests.unit.config.conftest:NotAStrategy"),
        (
            "{dir}/robot.yaml:9: strategy.plugin: strategy 'tests.unit.config.conftest:NotAStrategy' is not a subclass of roboframe.Strategy\n"
            "  hint: check the import path package.module:Class and that the package is installed"
        ),
        id="strategy_not_a_strategy",
    ),
    pytest.param(
        sub("{fast: 3, slow: 8}", "{fast: 0, slow: 8}"),
        ("{dir}/robot.yaml:10: strategy.params.fast: must be >= 1, got 0\n  hint: fast bars"),
        id="strategy_param_schema",
    ),
    pytest.param(
        sub("{fast: 3, slow: 8}", "{fast: 3, slow: 8, qyt: 2}"),
        (
            "{dir}/robot.yaml:10: strategy.params.qyt: unknown field 'qyt'\n"
            "  hint: did you mean 'qty'?"
        ),
        id="strategy_param_unknown",
    ),
    pytest.param(
        sub("{fast: 3, slow: 8}", "{fast: 8, slow: 3}"),
        "{dir}/robot.yaml:10: strategy.params.fast: must be less than slow (3)",
        id="strategy_validate_params",
    ),
    pytest.param(
        sub("{fast: 3, slow: 8}", "{fast: 40}"),
        "{dir}/robot.yaml:10: strategy.params.fast: must be less than slow (30)",
        id="strategy_validate_with_defaults",
    ),
    pytest.param(
        sub(
            "plugin: crossover\n  params: {fast: 3, slow: 8}",
            "plugin: tests.unit.config.conftest:Imported\n  params: {window: 1}",
        ),
        ("{dir}/robot.yaml:10: strategy.params.window: must be >= 2, got 1\n  hint: bars"),
        id="imported_strategy_param",
    ),
    pytest.param(
        sub(
            "plugin: crossover\n  params: {fast: 3, slow: 8}",
            "plugin: tests.unit.config.conftest:Imported\n  params: {window: 200, band: 0.5}",
        ),
        "{dir}/robot.yaml:10: strategy.params.band: must be >= 1 when window > 100",
        id="imported_strategy_validate",
    ),
    pytest.param(
        sub("params: {fast: 3, slow: 8}", "params: [3, 8]"),
        (
            "{dir}/robot.yaml:10: strategy.params: expected a mapping, got [3, 8] (list)\n"
            "  hint: settings of the strategy, checked by its own schema"
        ),
        id="params_not_mapping",
    ),
    pytest.param(
        sub("  plugin: paper", "  plugin: paper\n  params: {commission: -2}"),
        (
            "{dir}/robot.yaml:13: gateway.params.commission: must be >= 0, got -2\n"
            "  hint: fee per lot per fill"
        ),
        id="gateway_param",
    ),
    pytest.param(
        GOOD + "alerts:\n  emial: desk@example.com\n",
        ("{dir}/robot.yaml:18: alerts.emial: unknown field 'emial'\n  hint: did you mean 'email'?"),
        id="plugin_section_unknown_key",
    ),
]


def test_the_suite_has_many_distinct_mistakes():
    assert len(CASES) >= 25
    assert len({case.values[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_exact_message(error_of, tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)  # the folders a strategy module is looked for in: one
    assert error_of(text) == expected.format(dir=tmp_path)
