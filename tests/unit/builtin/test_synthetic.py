"""The synthetic feed: determinism everywhere, sane bars on the tick grid."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roboframe.builtin.feeds.synthetic import SyntheticFeed
from roboframe.core import codec
from roboframe.core.events import Bar, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

SI, RTS = "Si-12.26", "RTS-12.26"
INSTRUMENTS = {
    SI: Instrument(SI, Decimal(1)),
    RTS: Instrument(RTS, Decimal(10), point_value=Decimal("1.3")),
}
PARAMS = {
    "seed": 3,
    "bars": 200,
    "prices": {SI: 92000, RTS: 110000},
    "interval": "1m",
    "start": "2026-12-01T07:00:00Z",
}
START_NS = 1_796_108_400_000_000_000  # 2026-12-01T07:00:00Z


def digest(events) -> str:
    return hashlib.sha256(b"".join(codec.encode(e) for e in events)).hexdigest()


def events(**overrides):
    return list(SyntheticFeed({**PARAMS, **overrides}, INSTRUMENTS).events())


def test_two_instances_give_identical_events():
    assert digest(events()) == digest(events())
    assert digest(events(seed=4)) != digest(events())


def test_identical_under_other_hash_seeds_and_processes():
    code = (
        "import hashlib, sys; from decimal import Decimal\n"
        "from roboframe.core import codec\n"
        "from roboframe.core.instruments import Instrument\n"
        "from roboframe.builtin.feeds.synthetic import SyntheticFeed\n"
        f"i = {{{SI!r}: Instrument({SI!r}, Decimal(1)),"
        f" {RTS!r}: Instrument({RTS!r}, Decimal(10))}}\n"
        f"ev = SyntheticFeed({PARAMS!r}, i).events()\n"
        "print(hashlib.sha256(b''.join(codec.encode(e) for e in ev)).hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("0", "1", "4242")
    }
    assert digests == {digest(events())}


def test_symbols_merge_in_time_order_ties_by_symbol_name():
    evs = events()
    assert len(evs) == 400
    assert [(e.ts, e.symbol) for e in evs] == sorted((e.ts, e.symbol) for e in evs)
    assert [e.symbol for e in evs[:4]] == [RTS, SI, RTS, SI]  # same ts: RTS < Si
    assert evs[0].ts == START_NS + 60 * 10**9  # a bar's ts is its close
    assert evs[-1].ts == START_NS + 200 * 60 * 10**9


def test_start_price_is_converted_to_ticks():
    first = {e.symbol: e for e in events()[:2]}
    assert first[SI].open == 92000
    assert first[RTS].open == 11000  # 110000 points in ticks of 10


def test_bars_are_consistent_and_chained():
    last_close: dict[str, int] = {}
    for bar in events(volatility=0.01):
        assert isinstance(bar, Bar)
        assert all(type(v) is int for v in (bar.open, bar.high, bar.low, bar.close))
        assert 1 <= bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume >= 1
        if bar.symbol in last_close:
            assert bar.open == last_close[bar.symbol]
        last_close[bar.symbol] = bar.close


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(-(2**63), 2**63),
    volatility=st.floats(0.0001, 0.5),
    price=st.decimals("0.01", "1000", places=2),
    tick=st.sampled_from(["0.01", "0.5", "1", "25"]),
)
def test_never_below_one_tick_and_always_consistent(seed, volatility, price, tick):
    inst = {"X": Instrument("X", Decimal(tick))}
    params = {"seed": seed, "bars": 300, "prices": {"X": float(price)}, "volatility": volatility}
    for bar in SyntheticFeed(params, inst).events():
        assert 1 <= bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high


def test_ticks():
    ticks = events(kind="tick", bars=5, interval="5s")
    assert len(ticks) == 10
    assert all(isinstance(t, Tick) and t.qty >= 1 and t.price >= 1 for t in ticks)
    assert ticks[0].ts == START_NS + 5 * 10**9


def test_volume_zero_means_no_volume_data():
    assert {e.volume for e in events(volume=0)} == {0}


def test_mean_volume_is_roughly_the_param():
    vols = [e.volume for e in events(bars=2000, volume=50)]
    assert 45 < sum(vols) / len(vols) < 55


def test_bars_absent_or_zero_is_endless():
    for params in ({k: v for k, v in PARAMS.items() if k != "bars"}, {**PARAMS, "bars": 0}):
        stream = SyntheticFeed(params, INSTRUMENTS).events()
        assert len(list(itertools.islice(stream, 10_000))) == 10_000


def test_price_for_a_symbol_the_robot_does_not_trade():
    with pytest.raises(ConfigError, match=r"price for 'GAZP', which is not one of the robot's"):
        events(prices={"GAZP": 150})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interval": "1 minute"}, "not an interval"),
        ({"start": "yesterday"}, "synthetic feed"),
        ({"seed": None}, "params.seed"),
    ],
)
def test_bad_params_are_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        events(**params)


def test_params_schema():
    schema = SyntheticFeed.params_schema
    assert schema["additionalProperties"] is False
    assert {"rate", "batch"} <= set(schema["properties"])
    assert all(p.get("description") for p in schema["properties"].values())
    jsonschema.validate({**PARAMS, "rate": 100, "batch": 64, "kind": "tick"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**PARAMS, "bars": -1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**PARAMS, "speed": 2}, schema)
