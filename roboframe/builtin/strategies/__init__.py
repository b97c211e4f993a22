"""Built-in strategies, registered like any plugin's."""

from __future__ import annotations

from roboframe.builtin.strategies.breakout import Breakout
from roboframe.builtin.strategies.sma import SmaCrossover
from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_strategies(register):
    register("sma-crossover", SmaCrossover)
    register("breakout", Breakout)
