"""SMA crossover: long when the fast average is above the slow one, else short.

The averages are kept as running integer sums of tick prices and compared
as ``fast_sum * slow > slow_sum * fast``, so there are no floating-point ties:
the same bars give the same signal on every machine and in every tool that
compares exact averages.
"""

from __future__ import annotations

from collections import deque

from roboframe.core.strategy import Strategy


class SmaCrossover(Strategy):
    version = "1.0"
    params_schema = {
        "type": "object",
        "properties": {
            "fast": {
                "type": "integer",
                "minimum": 1,
                "default": 10,
                "description": "bars in the fast average",
            },
            "slow": {
                "type": "integer",
                "minimum": 2,
                "default": 30,
                "description": "bars in the slow average",
            },
            "qty": {
                "type": "integer",
                "minimum": 1,
                "default": 1,
                "description": "position size in lots when in the market",
            },
            "long_only": {
                "type": "boolean",
                "default": False,
                "description": "go flat instead of short when fast < slow",
            },
        },
        "additionalProperties": False,
    }

    @classmethod
    def validate_params(cls, params):
        if params.get("fast", 10) >= params.get("slow", 30):
            return [("fast", f"must be less than slow ({params.get('slow', 30)})")]
        return []

    def __init__(self, params):
        super().__init__(params)
        self.fast = int(params.get("fast", 10))
        self.slow = int(params.get("slow", 30))
        self.qty = int(params.get("qty", 1))
        self.long_only = bool(params.get("long_only", False))
        self._windows: dict[str, deque] = {}
        self._sums: dict[str, list[int]] = {}
        self.signal: dict[str, int] = {}

    def on_bar(self, bar, ctx):
        symbol = bar.symbol
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = deque()
            self._sums[symbol] = [0, 0]
        sums = self._sums[symbol]
        close = bar.close
        window.append(close)
        sums[0] += close
        sums[1] += close
        n = len(window)
        fast, slow = self.fast, self.slow
        if n > fast:
            sums[0] -= window[n - 1 - fast]
        if n > slow:
            sums[1] -= window.popleft()
            n -= 1
        if n < slow:
            return None
        diff = sums[0] * slow - sums[1] * fast
        signal = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if signal == 0 or signal == self.signal.get(symbol):
            return None
        self.signal[symbol] = signal
        target = self.qty if signal > 0 else (0 if self.long_only else -self.qty)
        return ctx.order_target(symbol, target)
