"""Replaying journals that are not what this roboframe can rebuild a robot from."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from roboframe import replay as rp
from roboframe.cli import main
from roboframe.core import codec
from roboframe.core.events import Cancel, Control
from roboframe.core.robot import journal_header, make_strategy
from roboframe.core.strategy import Strategy
from roboframe.errors import JournalError
from roboframe.journal import JournalWriter
from tests.unit.analyze.journals import scripted_spec

NOT_AN_EVENT = b"\x93\xa7control"  # msgpack, but no event of this codec


def robot_journal(path, *payloads, **header_over):
    spec = scripted_spec()
    _, cls, _ = make_strategy(spec)
    header = {**journal_header(spec, "r1", cls, "live"), **header_over}
    with JournalWriter(path, header) as writer:
        for seq, payload in enumerate(payloads, start=1):
            writer.append_message(seq, 0, payload)
    return path


def replay_cli(*args):
    return CliRunner().invoke(main, ["replay", *map(str, args)])


@pytest.mark.parametrize("args", [["--verify"], ["--until", "3"], []])
def test_a_journal_without_a_robot_is_refused_in_words(tmp_path, args):
    with JournalWriter(tmp_path / "x.journal", {"robot": "x"}) as writer:
        writer.append_message(1, 0, b"\x01")
    result = replay_cli(tmp_path / "x.journal", *args)
    assert result.exit_code == 1
    assert "has no robot config in its header" in result.output
    assert not isinstance(result.exception, KeyError)


def test_a_message_this_codec_cannot_read_is_refused_with_its_place(tmp_path):
    good = codec.encode(Control("start", 1))
    path = robot_journal(tmp_path / "r.journal", good, NOT_AN_EVENT)
    with pytest.raises(JournalError, match=r"message at byte \d+ \(seq 2\) is not an event"):
        rp.verify(path)
    result = replay_cli(path, "--verify")
    assert result.exit_code == 1 and "seq 2" in result.output


def test_events_of_a_newer_codec_are_refused_before_replaying(tmp_path):
    path = robot_journal(tmp_path / "r.journal", codec={"name": codec.CODEC, "version": 2})
    with pytest.raises(JournalError, match=r"codec msgpack-msgspec version 2.*upgrade roboframe"):
        rp.verify(path)


def test_analyze_names_a_journal_it_cannot_replay_instead_of_a_traceback(tmp_path):
    with JournalWriter(tmp_path / "x.journal", {"robot": "x"}) as writer:
        writer.append_message(1, 0, b"\x01")
    robot_journal(tmp_path / "r.journal", codec.encode(Control("start", 1)), NOT_AN_EVENT)
    result = CliRunner().invoke(
        main, ["analyze", str(tmp_path / "*.journal"), "--db", str(tmp_path / "a.db")]
    )
    assert result.exit_code == 1 and not isinstance(result.exception, KeyError), result.output
    assert "x.journal: journal" in result.output and "no robot config" in result.output
    assert "(seq 2) is not an event" in result.output


def test_a_divergence_names_its_event_when_the_replay_produced_nothing():
    """The journal says the event made the robot act; the replay did nothing: the
    divergence still shows that event (it said ``event None``)."""
    from types import SimpleNamespace

    from roboframe.core.events import Bar, NewOrder

    check = rp.OutputCheck()
    bar = Bar("Si-12.26", 5, 100, 100, 100, 100)
    assert check.message(0) is None
    check.produced(7, bar, ([], []))
    journaled = codec.encode_outputs([NewOrder("r-1", "Si-12.26", "buy", 1)], [])
    divergence = check.journaled(SimpleNamespace(seq=7, payload=journaled))
    assert divergence is not None and divergence.event == bar
    assert f"seq 7: event {bar!r}" in str(divergence)


def test_until_takes_a_sequence_number_and_not_with_verify(tmp_path):
    path = robot_journal(tmp_path / "j.journal", codec.encode(Control("start", 1)))
    negative = replay_cli(str(path), "--until", "-1")
    assert negative.exit_code == 2 and "-1 is not in the range x>=0" in negative.output
    both = replay_cli(str(path), "--until", "1", "--verify")
    assert both.exit_code == 2 and "--verify and --until: one at a time" in both.output


class CancelsTwice(Strategy):
    """Buys at a limit on the first bar, cancels it twice on the second."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.order = None

    def on_bar(self, bar, ctx):
        if self.order is None:
            self.order = ctx.buy(bar.symbol, 1, price=bar.close - 50)
            return [self.order]
        return [ctx.cancel(self.order), ctx.cancel(self.order)]


