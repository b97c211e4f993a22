"""Resuming after a crash sends again what never got an answer."""

from __future__ import annotations

from roboframe.core.events import Cancel, Control, Fill, NewOrder, OrderUpdate, Replace
from roboframe.core.resume import rebuild, unanswered
from roboframe.core.robot import make_strategy
from roboframe.testing.helpers import bar, make_spec
from tests.unit.analyze.journals import SI, at, write_journal


def test_unanswered_orders_cancels_and_replaces_are_sent_again(tmp_path):
    spec = make_spec(strategy={"plugin": "tests.unit.analyze.journals:Pending", "params": {}})
    events = [
        Control("start", at(0)),
        bar(SI, 1, 100),
        lambda sent: OrderUpdate(sent[0].client_id, at(1), "accepted"),
        lambda sent: OrderUpdate(sent[1].client_id, at(1), "accepted"),
        bar(SI, 2, 100),  # cancel the first, replace the second: then the crash
    ]
    write_journal(tmp_path / "r.journal", spec, events)
    strategy, _, _ = make_strategy(spec)
    resumed = rebuild(tmp_path / "r.journal", spec, strategy)
    first, second, third = (f"test-robot-r1-{n}" for n in (1, 2, 3))
    assert resumed.unanswered == [
        # every open order (a duplicate where the gateway has it), then what waits
        NewOrder(first, SI, "buy", 1, "limit", 90),
        Cancel(first),  # journaled and maybe never sent: sent again
        NewOrder(second, SI, "buy", 1, "limit", 91),
        Replace(second, 1, 95),
        NewOrder(third, SI, "buy", 1, "limit", 92),  # never acknowledged
    ]
    # once answered, nothing is pending any more
    kernel = resumed.kernel
    kernel.handle(OrderUpdate(first, at(3), "cancelled"))
    kernel.handle(OrderUpdate(second, at(3), "replaced"))
    kernel.handle(OrderUpdate(third, at(3), "accepted"))
    assert unanswered(kernel) == [
        NewOrder(second, SI, "buy", 1, "limit", 95),
        NewOrder(third, SI, "buy", 1, "limit", 92),
    ]  # the open orders alone: nothing waits for an answer
    assert kernel.orders.orders[second].price == 95
    kernel.handle(Fill(third, at(4), SI, "buy", 1, 92, "T1"))  # gone: not sent again
    assert [a.client_id for a in unanswered(kernel)] == [second]
