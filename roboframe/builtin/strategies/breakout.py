"""Channel breakout: buy above the highest high of the last N bars, sell below
the lowest low, exit on the opposite channel of M bars (a Donchian system).
"""

from __future__ import annotations

from collections import deque

from roboframe.core.strategy import Strategy


class Breakout(Strategy):
    version = "1.1"
    params_schema = {
        "type": "object",
        "properties": {
            "entry": {
                "type": "integer",
                "minimum": 2,
                "default": 20,
                "description": "bars in the entry channel",
            },
            "exit": {
                "type": "integer",
                "minimum": 1,
                "default": 10,
                "description": "bars in the exit channel",
            },
            "qty": {
                "type": "integer",
                "minimum": 1,
                "default": 1,
                "description": "position size in lots",
            },
        },
        "additionalProperties": False,
    }

    @classmethod
    def validate_params(cls, params):
        if params.get("exit", 10) > params.get("entry", 20):
            return [("exit", f"must not exceed entry ({params.get('entry', 20)})")]
        return []

    def __init__(self, params):
        super().__init__(params)
        self._take_params()
        self._highs: dict[str, deque] = {}
        self._lows: dict[str, deque] = {}
        self.breakouts = 0

    def _take_params(self) -> None:
        params = self.params
        self.entry = int(params.get("entry", 20))
        self.exit = int(params.get("exit", 10))
        self.qty = int(params.get("qty", 1))

    def on_params(self, event, ctx):
        """A new entry length keeps the last bars that fit (a longer channel
        waits for more bars); exit and qty apply from the next bar on."""
        self._take_params()
        for channels in (self._highs, self._lows):
            for symbol, bars in channels.items():
                channels[symbol] = deque(bars, maxlen=self.entry)

    def on_bar(self, bar, ctx):
        symbol = bar.symbol
        highs = self._highs.setdefault(symbol, deque(maxlen=self.entry))
        lows = self._lows.setdefault(symbol, deque(maxlen=self.entry))
        out = None
        if len(highs) == self.entry:
            pos = ctx.position(symbol)
            pending = ctx.open_orders(symbol)
            if not pending:
                out = self._decide(symbol, pos, bar.close, highs, lows, ctx)
        highs.append(bar.high)
        lows.append(bar.low)
        return out

    def _decide(self, symbol, pos, close, highs, lows, ctx):
        if pos <= 0 and close > max(highs):
            self.breakouts += 1
            return ctx.order_target(symbol, self.qty)
        if pos >= 0 and close < min(lows):
            self.breakouts += 1
            return ctx.order_target(symbol, -self.qty)
        recent_h = list(highs)[-self.exit :]
        recent_l = list(lows)[-self.exit :]
        if pos > 0 and close < min(recent_l):
            return ctx.order_target(symbol, 0)
        if pos < 0 and close > max(recent_h):
            return ctx.order_target(symbol, 0)
        return None
