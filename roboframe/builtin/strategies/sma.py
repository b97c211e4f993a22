"""SMA crossover: long when the fast average is above the slow one, else short.

The averages are kept as running integer sums of tick prices and compared
as ``fast_sum * slow > slow_sum * fast``, so there are no floating-point ties:
the same bars give the same signal on every machine and in every tool that
compares exact averages.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from roboframe.core.strategy import Strategy


class SmaCrossover(Strategy):
    version = "1.1"
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
        self._take_params()
        self.signal: dict[str, int] = {}
        self._state: dict[str, _Averages] = {}

    def _take_params(self) -> None:
        params = self.params
        self.fast = int(params.get("fast", 10))
        self.slow = int(params.get("slow", 30))
        self.qty = int(params.get("qty", 1))
        self.long_only = bool(params.get("long_only", False))

    def on_params(self, event, ctx):
        """New lengths re-sum the closes already seen (a longer slow average
        waits for more bars); a new qty or long_only applies from the next
        signal on."""
        self._take_params()
        for state in self._state.values():
            state.resize(self.fast, self.slow)

    def on_bar(self, bar, ctx):
        state = self._state.get(bar.symbol)
        if state is None:
            state = self._state[bar.symbol] = _Averages()
        close = bar.close
        window = state.window
        window.append(close)
        fast_sum = state.fast_sum + close
        slow_sum = state.slow_sum + close
        n = len(window)
        fast, slow = self.fast, self.slow
        if n > fast:
            fast_sum -= window[n - 1 - fast]
        if n > slow:
            slow_sum -= window.popleft()
            n -= 1
        state.fast_sum = fast_sum
        state.slow_sum = slow_sum
        if n < slow:
            return None
        diff = fast_sum * slow - slow_sum * fast
        signal = 1 if diff > 0 else (-1 if diff < 0 else 0)
        if signal == 0 or signal == state.signal:
            return None
        state.signal = signal
        self.signal[bar.symbol] = signal
        target = self.qty if signal > 0 else (0 if self.long_only else -self.qty)
        return ctx.order_target(bar.symbol, target)


class _Averages:
    """Running sums of one symbol's last ``fast`` and ``slow`` closes."""

    __slots__ = ("fast_sum", "signal", "slow_sum", "window")

    def __init__(self) -> None:
        self.window: deque[int] = deque()
        self.fast_sum = 0
        self.slow_sum = 0
        self.signal = 0

    def resize(self, fast: int, slow: int) -> None:
        """Keep the last ``slow`` closes; the sums over the last ``fast`` and over all."""
        window = self.window
        while len(window) > slow:
            window.popleft()
        self.slow_sum = sum(window)
        self.fast_sum = sum(islice(reversed(window), fast))
