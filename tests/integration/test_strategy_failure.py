"""A run the strategy stopped by raising: exit 3, then replay, analyze and
resume know where it stopped, and a fixed strategy goes on from that event."""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys

import pytest

from roboframe import replay as rp
from roboframe.core.events import Bar
from roboframe.journal import JournalReader

from .conftest import roboframe_cmd

FAILING = """\
from roboframe import Strategy


class Flaky(Strategy):
    version = "1.0"

    def __init__(self, params):
        super().__init__(params)
        self.bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == {fails_at}:
            raise ValueError("no price feed for the hedge leg")
        if self.bars % 10 == 0:
            return ctx.order_target(bar.symbol, 1 if ctx.position(bar.symbol) <= 0 else -1)
"""

ROBOT = """\
name: flaky
symbols:
  Si-12.26: {tick_size: 1}
feed:
  plugin: synthetic
  params: {seed: 5, bars: 300, interval: 1m, prices: {Si-12.26: 92000}, rate: 0}
strategy:
  plugin: flaky:Flaky
gateway:
  plugin: paper
"""

BARS, FAILS_AT = 300, 150


def isolate_imports(monkeypatch, name: str = "flaky") -> None:
    """Replays in this process import the strategy module ``name`` from the folder
    of the robot file and put that folder on sys.path: undone after the test, so
    no other test imports this one's module."""
    monkeypatch.setattr(sys, "path", [*sys.path])
    monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, name)


def fix(module) -> None:
    """The strategy fixed (a different size from the failing text: no stale bytecode)."""
    module.write_text(FAILING.format(fails_at=-1) + "\n# fixed\n")


@pytest.fixture
def robot(tmp_path, monkeypatch):
    """A robot whose strategy raises on its 150th bar."""
    monkeypatch.chdir(tmp_path)
    isolate_imports(monkeypatch)
    (tmp_path / "flaky.py").write_text(FAILING.format(fails_at=FAILS_AT))
    (tmp_path / "flaky.yaml").write_text(ROBOT)
    return tmp_path / "flaky.yaml"


@pytest.fixture
def failed(robot, tmp_path):
    """A real run of that robot."""
    out = roboframe_cmd("-q", "run", "flaky.yaml", cwd=tmp_path)
    (journal,) = (tmp_path / "runs" / "flaky").glob("*.journal")
    return out, journal


def fresh_verify(journal):
    sys.modules.pop("flaky", None)  # the strategy file may have changed since the last import
    return rp.verify(journal)


def nth_bar_seq(journal, n: int) -> int:
    bars = [s for s, e, _r in rp.iter_events(JournalReader(journal)) if type(e) is Bar]
    return bars[n - 1]


def test_the_run_exits_3_naming_the_error_and_the_event_it_raised_on(failed):
    out, journal = failed
    seq = nth_bar_seq(journal, FAILS_AT)
    assert out.returncode == 3, out.stderr
    assert "no price feed for the hedge leg" in out.stdout
    assert f"(event seq {seq})" in out.stdout  # the event's own, not its batch's last
    assert f"(event seq {seq})" in out.stderr  # the log line
    assert "Traceback" not in out.stderr


def test_replay_verifies_the_run_up_to_its_error_and_says_where_it_stopped(failed):
    _, journal = failed
    seq = nth_bar_seq(journal, FAILS_AT)
    result = fresh_verify(journal)
    assert result.ok and result.failure is not None
    assert result.failure.seq == seq and result.events == seq - 1
    out = roboframe_cmd("replay", str(journal), "--verify")  # from another folder
    assert out.returncode == 0, out.stderr
    assert f"stopped on a strategy error at seq {seq}" in out.stderr
    shown = roboframe_cmd("replay", str(journal), "--until", str(seq + 50))
    assert shown.returncode == 0, shown.stderr
    assert f"after seq {seq - 1}" in shown.stdout and "where it stopped" in shown.stderr
    before = roboframe_cmd("replay", str(journal), "--until", str(seq - 1))
    assert before.returncode == 0 and "strategy error" not in before.stderr


def test_resuming_with_the_same_strategy_says_it_still_fails_and_changes_nothing(failed):
    _, journal = failed
    size = journal.stat().st_size
    out = roboframe_cmd("-q", "run", "flaky.yaml", "--resume", cwd=journal.parents[2])
    assert out.returncode == 3
    seq = nth_bar_seq(journal, FAILS_AT)
    assert f"stopped on a strategy error at seq {seq}, and the strategy still raises" in out.stderr
    assert "hint: fix the strategy" in out.stderr and "Traceback" not in out.stderr
    assert journal.stat().st_size == size


def test_a_fixed_strategy_resumes_from_the_event_it_raised_on(failed):
    _, journal = failed
    fix(journal.parents[2] / "flaky.py")
    out = roboframe_cmd("-q", "run", "flaky.yaml", "--resume", cwd=journal.parents[2])
    assert out.returncode == 0, out.stderr
    assert list(journal.parent.glob("*.journal")) == [journal]  # the same run went on
    result = fresh_verify(journal)
    assert result.ok and result.failure is None, str(result.divergence)
    assert result.kernel.strategy.bars == BARS  # the one it raised on, and those after it
    bars = [e.ts for _s, e, _r in rp.iter_events(JournalReader(journal)) if type(e) is Bar]
    assert len(bars) == BARS and all(b > a for a, b in itertools.pairwise(bars))
    # with the failing code back, the journal now goes on past its error: a divergence
    (journal.parents[2] / "flaky.py").write_text(FAILING.format(fails_at=FAILS_AT))
    again = fresh_verify(journal)
    assert not again.ok and again.divergence.seq == nth_bar_seq(journal, FAILS_AT)
    assert "the strategy raised: " in str(again.divergence)


