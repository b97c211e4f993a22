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
    assert kernel._process([kernel.ctx.buy(SI, 1)], 0) == []
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


def test_a_set_of_nothing_is_refused():
    """``ctl FILE set`` with no key=value was accepted, journaled, and called the
    strategy's on_params for nothing."""
    from roboframe.builtin.strategies.sma import SmaCrossover
    from roboframe.core.streams import SetCheck

    check = SetCheck(SmaCrossover, {"fast": 3, "slow": 8})
    assert check({}) == "set needs at least one param: set key=value [key=value ...]"


class Levels(Strategy):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "qty": {"type": "integer"},
            "levels": {
                "type": "object",
                "additionalProperties": False,
                "required": ["stop", "take"],
                "properties": {"stop": {"type": "integer"}, "take": {"type": "integer"}},
            },
        },
    }


def test_set_of_a_nested_param_changes_that_one_value():
    """``ctl set levels.stop=25`` changes the stop and keeps the take: the control
    check and the kernel merge it the same way. A whole ``levels={...}`` used to be
    the only way, and one that forgot ``take`` was refused or lost it."""
    from roboframe.control import parse_assignments
    from roboframe.core.streams import SetCheck

    args = parse_assignments(["levels.stop=25", "qty=2"])
    assert args == {"levels": {"stop": 25}, "qty": 2}
    params = {"qty": 1, "levels": {"stop": 20, "take": 40}}
    check = SetCheck(Levels, params)
    assert check(args) is None
    kernel = Kernel(make_spec(), "r1", Levels(params))
    kernel.handle(Control("start", T0))
    kernel.handle(Control("set", T0, args))
    assert kernel.strategy.params == check.params == {"qty": 2, "levels": {"stop": 25, "take": 40}}
    assert params == {"qty": 1, "levels": {"stop": 20, "take": 40}}  # merged into copies
    assert check(parse_assignments(["levels.stopp=1"])).startswith("levels.stopp: unknown field")


@pytest.mark.parametrize(
    "items",
    [["levels.=1"], [".stop=1"], ["levels=1", "levels.stop=2"], ["levels.stop=2", "levels=1"]],
)
def test_a_nested_set_that_makes_no_sense_is_refused_by_ctl(items):
    from roboframe.control import parse_assignments
    from roboframe.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_assignments(items)
