"""A ``set`` command reaches the built-in strategies' behaviour, not only
``self.params``: new lengths, sizes and flags act from the next bar on."""

from __future__ import annotations

import random

import pytest

from roboframe.builtin.strategies.breakout import Breakout
from roboframe.builtin.strategies.sma import SmaCrossover
from roboframe.core.events import Control, NewOrder
from roboframe.testing.helpers import T0, bar, make_spec, run_events

SI = "Si-12.26"


def walk(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    prices, price = [], 92_000
    for _ in range(n):
        price += rng.randint(-40, 40)
        prices.append(price)
    return prices


def sums(strategy: SmaCrossover) -> tuple[int, int, list[int]]:
    state = strategy._state[SI]
    return state.fast_sum, state.slow_sum, list(state.window)


@pytest.mark.parametrize(("fast", "slow"), [(2, 5), (4, 9), (9, 12), (12, 30), (1, 2)])
def test_sma_lengths_set_mid_run_give_the_sums_of_a_strategy_started_with_them(fast, slow):
    closes = walk(120, seed=fast * 100 + slow)
    changed = SmaCrossover({"fast": 5, "slow": 12})
    fresh = SmaCrossover({"fast": fast, "slow": slow})
    for i, close in enumerate(closes):
        if i == 60:
            changed.params = {**changed.params, "fast": fast, "slow": slow}
            changed.on_params(Control("set", T0, {"fast": fast, "slow": slow}), None)
        for strategy in (changed, fresh):
            _averages_only(strategy, bar(SI, i, close))
        if i >= 60 and (slow <= 12 or i >= 60 + slow):
            # a longer slow average has to see more bars first
            assert sums(changed) == sums(fresh), i


def _averages_only(strategy: SmaCrossover, b) -> None:
    """on_bar without the order it may build: only the running sums matter here."""
    qty, strategy.qty = strategy.qty, 0

    class NoOrders:
        @staticmethod
        def order_target(symbol, target):
            return None

    strategy.on_bar(b, NoOrders)
    strategy.qty = qty


def sma_robot(**params):
    return make_spec(strategy={"plugin": "sma-crossover", "params": params})


def orders(outputs) -> list[tuple[str, int]]:
    return [(a.side, a.qty) for _, actions, _ in outputs for a in actions if type(a) is NewOrder]


def test_set_qty_sizes_the_next_sma_orders():
    # up, then down, then up: three crossings of fast 2 over slow 3
    closes = [100, 100, 100, 110, 120, 130, 90, 80, 70, 140, 150, 160]
    events = [bar(SI, i, c) for i, c in enumerate(closes)]
    _, plain = run_events(sma_robot(fast=2, slow=3), events)
    set_qty = Control("set", T0 + 7 * 60 * 10**9, {"qty": 3})
    _, resized = run_events(sma_robot(fast=2, slow=3), [*events[:7], set_qty, *events[7:]])
    # no fills come back here, so each order counts the ones before it as pending
    assert orders(plain) == [("buy", 1), ("sell", 2), ("buy", 2)]
    assert orders(resized) == [("buy", 1), ("sell", 2), ("buy", 4)]


def test_set_long_only_takes_the_sma_flat_instead_of_short():
    closes = [100, 100, 100, 110, 120, 130, 90, 80, 70]
    events = [bar(SI, i, c) for i, c in enumerate(closes)]
    flag = Control("set", T0 + 5 * 60 * 10**9, {"long_only": True})
    _, outputs = run_events(sma_robot(fast=2, slow=3), [*events[:5], flag, *events[5:]])
    assert orders(outputs) == [("buy", 1), ("sell", 1)]


def test_breakout_entry_set_mid_run_keeps_the_channel_a_fresh_one_would_have():
    highs = walk(80, seed=3)
    changed = Breakout({"entry": 20, "exit": 10})
    fresh = Breakout({"entry": 8, "exit": 4})

    class Flat:
        @staticmethod
        def position(symbol):
            return 0

        @staticmethod
        def open_orders(symbol):
            return [1]  # an order pending: the strategy only records the bar

    for i, high in enumerate(highs):
        if i == 40:
            changed.params = {**changed.params, "entry": 8, "exit": 4}
            changed.on_params(Control("set", T0, {"entry": 8, "exit": 4}), Flat)
            assert (changed.entry, changed.exit) == (8, 4)
        b = bar(SI, i, high, high=high, low=high - 50)
        changed.on_bar(b, Flat)
        fresh.on_bar(b, Flat)
        if i >= 40:
            assert list(changed._highs[SI]) == list(fresh._highs[SI])
            assert list(changed._lows[SI]) == list(fresh._lows[SI])
            assert changed._highs[SI].maxlen == 8


def test_set_qty_sizes_the_next_breakout_order():
    closes = [100] * 5 + [120]  # a breakout above a 5-bar channel
    spec = make_spec(strategy={"plugin": "breakout", "params": {"entry": 5, "exit": 2}})
    events = [bar(SI, i, c) for i, c in enumerate(closes)]
    set_qty = Control("set", T0 + 2 * 60 * 10**9, {"qty": 3})
    _, outputs = run_events(spec, [*events[:2], set_qty, *events[2:]])
    assert orders(outputs) == [("buy", 3)]