def test_a_journal_from_before_cancel_rejected_still_verifies(tmp_path):
    """The kernel's own refusal of a cancel ("cancel already pending") was journaled
    as `rejected` before `cancel_rejected` existed: such a journal must still
    verify (and resume: a run with orders working at the exchange), and any other
    difference is still a divergence."""
    from roboframe.core.events import OrderUpdate
    from roboframe.core.kernel import Kernel
    from roboframe.testing.helpers import bar, make_spec

    spec = make_spec(strategy={"plugin": "tests.unit.test_replay:CancelsTwice", "params": {}})

    def journal(path, reason_then: str) -> None:
        strategy, cls, _ = make_strategy(spec)
        kernel = Kernel(spec, "r1", strategy)
        events = [Control("start", 1), bar("Si-12.26", 1, 92000), bar("Si-12.26", 2, 92000)]
        with JournalWriter(path, journal_header(spec, "r1", cls, "live")) as writer:
            for seq, event in enumerate(events, start=1):
                writer.append_message(seq, event.ts, codec.encode(event))
                actions, rejected = list(kernel.handle(event)), kernel.take_rejected()
                then = [OrderUpdate(u.client_id, u.ts, "rejected", reason_then) for u in rejected]
                if actions or then:
                    writer.append_actions(seq, codec.encode_outputs(actions, then))

    journal(tmp_path / "old.journal", "risk: cancel already pending")
    assert rp.verify(tmp_path / "old.journal").ok
    journal(tmp_path / "other.journal", "risk: something else")
    assert not rp.verify(tmp_path / "other.journal").ok


class BuysEachBar(Strategy):
    def on_bar(self, bar, ctx):
        return [ctx.buy(bar.symbol, 1)]


@pytest.mark.parametrize("rule", ["old", "new"])
def test_a_journal_replays_by_the_daily_loss_rule_its_run_had(tmp_path, rule):
    """The daily loss now counts the gap at a day's open; runs journaled before
    started each day at its first price. Replayed by the new rule, such a run
    halts where it did not (its order at the open is refused): it would not
    verify, nor resume. Each journal says its rule, and is replayed by it."""
    from roboframe.core.events import Fill, OrderUpdate
    from roboframe.testing.helpers import bar, make_spec
    from tests.unit.analyze.journals import write_journal

    spec = make_spec(
        strategy={"plugin": "tests.unit.test_replay:BuysEachBar", "params": {}},
        risk={"max_daily_loss": 50},
    )
    first = bar("Si-12.26", 1, 100)
    events = [
        Control("start", first.ts),
        first,  # buys
        lambda sent: OrderUpdate(sent[0].client_id, first.ts, "accepted"),
        lambda sent: Fill(sent[0].client_id, first.ts, "Si-12.26", "buy", 1, 100, "T1"),
        bar("Si-12.26", 24 * 60, 40),  # the next day opens 60 lower: buys again, or not
    ]
    path = tmp_path / "run.journal"
    out = write_journal(path, spec, events, without=("loss_from",) if rule == "old" else ())
    assert len(out[-1][2]) == (0 if rule == "new" else 1)
    assert rp.verify(path).ok
    kernel, _, _ = rp.state_at(path, len(events))
    assert kernel.risk.state == ("HALTED" if rule == "new" else "ACTIVE")


class ExtraAtTheEnd(Strategy):
    """Trades on its 2nd and 4th bars; with ``extra`` set (a strategy changed
    since, or one reading the clock), also on its 8th: after the journal's last
    actions."""

    extra = False
    on_stop_too = False  # the extra order at the stop instead

    def __init__(self, params) -> None:
        super().__init__(params)
        self.n = 0

    def on_stop(self, event, ctx):
        if ExtraAtTheEnd.extra and ExtraAtTheEnd.on_stop_too:
            return [ctx.buy("Si-12.26", 1)]
        return None

    def on_bar(self, bar, ctx):
        self.n += 1
        if self.n == 2:
            return [ctx.buy(bar.symbol, 1)]
        if self.n == 4 or (ExtraAtTheEnd.extra and not ExtraAtTheEnd.on_stop_too and self.n == 8):
            return [ctx.sell(bar.symbol, 1)]
        return None


def test_an_order_the_replay_makes_after_the_journals_last_actions_is_a_divergence(
    tmp_path, monkeypatch
):
    """A backtest journal holds every event between two actions in one message
    record: an order the replay made there was taken for actions a crash cut off
    ("the journal ends before the actions of its last events"), and verify said
    ok. A run that ended cleanly says so in its journal; only one that did not
    may end before its last actions."""
    from decimal import Decimal

    from roboframe.backtest.engine import Backtest
    from roboframe.testing.helpers import bar, make_spec

    spec = make_spec(
        strategy={"plugin": "tests.unit.test_replay:ExtraAtTheEnd", "params": {}},
        journal={"dir": str(tmp_path)},
    )
    bars = [bar("Si-12.26", m, 92_000) for m in range(1, 11)]
    result = Backtest(spec, iter(bars), cash=Decimal(10**6), journal_dir=tmp_path).run()
    assert rp.verify(result.journal).ok
    monkeypatch.setattr(ExtraAtTheEnd, "extra", True)
    replayed = rp.verify(result.journal)
    assert not replayed.ok
    assert type(replayed.divergence.event).__name__ == "Bar"
    assert replayed.divergence.event.ts == bars[7].ts  # the 8th bar


