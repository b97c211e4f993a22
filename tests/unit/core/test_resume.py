"""Resuming after a crash sends again what never got an answer."""

from __future__ import annotations

import pytest

from roboframe.core.events import Cancel, Control, Fill, NewOrder, OrderUpdate, Replace
from roboframe.core.resume import RunFinished, latest_unfinished, rebuild, unanswered
from roboframe.core.robot import journal_header, make_strategy
from roboframe.errors import ConfigError
from roboframe.journal import JournalWriter
from roboframe.testing.helpers import bar, make_spec
from tests.unit.analyze.journals import (
    SI,
    Scripted,
    at,
    scripted_events,
    scripted_spec,
    write_journal,
)


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


class ScriptedChanged(Scripted):
    """The same robot after its strategy code changed: buys 3, not 2, on the first bar."""

    def on_bar(self, bar, ctx):
        if self.bars == 0:
            self.bars = 1
            return [ctx.buy(bar.symbol, 3)]
        return super().on_bar(bar, ctx)


def test_resume_refuses_a_strategy_that_now_acts_differently(tmp_path):
    """Rebuilt with changed code, the robot would believe in orders it never sent
    (and send them again under ids the store holds for others): refused instead."""
    spec = scripted_spec()
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=False)[:5])
    with pytest.raises(ConfigError) as err:
        rebuild(tmp_path / "r.journal", spec, ScriptedChanged({}))
    text = str(err.value)
    assert "the strategy now acts differently from the run it would resume" in text
    assert "seq 2" in text and "journaled: actions" in text
    assert "move r.journal out of" in text


def test_resume_with_the_same_strategy_still_rebuilds(tmp_path):
    spec = scripted_spec()
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=False)[:5])
    resumed = rebuild(tmp_path / "r.journal", spec, Scripted({}))
    assert resumed.last_seq == 5
    assert resumed.kernel.book.positions[SI].qty == 2
    assert [o.qty for o in resumed.unanswered] == [1]  # the offer of bar 2, still open


def test_a_stopped_run_of_a_changed_strategy_is_finished_not_refused(tmp_path):
    spec = scripted_spec()
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=True))
    with pytest.raises(RunFinished):
        rebuild(tmp_path / "r.journal", spec, ScriptedChanged({}))


def test_the_latest_run_is_the_last_started_when_runs_share_a_second(tmp_path):
    """Run ids of one second are ``T``, ``T.2``, ``T.3`` ...: by name ``T.journal``
    sorts after them and ``T.10`` before ``T.9``, which resumed an older run."""
    for name in ("20261118T100000Z", "20261118T100000Z.2", "20261118T095959Z.3"):
        (tmp_path / f"{name}.journal").touch()
    assert latest_unfinished(tmp_path, ".journal").name == "20261118T100000Z.2.journal"
    for n in range(3, 11):
        (tmp_path / f"20261118T100000Z.{n}.journal").touch()
    (tmp_path / "bt-20261118T100001Z.journal").touch()  # a backtest: never resumed
    assert latest_unfinished(tmp_path, ".journal").name == "20261118T100000Z.10.journal"


def test_a_run_that_never_started_is_not_resumed_after_its_file_changed(tmp_path):
    """A run that failed before its first event (its gateway or control endpoint
    would not open, say) left a journal with a header alone. The trader fixes the
    robot file; nothing of that run can be lost, so a new run starts, where
    refusing would leave the robot down until the journal is moved by hand."""
    spec = scripted_spec()
    _, cls, _ = make_strategy(spec)
    with JournalWriter(tmp_path / "r.journal", journal_header(spec, "r1", cls, "live")):
        pass
    fixed = scripted_spec(risk={"max_order_qty": 5})
    assert fixed.config_hash != spec.config_hash
    with pytest.raises(RunFinished, match="never started"):
        rebuild(tmp_path / "r.journal", fixed, Scripted({}))


