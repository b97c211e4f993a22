"""Control commands in the kernel as a trader sends them: in odd orders, twice, late."""

from __future__ import annotations

import pytest

from roboframe.core.events import Control
from roboframe.core.kernel import Kernel
from roboframe.core.strategy import Strategy
from roboframe.testing.helpers import T0, bar, make_spec

SI = "Si-12.26"


class BuysEveryBar(Strategy):
    def on_bar(self, bar, ctx):
        return [ctx.buy(bar.symbol, 1)]


def started_kernel() -> Kernel:
    kernel = Kernel(make_spec(), "r1", BuysEveryBar({}))
    kernel.handle(Control("start", T0))
    return kernel


@pytest.mark.parametrize("command", ["resume", "pause", "reduce"])
def test_a_state_command_after_stop_leaves_the_robot_stopped(command):
    """A ``resume`` (or ``pause``, ``reduce``) reaching a stopping robot -- a retried
    command, one typed while the loop drains its orders -- must not take it out of
    STOPPED: that would trade again after on_stop ran, and the loop, which ends
    only while the kernel is stopped, would never end."""
    kernel = started_kernel()
    kernel.handle(Control("stop", T0, {"reason": "ctl"}))
    assert kernel.handle(Control(command, T0)) == []
    assert kernel.risk.state == "STOPPED"
    assert kernel.handle(bar(SI, 1, 100)) == []
    assert kernel.take_rejected()[0].reason == "risk: robot is stopped"


def test_a_refused_set_gives_the_hint_with_the_reason():
    """``ctl set qtty=2`` at 19:00 was refused with "unknown field 'qtty'" alone; the
    check knows the field meant ("did you mean 'qty'?") and what a field holds, and
    says so, as ``roboframe validate`` does. The params stay as they were."""
    from roboframe.builtin.strategies.sma import SmaCrossover
    from roboframe.core.streams import SetCheck

    params = {"fast": 3, "slow": 8, "qty": 1, "long_only": False}
    check = SetCheck(SmaCrossover, params)
    assert check({"qtty": 2}) == "qtty: unknown field 'qtty' (hint: did you mean 'qty'?)"
    assert check({"qty": "2"}) == (
        "qty: expected an integer, got '2' (string) "
        "(hint: position size in lots when in the market)"
    )
    assert check({"fast": 9}) == "fast: must be less than slow (8)"  # no hint to give
    assert check.params == params
