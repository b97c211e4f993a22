"""``roboframe new``: a robot file (and a strategy module to edit) that runs as is.

The robot trades one symbol on the seeded synthetic market through the
embedded paper exchange, so ``roboframe run`` works at once with no server;
the comments say what to change for real data and a real gateway. With
``strategy="own"`` a strategy module is written beside the robot file, where
``package.module:Class`` finds it without any ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from roboframe.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ROBOT = """\
# {name}: made by `roboframe new`. It runs as is, on a seeded synthetic market
# (not real prices) through the embedded paper exchange:
#   roboframe run {robot_path}
#   roboframe backtest {robot_path}                     # on the feed below
#   roboframe backtest {robot_path} --data history.csv  # or .parquet: docs/feeds.md
name: {name}
description: "{description}"

symbols:
  {symbol}:
    tick_size: {tick_size}             # price step; prices inside are whole ticks
    lot: 1
    point_value: {point_value}                # money per point per contract{point_note}
    currency: RUB

feed:                           # real data: plugin csv or parquet (a file), zmq (a publisher)
  plugin: synthetic
  params:
    seed: 1
    bars: 2000
    interval: 1m
    prices: {{{symbol}: {price}}}
    volatility: 0.001
    rate: 1000                  # live pacing, events per second (0 = as fast as possible)

strategy:
{strategy}
gateway:                        # orders in a store: postgres, mongo, zmq (docs/gateways.md)
  plugin: paper
  params:
    commission: 1.0             # per contract per fill

risk:
  max_order_qty: 5
  max_position: 3
  max_orders_per_second: 10
  max_daily_loss: 50000         # past it the robot is HALTED (reduce-only)
  day_starts: "19:00 MSK"       # that day's start (MOEX: the evening session opens the next)

journal:
  dir: runs/{name}
  fsync: on_close
"""

OWN_STRATEGY = """\
  plugin: "{module}:{cls}"      # {module}.py beside this file
  params:
    lookback: 20
    qty: 1
"""

BUILTIN_STRATEGY = """\
  plugin: {plugin}
"""

MODULE = '''\
"""{cls}: the strategy of robot {name}. Edit on_bar; bump version when
what it does changes (the version is written into every journal)."""

from collections import deque

from roboframe import Strategy


class {cls}(Strategy):
    """Long when the close is above the highest close of the last ``lookback``
    bars, short when below the lowest: a channel breakout to start from."""

    version = "0.1"
    params_schema = {{
        "type": "object",
        "properties": {{
            "lookback": {{"type": "integer", "minimum": 2, "default": 20,
                          "description": "bars in the channel"}},
            "qty": {{"type": "integer", "minimum": 1, "default": 1,
                     "description": "position size in lots"}},
        }},
        "additionalProperties": False,
    }}

    def __init__(self, params):
        super().__init__(params)
        self.closes = {{}}  # symbol -> the last closes (state lives on the strategy)
        self.on_params(None, None)

    def on_params(self, event, ctx):
        """`roboframe ctl ... set qty=2` changed self.params: take them again."""
        self.lookback = self.params["lookback"]
        self.qty = self.params["qty"]
        self.closes = {{s: deque(c, maxlen=self.lookback) for s, c in self.closes.items()}}

    def on_bar(self, bar, ctx):
        """Prices are whole ticks (ctx.instrument(symbol).to_price(ticks) for money);
        time is ctx.time, never the clock. Return orders, or None."""
        closes = self.closes.setdefault(bar.symbol, deque(maxlen=self.lookback))
        out = None
        if len(closes) == closes.maxlen and not ctx.open_orders(bar.symbol):
            if bar.close > max(closes):
                out = ctx.order_target(bar.symbol, self.qty)
            elif bar.close < min(closes):
                out = ctx.order_target(bar.symbol, -self.qty)
        closes.append(bar.close)
        return out

    def on_order(self, update, ctx):
        """Accepted, cancelled, or rejected (by risk or the gateway): update.reason."""
        return None

    def on_fill(self, fill, ctx):
        """A fill; ctx.position(fill.symbol) already includes it."""
        return None
'''


@dataclass
class Scaffold:
    robot: Path
    module: Path | None
    needs: tuple[str, ...] = ()  # strategy params it has no value for: the trader's to set


def module_name(robot_name: str) -> str:
    """A Python module name made from a robot name: ``si-trend`` -> ``si_trend_strategy``."""
    base = re.sub(r"\W", "_", robot_name).lower()
    if base[0].isdigit():
        base = "robot_" + base
    name = f"{base}_strategy"
    return name + "_" if keyword.iskeyword(name) else name


def class_name(robot_name: str) -> str:
    """``si-trend`` -> ``SiTrend``."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", robot_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "My"
    return ("Robot" + name if name[0].isdigit() else name) + "Strategy"


