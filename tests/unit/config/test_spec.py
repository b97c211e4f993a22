"""The frozen spec: every default, conversions, overrides, the raw config and its hash."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest

from roboframe.config import (
    ControlSpec,
    JournalSpec,
    LoopSpec,
    MetricsSpec,
    RiskSpec,
    load_robot,
    parse_duration_ms,
    spec_from_dict,
)
from roboframe.config.spec import config_hash
from roboframe.errors import ConfigError
from tests.unit.config.conftest import GOOD, MINIMAL, Crossover


def test_every_default(load):
    spec = load(MINIMAL)
    assert spec.name == "tiny" and spec.description == ""
    si = spec.symbols["Si-12.26"]
    assert (si.tick_size, si.lot, si.point_value, si.currency) == (
        Decimal(1),
        1,
        Decimal(1),
        "RUB",
    )
    assert spec.feed.params == {"seed": 1, "bars": 100}
    assert spec.gateway.params == {"commission": 0}
    assert spec.strategy.params == {"fast": 10, "slow": 30, "qty": 1, "levels": []}
    assert spec.risk == RiskSpec(allowed_symbols=("Si-12.26",))
    assert spec.risk.max_position == {}
    assert spec.journal == JournalSpec(dir="runs/tiny", fsync="on_close", flush_ms=200)
    assert spec.loop == LoopSpec(address="inproc://robo", timer_ms=None, drain_ms=1000)
    assert spec.control == ControlSpec(
        address=f"ipc://{Path('runs/tiny/control.sock').absolute()}", default=True
    )
    assert spec.extra == {}


def test_raw_has_the_defaults_filled_in(load, tmp_path):
    spec = load(MINIMAL)
    assert spec.source == str(tmp_path / "robot.yaml")
    assert spec.raw == {
        "name": "tiny",
        "description": "",
        "symbols": {"Si-12.26": {"tick_size": 1}},
        "feed": {"plugin": "ticks", "params": {"seed": 1, "bars": 100}},
        "strategy": {
            "plugin": "crossover",
            "params": {"fast": 10, "slow": 30, "qty": 1, "levels": []},
        },
        "gateway": {"plugin": "paper", "params": {"commission": 0}},
        "risk": {},
        "journal": {"dir": "runs/tiny", "fsync": "on_close", "flush_ms": 200},
        "loop": {"address": "inproc://robo", "timer_ms": None, "drain_ms": 1000},
        "control": {"address": None},
    }
    assert spec.config_hash == config_hash(spec.raw)
    assert len(spec.config_hash) == 64


def test_default_values_are_copies(load):
    spec = load(MINIMAL)
    spec.strategy.params["levels"].append(1)
    assert Crossover.params_schema["properties"]["levels"]["default"] == []


def test_the_example_file_fields(load):
    spec = load(
        GOOD
        + "description: two futures\n"
        + "loop: {address: 'tcp://127.0.0.1:5599', timer_ms: 2s, drain_ms: 500ms}\n"
        + "control: {address: 'ipc:///tmp/bot.ctl'}\n"
        + "alerts: {email: desk@example.com}\n"
    )
    assert spec.description == "two futures"
    assert list(spec.symbols) == ["RTS-12.26", "Si-12.26"]
    rts = spec.symbols["RTS-12.26"]
    assert (rts.tick_size, rts.point_value, rts.tick_value) == (
        Decimal(10),
        Decimal("1.3"),
        Decimal("13.0"),
    )
    assert spec.strategy.params == {"fast": 3, "slow": 8, "qty": 1, "levels": []}
    assert spec.risk.max_order_qty == 5
    assert spec.loop == LoopSpec("tcp://127.0.0.1:5599", 2000, 500)
    assert spec.control.address == "ipc:///tmp/bot.ctl"
    assert spec.extra == {"alerts": {"email": "desk@example.com"}}


def test_risk_conversions(load):
    risk = (
        "risk:\n"
        "  allowed_symbols: [Si-12.26]\n"
        "  max_position: {Si-12.26: 3}\n"
        "  max_orders_per_second: 10\n"
        "  max_daily_loss: '100000.50'\n"
        "  price_band_pct: 2.5\n"
    )
    spec = load(GOOD.replace("risk:\n  max_order_qty: 5\n", risk))
    assert spec.risk == RiskSpec(
        allowed_symbols=("Si-12.26",),
        max_order_qty=None,
        max_position={"Si-12.26": 3},
        max_orders_per_second=10.0,
        max_daily_loss=Decimal("100000.50"),
        price_band_pct=Decimal("2.5"),
    )
    assert isinstance(spec.risk.max_orders_per_second, float)
    assert spec.raw["risk"]["max_daily_loss"] == "100000.50"  # as written


def test_scalar_max_position_applies_to_every_symbol(load):
    spec = load(GOOD.replace("max_order_qty: 5", "max_position: 2"))
    assert spec.risk.max_position == {"RTS-12.26": 2, "Si-12.26": 2}
    assert spec.risk.allowed_symbols == ("RTS-12.26", "Si-12.26")


def test_an_empty_allow_list_allows_nothing(load):
    spec = load(GOOD.replace("max_order_qty: 5", "allowed_symbols: []"))
    assert spec.risk.allowed_symbols == ()


def test_money_as_strings_stays_exact(load):
    spec = load(
        GOOD.replace("{tick_size: 10, point_value: 1.3}", "{tick_size: '0.01', point_value: '10'}")
    )
    assert spec.symbols["RTS-12.26"].tick_size == Decimal("0.01")
    assert spec.symbols["RTS-12.26"].point_value == Decimal(10)


def test_spec_is_frozen(load):
    spec = load(GOOD)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.strategy.params["fast"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.risk.max_position["Si-12.26"] = 1  # type: ignore[index]


def test_raw_round_trips_through_json_with_the_same_hash(load, registry):
    spec = load(GOOD + "loop: {timer_ms: 1s}\n")
    again = spec_from_dict(json.loads(json.dumps(spec.raw)), source="journal", registry=registry)
    assert again.raw == spec.raw
    assert again.config_hash == spec.config_hash
    assert again.loop.timer_ms == 1000 and again.source == "journal"


def test_spec_from_dict_does_not_touch_its_argument(registry):
    data = {
        "name": "d",
        "symbols": {"Si-12.26": {"tick_size": 1}},
        "feed": {"plugin": "ticks", "params": {"seed": 1}},
        "strategy": {"plugin": "momentum"},
        "gateway": {"plugin": "paper"},
    }
    before = json.dumps(data, sort_keys=True)
    spec = spec_from_dict(data, registry=registry)
    assert json.dumps(data, sort_keys=True) == before
    assert spec.strategy.params == {}


def test_spec_from_dict_problems_have_no_lines(registry):
    with pytest.raises(ConfigError) as info:
        spec_from_dict({"name": "d"}, source="journal.rfj", registry=registry)
    assert str(info.value).splitlines()[0] == "journal.rfj: missing required field 'feed'"
    assert [p.line for p in info.value.problems] == [None, None, None, None]


def test_hash_ignores_key_order(registry):
    spec = spec_from_dict(small_robot(), registry=registry)
    reordered = dict(reversed(list(spec.raw.items())))
    assert spec_from_dict(reordered, registry=registry).config_hash == spec.config_hash


def test_metrics_are_off_by_default_and_left_out_of_raw(load):
    spec = load(GOOD)
    assert spec.metrics == MetricsSpec(port=None, address="127.0.0.1")
    assert "metrics" not in spec.raw  # files without the section keep their config hash
    on = load(GOOD + "metrics: {port: 9464}\n")
    assert on.metrics == MetricsSpec(port=9464, address="127.0.0.1")
    assert on.raw["metrics"] == {"port": 9464}
    assert on.config_hash != spec.config_hash


def test_metrics_port_out_of_range(error_of, tmp_path):
    text = error_of(GOOD + "metrics: {port: 70000, address: 0.0.0.0}\n")
    line = GOOD.count("\n") + 1
    assert text == (
        f"{tmp_path}/robot.yaml:{line}: metrics.port: must be <= 65535, got 70000\n"
        "  hint: TCP port serving the text format at /metrics, null for none"
        " (0: any free port, logged)"
    )


def small_robot() -> dict:
    return {
        "name": "h",
        "symbols": {"Si-12.26": {"tick_size": 1}},
        "feed": {"plugin": "ticks", "params": {"seed": 1}},
        "strategy": {"plugin": "crossover", "params": {"fast": 2}},
        "gateway": {"plugin": "paper"},
    }


def test_imported_strategy_gets_its_defaults(load):
    text = GOOD.replace(
        "plugin: crossover\n  params: {fast: 3, slow: 8}",
        "plugin: tests.unit.config.conftest:Imported",
    )
    spec = load(text)
    assert spec.strategy.plugin == "tests.unit.config.conftest:Imported"
    assert spec.strategy.params == {"window": 5, "band": 1.5}


def test_overrides_apply_before_validation(load):
    spec = load(GOOD, overrides={"journal.dir": "/tmp/x", "loop.timer_ms": "250ms"})
    assert spec.journal.dir == "/tmp/x"
    assert spec.loop.timer_ms == 250
    assert spec.raw["journal"] == {"dir": "/tmp/x", "fsync": "on_close", "flush_ms": 200}


def test_a_bad_override_is_reported_without_a_file_line(error_of, tmp_path):
    text = error_of(GOOD, overrides={"journal.fsync": "sometimes", "risk.max_order_qty": 0})
    assert text == (
        f"{tmp_path}/robot.yaml: journal.fsync: must be one of: never, on_close, always; "
        "got 'sometimes'\n"
        "  hint: when to fsync: never, on_close, or always (every flush); "
        "the value comes from an override, not from the file\n"
        f"{tmp_path}/robot.yaml: risk.max_order_qty: must be >= 1, got 0\n"
        "  hint: largest order, in lots; the value comes from an override, not from the file"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"name.x": 1}, "robot.yaml: name.x: cannot set: name is not a mapping"),
        ({"journal..dir": 1}, "robot.yaml: journal..dir: not a field path"),
    ],
)
def test_override_paths_that_cannot_be_set(error_of, tmp_path, overrides, expected):
    assert error_of(GOOD, overrides=overrides) == f"{tmp_path}/{expected}"


def test_all_schema_problems_at_once_sorted_by_line(error_of, tmp_path):
    text = (
        GOOD.replace("max_order_qty: 5", "max_order_qty: 0")
        .replace("fsync: on_close", "fsync: maybe")
        .replace("tick_size: 1,", "tick_size: one,")
    )
    lines = [line for line in error_of(text).splitlines() if not line.startswith("  hint")]
    assert lines == [
        f"{tmp_path}/robot.yaml:3: symbols.Si-12.26.tick_size: expected a number, got 'one'",
        f"{tmp_path}/robot.yaml:14: risk.max_order_qty: must be >= 1, got 0",
        f"{tmp_path}/robot.yaml:16: journal.fsync: must be one of: never, on_close, always; "
        "got 'maybe'",
    ]


def test_all_cross_field_problems_at_once(error_of, tmp_path):
    text = GOOD.replace("max_order_qty: 5", "allowed_symbols: [BR-1.27]").replace(
        "{fast: 3, slow: 8}", "{fast: 9, slow: 8}"
    )
    lines = [line for line in error_of(text).splitlines() if not line.startswith("  hint")]
    assert lines == [
        f"{tmp_path}/robot.yaml:10: strategy.params.fast: must be less than slow (8)",
        f"{tmp_path}/robot.yaml:14: risk.allowed_symbols[0]: 'BR-1.27' is not one of the "
        "robot's symbols",
    ]


def test_the_default_registry_is_used_when_none_is_given(tmp_path, monkeypatch, registry):
    import roboframe.plugins

    monkeypatch.setattr(roboframe.plugins, "get_registry", lambda: registry)
    path = tmp_path / "r.yaml"
    path.write_text(MINIMAL)
    assert load_robot(path).feed.plugin == "ticks"


@pytest.mark.parametrize(
    ("text", "ms"),
    [("500ms", 500), ("3s", 3000), ("2m", 120000), ("1h", 3600000), ("40", 40), (250, 250)],
)
def test_parse_duration(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["5 minutes", "1.5s", "ms", "", True])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError):
        parse_duration_ms(text)


def test_new_loop_keys_have_defaults_that_stay_out_of_the_hash(load):
    """An older robot file keeps its config hash (a run begun before these keys
    existed can still be resumed): they are not defaulted into raw."""
    spec = load(MINIMAL)
    assert spec.loop.open_orders_on_error == "leave"
    assert spec.loop.max_ahead_ms == 24 * 3600 * 1000
    assert not {"open_orders_on_error", "max_ahead"} & set(spec.raw["loop"])


@pytest.mark.parametrize(("value", "ms"), [("5m", 300_000), ("null", None), ("0", 0)])
def test_max_ahead_takes_a_duration_or_null(load, value, ms):
    assert load(MINIMAL + f"loop:\n  max_ahead: {value}\n").loop.max_ahead_ms == ms


def test_max_ahead_refuses_other_words(load):
    with pytest.raises(ConfigError, match=r"robot.yaml:8: loop.max_ahead"):
        load(MINIMAL + "loop:\n  max_ahead: a day\n")


def test_cancel_on_error_needs_a_gateway_that_can_cancel_without_the_loop(load, registry):
    """The test registry's gateway keeps the default ``cancel_left``: the file is
    refused before a run starts, naming the key, not failed when it is too late."""
    with pytest.raises(ConfigError) as err:
        load(MINIMAL + "loop:\n  open_orders_on_error: cancel\n")
    text = str(err.value)
    assert "robot.yaml:8: loop.open_orders_on_error: gateway 'paper' cannot cancel" in text
    assert "use an order-store gateway" in text

    class CanCancel(registry.gateways["paper"].obj):
        def cancel_left(self, run_id, timeout, known):
            return [], []

    registry.gateways["paper"] = dataclasses.replace(registry.gateways["paper"], obj=CanCancel)
    spec = load(MINIMAL + "loop:\n  open_orders_on_error: cancel\n")
    assert spec.loop.open_orders_on_error == "cancel"


def test_config_changes_name_nested_keys_added_removed_and_changed():
    from roboframe.config.spec import ABSENT, config_changes

    old = {"risk": {"max_position": 3, "band": 5}, "strategy": {"params": {"fast": 10}}}
    new = {"risk": {"max_position": 4}, "strategy": {"params": {"fast": 10, "qty": 2}}}
    assert config_changes(old, new) == [
        ("risk.band", 5, ABSENT),
        ("risk.max_position", 3, 4),
        ("strategy.params.qty", ABSENT, 2),
    ]
    assert config_changes(old, old) == []
    # a value that prints like the missing marker is still a change
    assert config_changes({"a": "(absent)"}, {}) == [("a", "(absent)", ABSENT)]
    # a list is one value; 1 and 1.0 are different files (different config hashes)
    assert config_changes({"a": [1, 2]}, {"a": [1, 2]}) == []
    assert config_changes({"a": 1}, {"a": 1.0}) == [("a", 1, 1.0)]