def test_analyze_reads_the_run_up_to_its_error(failed, tmp_path):
    _, journal = failed
    seq = nth_bar_seq(journal, FAILS_AT)
    out = roboframe_cmd("analyze", str(journal), "--db", "a.db", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "(live, strategy error)" in out.stdout
    assert f"stopped on a strategy error at seq {seq}" in out.stderr
    with sqlite3.connect(tmp_path / "a.db") as db:
        row = db.execute("SELECT last_seq, events, complete, verified FROM runs").fetchone()
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert row == (seq, seq, 0, 1) and events == seq


def test_a_backtest_journal_ends_at_the_strategy_error_too(robot, tmp_path):
    out = roboframe_cmd("backtest", "flaky.yaml", cwd=tmp_path)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    (journal,) = (tmp_path / "runs" / "flaky").glob("bt-*.journal")
    seq = nth_bar_seq(journal, FAILS_AT)
    assert "no price feed for the hedge leg" in out.stderr
    assert f"(event seq {seq}; the journal ends there: " in out.stderr
    result = fresh_verify(journal)
    assert result.ok and result.failure is not None and result.failure.seq == seq
    assert result.compared > 0  # it traded before the error, and that is in the journal


@pytest.mark.parametrize("how", ["run", "backtest"])
def test_a_changed_strategy_that_no_longer_raises_does_not_verify_the_run_it_stopped(
    robot, tmp_path, how
):
    """The journal says where the strategy raised and stopped the run (a NOTE);
    a strategy changed since -- here in a helper module, which the strategy's
    source hash does not cover -- that does not raise there is a divergence,
    not an ok that ends early."""
    (tmp_path / "flaky_helper.py").write_text(
        "def check(n):\n    if n == 150:\n        raise ValueError('no hedge')\n"
    )
    module = robot.parent / "flaky.py"
    module.write_text(
        module.read_text()
        .replace(
            "        if self.bars == ",
            "        __import__('flaky_helper').check(self.bars)\n        if self.bars == ",
        )
        .replace("if self.bars == 150:", "if self.bars == -1:")
    )
    out = roboframe_cmd("-q", how, "flaky.yaml", cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "ValueError: no hedge (flaky_helper.py:3 in check)" in out.stdout + out.stderr
    (journal,) = (tmp_path / "runs" / "flaky").glob("*.journal")
    seq = nth_bar_seq(journal, FAILS_AT)
    assert roboframe_cmd("replay", str(journal), "--verify").returncode == 0  # as it was
    (tmp_path / "flaky_helper.py").write_text("def check(n):\n    return None\n")
    sys.modules.pop("flaky_helper", None)
    out = roboframe_cmd("replay", str(journal), "--verify", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"divergence at seq {seq}: event Bar(" in out.stderr
    assert "journaled: the strategy raised: " in out.stderr
    assert "no hedge (flaky_helper.py:3 in check)" in out.stderr
    assert "(the run stopped there)" in out.stderr
    if how == "backtest":  # live, the last tenth-bar order may still be open there
        assert "replayed:  actions [NewOrder(" in out.stderr  # bar 150: a tenth-bar order
    out = roboframe_cmd("analyze", str(journal), "--db", "a.db", cwd=tmp_path)
    with sqlite3.connect(tmp_path / "a.db") as db:
        assert db.execute("SELECT verified FROM runs").fetchone() == (0,), out.stderr


def test_a_strategy_that_raises_on_start_stops_the_run_as_any_error_does(tmp_path, monkeypatch):
    """on_start ran outside the loop's guard: its error went up past the run, with
    no summary and no note in the journal, so a fixed strategy verified as ok."""
    from roboframe.journal.format import NOTE, STRATEGY_ERROR, decode_note

    monkeypatch.chdir(tmp_path)
    isolate_imports(monkeypatch, "startup")
    (tmp_path / "startup.py").write_text(
        "from roboframe import Strategy\n\nclass Startup(Strategy):\n"
        "    def on_start(self, event, ctx):\n        raise KeyError('calendar')\n"
    )
    (tmp_path / "startup.yaml").write_text(ROBOT.replace("flaky:Flaky", "startup:Startup"))
    out = roboframe_cmd("run", "startup.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert json.loads(out.stdout)["error"].startswith("strategy Startup.on_start raised KeyError")
    (journal,) = (tmp_path / "runs" / "flaky").glob("*.journal")
    notes = [r for r in JournalReader(journal).records() if r.kind == NOTE]
    assert [decode_note(n.payload)["note"] for n in notes] == [STRATEGY_ERROR]
    (tmp_path / "startup.py").write_text(
        "from roboframe import Strategy\n\nclass Startup(Strategy):\n    pass\n"
    )
    sys.modules.pop("startup", None)
    verified = roboframe_cmd("replay", str(journal), "--verify", "--force", cwd=tmp_path)
    assert verified.returncode == 1 and "(the run stopped there)" in verified.stderr


def test_the_summary_counts_the_events_handled_not_those_journaled_after_the_error(robot, tmp_path):
    """The data came in batches (rate 0): the summary said events 8 with the error
    at seq 4, counting the rest of the batch, journaled and never handled."""
    out = roboframe_cmd("-q", "run", "flaky.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    summary = json.loads(out.stdout)
    (journal,) = (tmp_path / "runs" / "flaky").glob("*.journal")
    seq = nth_bar_seq(journal, FAILS_AT)
    assert summary["error_seq"] == summary["events"] == seq
    last = max(s for s, _e, _r in rp.iter_events(JournalReader(journal)))
    # nothing after it is journaled (the loop steps the paper exchange: each event is
    # journaled as it is handled), and nothing the journal holds goes uncounted
    assert last == seq