CONTRACTS = {
    # MOEX futures by their code: tick size, a plausible start price for the
    # synthetic feed, point value (RUB per point per contract) and a note on it
    "SI": ("1", 92000, "1", ""),
    "EU": ("1", 98000, "1", ""),
    "RTS": ("10", 110000, "1.3", "  (~ 2 x USD/RUB / 100; the exchange sets it daily)"),
    "MIX": ("25", 290000, "1", "  (quoted as 100 x the index: a tick is 25 RUB)"),
    # a point is 1.00 USD for BR and GD: the tick is worth a hundredth / a tenth of it
    "BR": ("0.01", 74, "750", "  (10 barrels x USD/RUB: set today's)"),
    "GD": ("0.1", 2600, "75", "  (USD/RUB, an ounce: set today's)"),
}
"""What ``roboframe new --symbol`` fills in for a known contract (others: Si's,
to be edited)."""


def make_robot(
    name: str,
    folder: Path,
    *,
    strategy: str = "own",
    symbol: str = "Si-12.26",
    tick_size: str | None = None,
    price: int | None = None,
    force: bool = False,
    check: Callable[[Path], object] | None = None,
) -> Scaffold:
    """Write ``folder/<name>.yaml`` (and, for ``strategy="own"``, its module);
    ``check(robot_path)`` validates what was written, which is removed if it fails."""
    if not NAME.match(name):
        raise ConfigError(
            f"robot name {name!r}: use letters, digits, '.', '_' and '-' "
            "(it is part of every client order id and journal path)"
        )
    from roboframe.config.schema import SYMBOL_PATTERN

    if not re.match(SYMBOL_PATTERN, symbol):
        raise ConfigError(
            f"--symbol {symbol!r}: use up to 32 letters, digits and . _ : / @ -, starting "
            "with a letter or digit (Si-12.26, RTS-12.26, SBER)"
        )
    code = symbol.partition("-")[0].upper()
    known = CONTRACTS.get(code, CONTRACTS["SI"])
    tick_size = tick_size or known[0]
    price = price or known[1]
    point_value, point_note = known[2], known[3]
    if code not in CONTRACTS:  # Si's figures, silently, for RIZ6 or SBER: PnL off
        point_note = (
            f"  (Si's tick, point value and price: {symbol} is no contract "
            f"`roboframe new` knows ({', '.join(CONTRACTS)}); set its own)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    robot_path = folder / f"{name}.yaml"
    module_path = None
    needs: tuple[str, ...] = ()
    if strategy == "own":
        module, cls = module_name(name), class_name(name)
        module_path = folder / f"{module}.py"
        block = OWN_STRATEGY.format(module=module, cls=cls)
    else:
        block, needs = _registered_strategy(strategy)
    for path in (robot_path, module_path):
        if path is not None and path.exists() and not force:
            raise ConfigError(f"{path} exists; pass --force to overwrite it")
    text = ROBOT.format(
        name=name,
        description=f"{name}: a new robot (edit me)",
        robot_path=robot_path.as_posix(),
        symbol=symbol,
        tick_size=tick_size,
        price=price,
        point_value=point_value,
        point_note=point_note,
        strategy=block,
    )
    written = []
    try:
        if module_path is not None:
            module_path.write_text(MODULE.format(cls=cls, name=name))
            written.append(module_path)
        robot_path.write_text(text)
        written.append(robot_path)
        if check is not None and not needs:  # with params to fill in, it cannot pass yet
            check(robot_path)
    except BaseException:
        for path in written:  # nothing half made is left behind
            path.unlink(missing_ok=True)
        raise
    return Scaffold(robot_path, module_path, needs)


def _registered_strategy(plugin: str) -> tuple[str, tuple[str, ...]]:
    """The strategy section of a registered strategy, its params written out with
    their defaults and descriptions (the file shows what can be set); and the
    required params without a default, left for the trader (``null`` until set)."""
    from roboframe.errors import PluginError
    from roboframe.plugins import get_registry

    if ":" in plugin:  # package.module:Class: the validation that follows imports it
        return BUILTIN_STRATEGY.format(plugin=plugin), ()
    try:
        cls = get_registry().lookup("strategies", plugin).obj
    except PluginError as exc:
        raise ConfigError(f"--strategy: {exc}") from None
    schema = getattr(cls, "params_schema", None) or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    lines, needs = [], []
    for key, prop in props.items():
        about = str(prop.get("description", "")).replace("\n", " ")
        if "default" in prop:
            value = json.dumps(prop["default"], default=str)
            lines.append(f"    {key}: {value}" + (f"  # {about}" if about else ""))
        elif key in required:
            needs.append(key)
            lines.append(f"    {key}: null  # SET ME (required): {about}".rstrip(": "))
    block = BUILTIN_STRATEGY.format(plugin=plugin)
    if lines:
        block += "  params:\n" + "\n".join(lines) + "\n"
    return block, tuple(needs)