def test_a_run_with_events_is_still_refused_after_its_file_changed(tmp_path):
    spec = scripted_spec()
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=False)[:2])
    fixed = scripted_spec(risk={"max_order_qty": 5})
    with pytest.raises(ConfigError, match="the robot file changed since that run started"):
        rebuild(tmp_path / "r.journal", fixed, Scripted({}))


def test_a_run_resumes_under_a_file_whose_feed_alone_changed(tmp_path, caplog):
    """A feed that broke the run (a publisher moved, a bad file) is put right in the
    robot file: that run was refused as "changed", and the trader had to choose
    between the broken feed and a new, flat run beside the old one's position. The
    kernel never sees the feed: the run resumes, and says what changed."""
    spec = scripted_spec(feed={"plugin": "csv", "params": {"path": "bars.csv"}})
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=False)[:2])
    moved = scripted_spec(feed={"plugin": "csv", "params": {"path": "fixed.csv"}})
    assert moved.config_hash != spec.config_hash
    with caplog.at_level("WARNING", logger="roboframe.core.resume"):
        resumed = rebuild(tmp_path / "r.journal", moved, Scripted({}))
    assert resumed.last_seq == 2
    (said,) = [r.getMessage() for r in caplog.records]
    assert "resumed under a changed market-data feed" in said
    assert 'feed.params.path: "bars.csv" -> "fixed.csv"' in said
    also_risk = scripted_spec(
        feed={"plugin": "csv", "params": {"path": "fixed.csv"}}, risk={"max_order_qty": 5}
    )
    with pytest.raises(ConfigError, match="changed since that run started") as refused:
        rebuild(tmp_path / "r.journal", also_risk, Scripted({}))
    first = str(refused.value).splitlines()[1]
    assert first.startswith("  risk.max_order_qty:")  # what refuses it, named first
    assert "a change of its feed alone can" in str(refused.value)


@pytest.mark.parametrize("said", [True, False])
def test_a_resumed_run_keeps_the_time_rule_its_journal_began_with(tmp_path, said):
    """A run whose journal began before robot time followed receipt times (no
    `clock: receipt` in its header) goes on without it when resumed: its replays
    apply one rule to the whole journal, or the part after the resume diverges.
    (The loop takes the rule from what rebuild says.)"""
    from roboframe.core import codec

    spec = make_spec()
    _, cls, _ = make_strategy(spec)
    header = journal_header(spec, "r1", cls, "live")
    if said:
        header["clock"] = "receipt"
    path = tmp_path / "r1.journal"
    with JournalWriter(path, header) as writer:
        received = 1_900_000_000_000_000_000  # days after the bar: a replayed file
        writer.append_message(1, received, codec.encode(Control("start", 1)))
        writer.append_message(2, received, codec.encode(bar("Si-12.26", 1, 92000)))
    resumed = rebuild(path, spec, make_strategy(spec)[0])
    assert resumed.receipt_clock is said
    assert (resumed.kernel.now == received) is said  # the receipt time moved it, or not


@pytest.mark.parametrize("key", ["tz", "time_is"])
def test_a_feed_change_that_moves_its_datas_times_is_not_resumed(tmp_path, key):
    """A resumed run takes market data after its last journaled time: a data file
    read in another time zone (or its bars taken as opens) gave the run's first
    bars again, three hours later, and the strategy traded them twice."""
    spec = scripted_spec(feed={"plugin": "csv", "params": {"path": "bars.csv"}})
    write_journal(tmp_path / "r.journal", spec, scripted_events(stop=False)[:2])
    value = {"tz": "MSK", "time_is": "open"}[key]
    params = {"path": "bars.csv", key: value, "interval": "1m"}
    moved = scripted_spec(feed={"plugin": "csv", "params": params})
    with pytest.raises(ConfigError, match="which move its data's times") as refused:
        rebuild(tmp_path / "r.journal", moved, Scripted({}))
    assert f"feed.params.{key}:" in str(refused.value)