@pytest.mark.parametrize("rule", ["old", "new"])
def test_a_journal_replays_its_flattens_by_the_rule_its_run_had(tmp_path, rule):
    """A flatten now leaves the robot paused; a run journaled before went on
    trading after it. Each journal says its rule, and is replayed by it."""
    from roboframe.testing.helpers import bar, make_spec
    from tests.unit.analyze.journals import write_journal

    spec = make_spec(strategy={"plugin": "tests.unit.test_replay:BuysEachBar", "params": {}})
    events = [Control("start", 1), Control("flatten", 2), bar("Si-12.26", 1, 100)]
    path = tmp_path / "run.journal"
    out = write_journal(path, spec, events, without=("flatten",) if rule == "old" else ())
    assert len(out[-1][2]) == (0 if rule == "new" else 1)  # the bar's buy, after the flatten
    assert rp.verify(path).ok
    kernel, _, _ = rp.state_at(path, len(events))
    assert kernel.risk.state == ("PAUSED" if rule == "new" else "ACTIVE")


def test_a_replay_holds_back_the_runs_own_warnings(tmp_path, caplog):
    """Every outage of the order path journals a down and an up: a replay (verify,
    --until, analyze, a resume's rebuild) said each again, at its own time, by
    the hundred. The run said them when it ran."""
    import logging

    from roboframe.core.kernel import Kernel
    from roboframe.testing.helpers import make_spec

    spec = make_spec()
    strategy, cls, _ = make_strategy(spec)
    kernel = Kernel(spec, "r1", strategy)
    path = tmp_path / "run.journal"
    events = [Control("start", 1)]
    for n in range(50):
        events += [
            Control("gateway", 2 + n, {"status": "down", "reason": "store gone"}),
            Control("gateway", 2 + n, {"status": "up"}),
        ]
    with JournalWriter(path, journal_header(spec, "r1", cls, "live")) as writer:
        for seq, event in enumerate(events, start=1):
            writer.append_message(seq, event.ts, codec.encode(event))
            kernel.handle(event)
    kernel_log = logging.getLogger("roboframe.core.kernel")
    before = kernel_log.level
    caplog.clear()  # what the run itself said
    with caplog.at_level("WARNING"):
        assert rp.verify(path).ok
        rp.state_at(path, 50)
    assert "order path" not in caplog.text
    assert kernel_log.level == before  # and only while replaying


@pytest.mark.parametrize("rule", ["old", "new"])
def test_a_journal_replays_its_reduce_commands_by_the_rule_its_run_had(tmp_path, rule):
    """A reduce now cancels the orders that would add to a position; a run
    journaled before left them working. Each journal is replayed by its rule."""
    from roboframe.testing.helpers import bar, make_spec
    from tests.unit.analyze.journals import write_journal

    spec = make_spec(strategy={"plugin": "tests.unit.test_replay:BuysEachBar", "params": {}})
    events = [Control("start", 1), bar("Si-12.26", 1, 100), Control("reduce", 2)]
    path = tmp_path / "run.journal"
    out = write_journal(path, spec, events, without=("reduce",) if rule == "old" else ())
    (buy,) = out[1][2]
    assert out[-1][2] == ([Cancel(buy.client_id)] if rule == "new" else [])
    assert rp.verify(path).ok


def test_every_rule_a_header_names_is_followed_and_a_header_without_it_is_not():
    """A rule added to RULES must change what follow_rules sets, both ways."""
    from roboframe.core.kernel import Kernel
    from roboframe.journal.format import RULES
    from roboframe.testing.helpers import make_spec

    spec = make_spec()

    def rules_of(header):
        strategy, _, _ = make_strategy(spec)
        k = rp.follow_rules(Kernel(spec, "r1", strategy), header)
        return (k.risk.from_day_before, k.flatten_pauses, k.reduce_cancels,
                k.timers_turn_day, k.risk.exact_rate, k.risk.by_trading_days,
                k.risk.band_needs_price, k.quiet_after_stop,
                k.risk.flatten_passes_checks, k.fills_checked,
                k.risk.stop_is_final, k.fees_checked,
                k.orders.replace_waits, k.cancels_again,
                k.orders.rejected_removes)  # fmt: skip

    assert rules_of(dict(RULES)) == (True,) * len(RULES)
    assert rules_of({}) == (False,) * len(RULES)
    for rule in RULES:  # each key moves its own rule
        without = {k: v for k, v in RULES.items() if k != rule}
        assert rules_of(without).count(False) == 1, rule
