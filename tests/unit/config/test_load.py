"""Loading a good robot file: line numbers, defaults, the frozen spec."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from roboframe.config import build_schema, load_robot, parse_duration_ms, spec_from_dict
from roboframe.config.yamlload import load_yaml
from roboframe.plugins import get_registry, published_registry

ROOT = Path(__file__).resolve().parents[3]


def test_example_robot_loads_with_every_field():
    spec = load_robot(ROOT / "robots" / "si.yaml")
    assert spec.name == "si-trend"
    assert list(spec.symbols) == ["RTS-12.26", "Si-12.26"]
    rts = spec.symbols["RTS-12.26"]
    assert (rts.tick_size, rts.point_value, rts.tick_value) == (
        Decimal(10),
        Decimal("1.3"),
        Decimal("13.0"),
    )
    assert spec.feed.plugin == "synthetic" and spec.feed.params["seed"] == 42
    assert spec.strategy.params == {"fast": 10, "slow": 30, "qty": 1, "long_only": False}
    assert spec.risk.max_position == {"RTS-12.26": 3, "Si-12.26": 3}
    assert spec.risk.max_daily_loss == Decimal(100000)
    assert spec.risk.allowed_symbols == ("RTS-12.26", "Si-12.26")
    assert spec.journal.dir == "runs/si-trend" and spec.journal.fsync == "on_close"
    assert spec.loop.address == "inproc://robo" and spec.loop.timer_ms is None
    assert spec.control.default and spec.control.address.endswith("/runs/si-trend/control.sock")
    with pytest.raises(TypeError):
        spec.strategy.params["fast"] = 3  # frozen


def test_line_numbers_of_nested_fields(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("a:\n  b:\n    - x\n    - {c: 1}\n")
    data, lines = load_yaml(path)
    assert data == {"a": {"b": ["x", {"c": 1}]}}
    assert lines[("a",)] == 1 and lines[("a", "b")] == 2
    assert lines[("a", "b", 1)] == 4 and lines[("a", "b", 1, "c")] == 4


def test_defaults_and_durations():
    spec = spec_from_dict(
        {
            "name": "x",
            "symbols": {"Si-12.26": {"tick_size": "1"}},
            "feed": {"plugin": "synthetic", "params": {"seed": 1, "prices": {"Si-12.26": 1}}},
            "strategy": {"plugin": "breakout"},
            "gateway": {"plugin": "paper"},
            "loop": {"timer_ms": "2s", "drain_ms": 50},
        }
    )
    assert spec.journal.dir == "runs/x" and spec.journal.flush_ms == 200
    assert spec.loop.timer_ms == 2000 and spec.loop.drain_ms == 50
    assert spec.strategy.params == {"entry": 20, "exit": 10, "qty": 1}
    assert spec.gateway.params == {"commission": 0, "slippage_ticks": 0, "fill_at": "next"}
    assert spec.symbols["Si-12.26"].lot == 1
    assert spec.risk.max_order_qty is None and spec.risk.max_position == {}


@pytest.mark.parametrize(
    ("text", "ms"),
    [("500ms", 500), ("3s", 3000), ("2m", 120000), ("1h", 3600000), (250, 250), (None, None)],
)
def test_parse_duration(text, ms):
    assert parse_duration_ms(text) == ms


def test_raw_round_trips_with_the_same_hash():
    spec = load_robot(ROOT / "robots" / "si.yaml")
    again = spec_from_dict(json.loads(json.dumps(spec.raw)))
    assert again.config_hash == spec.config_hash
    assert again.raw == spec.raw


def test_published_schema_is_current():
    schema = build_schema(published_registry(), open_names=True)
    current = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    published = (ROOT / "schemas" / "robot.schema.json").read_text()
    assert published == current, (
        "schemas/robot.schema.json is stale: run "
        "'roboframe schema --published > schemas/robot.schema.json'"
    )


def test_every_core_property_has_a_description():
    schema = build_schema(get_registry())

    def walk(node, path):
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{'.'.join((*path, name))} has no description"
            walk(prop, (*path, name))

    walk(schema, ())
