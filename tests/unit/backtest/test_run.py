"""``run_backtest`` on small files: what the command line gets back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from roboframe.backtest import feed_events, run_backtest
from roboframe.builtin.feeds.csvfile import ns_to_iso
from roboframe.config import load_robot
from roboframe.errors import ConfigError

ROBOT = """\
name: tiny
symbols:
  Si-12.26: {tick_size: 1}
feed:
  plugin: csv
  params: {path: bars.csv, symbol: Si-12.26}
strategy:
  plugin: sma-crossover
  params: {fast: 2, slow: 3}
gateway:
  plugin: paper
journal:
  dir: runs
"""

CLOSES = [100, 101, 102, 101, 99, 98, 99, 101, 103, 102, 100, 98]


def write_robot(tmp_path, closes=CLOSES):
    lines = ["Date,Open,High,Low,Close"]
    for i, close in enumerate(closes):
        lines.append(f"2026-12-01T10:{i:02d}:00Z,{close},{close},{close},{close}")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "robot.yaml"
    path.write_text(ROBOT)
    return load_robot(path)


def test_keep_trades_lists_every_trade(tmp_path):
    result = run_backtest(write_robot(tmp_path), journal=False, keep_trades=True)
    assert result.stats["trades"] >= 2
    assert len(result.trades) == result.stats["trades"]


@pytest.mark.parametrize("day", ["2026-12-01", "20261201"])
def test_to_a_date_includes_that_whole_day_in_either_iso_form(tmp_path, day):
    result = run_backtest(write_robot(tmp_path), journal=False, start=day, end=day)
    assert result.stats["events"] == len(CLOSES)


@pytest.mark.parametrize(
    ("closes", "start", "end", "said"),
    [
        (CLOSES, "2026-12-02", None, "from 2026-12-02"),
        (CLOSES, None, "2026-11-30", "to 2026-11-30"),
        ([], None, None, "bars.csv"),
    ],
)
def test_no_data_to_backtest_is_an_error_not_empty_statistics(tmp_path, closes, start, end, said):
    spec = write_robot(tmp_path, closes)
    data = [str(tmp_path / "bars.csv")]
    with pytest.raises(ConfigError, match="no market events") as err:
        run_backtest(spec, data=data, start=start, end=end, journal_dir=tmp_path / "runs")
    assert said in str(err.value)
    assert not (tmp_path / "runs").exists()  # no empty journal left behind


def write_moscow_robot(tmp_path, own_feed: bool):
    """Bars at 10:00..10:11 Moscow time, in a file without offsets; the zone is
    the robot feed's ``tz`` or, for --data files, ``backtest.tz``."""
    lines = ["Date,Open,High,Low,Close"]
    for i, close in enumerate(CLOSES):
        lines.append(f"2026-12-01 10:{i:02d}:00,{close},{close},{close},{close}")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    robot = ROBOT.replace(
        "symbol: Si-12.26}", "symbol: Si-12.26, tz: MSK}" if own_feed else "symbol: Si-12.26}"
    )
    if not own_feed:
        robot += "backtest:\n  tz: MSK\n"
    (tmp_path / "robot.yaml").write_text(robot)
    return load_robot(tmp_path / "robot.yaml")


@pytest.mark.parametrize("own_feed", [True, False])
def test_from_and_to_without_an_offset_are_in_the_datas_zone(tmp_path, own_feed):
    """A Moscow trader's "--from 10:05" means 10:05 Moscow time, as the file's
    own times do; read as UTC it would be 13:05 there, past every bar."""
    spec = write_moscow_robot(tmp_path, own_feed)
    data = None if own_feed else [str(tmp_path / "bars.csv")]
    result = run_backtest(
        spec, data=data, start="2026-12-01T10:05", end="2026-12-01T10:08", journal=False
    )
    assert result.stats["events"] == 4  # 10:05, 10:06, 10:07, 10:08 MSK
    with pytest.raises(ConfigError, match=r"from 2026-12-01T13:00 \(MSK\)"):
        run_backtest(spec, data=data, start="2026-12-01T13:00", journal=False)


def test_two_data_files_with_the_same_bar_are_refused(tmp_path):
    """Two overlapping exports of one symbol: every shared bar would reach the
    strategy twice."""
    spec = write_robot(tmp_path)
    lines = (tmp_path / "bars.csv").read_text().splitlines()
    (tmp_path / "early.csv").write_text("\n".join(lines[:8]) + "\n")
    (tmp_path / "late.csv").write_text("\n".join([lines[0], *lines[6:]]) + "\n")
    data = [f"Si-12.26={tmp_path / 'early.csv'}", f"Si-12.26={tmp_path / 'late.csv'}"]
    with pytest.raises(ConfigError, match=r"early.csv and late.csv both hold a bar of Si-12.26"):
        run_backtest(spec, data=data, journal=False)
    (tmp_path / "late.csv").write_text("\n".join([lines[0], *lines[8:]]) + "\n")
    assert run_backtest(spec, data=data, journal=False).stats["events"] == len(CLOSES)


def test_data_files_are_read_the_way_the_robots_own_file_feed_reads_its_file(tmp_path):
    """A Finam-style export: semicolons, Moscow times of bar opens. The robot's
    csv feed is told so once; --data files of the same export must give the same
    bars, not bars an interval late and three hours off."""
    lines = ["<DATE>;<TIME>;<OPEN>;<HIGH>;<LOW>;<CLOSE>"]
    for i, close in enumerate(CLOSES):
        lines.append(f"20261201;10{i:02d}00;{close};{close};{close};{close}")
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "robot.yaml").write_text(
        ROBOT.replace(
            "symbol: Si-12.26}",
            "symbol: Si-12.26, tz: MSK, time_is: open, interval: 1m,\n"
            "           columns: {<DATE>: date, <TIME>: time}}",
        )
    )
    spec = load_robot(tmp_path / "robot.yaml")
    own = list(feed_events(spec, None))
    data = list(feed_events(spec, [f"Si-12.26={tmp_path / 'bars.csv'}"]))
    assert [b.ts for b in data] == [b.ts for b in own] and data == own
    assert ns_to_iso(own[0].ts).startswith("2026-12-01T07:01:00")  # 10:00 MSK open, 07:01 UTC close
    # backtest.tz, when the robot file sets it, is the zone of --data times
    (tmp_path / "robot.yaml").write_text(
        (tmp_path / "robot.yaml").read_text() + "backtest:\n  tz: UTC\n"
    )
    spec = load_robot(tmp_path / "robot.yaml")
    data = list(feed_events(spec, [f"Si-12.26={tmp_path / 'bars.csv'}"]))
    assert [b.ts - o.ts for b, o in zip(data, own, strict=True)] == [3 * 3600 * 10**9] * len(own)


def test_a_robot_with_a_live_feed_says_how_data_files_are_read_in_its_backtest_section(tmp_path):
    """The live robot's feed is no file feed, so it cannot say how a cp1251 Finam
    export stamped at bar opens is read: its backtest section can (it was refused
    as an unknown field, and the error said to set a param the feed lacks)."""
    lines = ["Дата;Время;Откр;Макс;Мин;Закр"]
    for i, close in enumerate(CLOSES):
        lines.append(f"20261201;10{i:02d};{close};{close};{close};{close}")
    (tmp_path / "ru.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1251"))
    live = ROBOT.replace(
        "  plugin: csv\n  params: {path: bars.csv, symbol: Si-12.26}",
        "  plugin: zmq\n  params: {address: 'tcp://127.0.0.1:5561'}",
    )
    (tmp_path / "robot.yaml").write_text(live)
    data = [f"Si-12.26={tmp_path / 'ru.csv'}"]
    with pytest.raises(ConfigError, match=r"for --data files: backtest.encoding\), e.g. cp1251"):
        list(feed_events(load_robot(tmp_path / "robot.yaml"), data))
    (tmp_path / "robot.yaml").write_text(
        live + "backtest:\n  encoding: cp1251\n  tz: MSK\n  time_is: open\n  interval: 1m\n"
        "  columns: {Дата: date, Время: time, Откр: open, Макс: high, Мин: low, Закр: close}\n"
    )
    bars = list(feed_events(load_robot(tmp_path / "robot.yaml"), data))
    assert [b.close for b in bars] == CLOSES
    assert ns_to_iso(bars[0].ts) == "2026-12-01T07:01:00Z"  # 10:00 MSK open: 07:01 UTC close


def test_different_data_under_one_name_and_size_is_another_run(tmp_path):
    """Two daily exports of one name and size (or a typo fixed in place) got one
    run id and header, and analyze kept one of the two runs."""
    spec = write_robot(tmp_path)
    runs = []
    for day in ("01", "02", "03"):
        folder = tmp_path / day
        folder.mkdir()
        text = (tmp_path / "bars.csv").read_text()
        if day == "02":  # the last close 98 was a typo for 97: one byte changed
            head, _, last = text.rstrip("\n").rpartition("\n")
            text = f"{head}\n{last.replace('98', '97')}\n"
        (folder / "si.csv").write_text(text)
        result = run_backtest(spec, data=[f"Si-12.26={folder / 'si.csv'}"], journal_dir=tmp_path)
        runs.append(result.journal.rsplit("/", 1)[-1])
    sizes = {(tmp_path / d / "si.csv").stat().st_size for d in ("01", "02", "03")}
    assert len(sizes) == 1  # the same name and size: only the contents differ
    assert runs[0].split(".")[0] != runs[1].split(".")[0]  # another run id
    assert runs[2] == runs[0].replace(".journal", ".2.journal")  # the same data: the same run


@pytest.mark.parametrize("cash", [Decimal("1e400"), Decimal(0), Decimal("Infinity")])
def test_cash_that_equity_cannot_hold_is_refused(tmp_path, cash):
    """1e400 became inf as a float: the table said Net PnL nan and --json printed
    NaN, which is not JSON."""
    spec = write_robot(tmp_path)
    with pytest.raises(ConfigError, match="--cash: must be a positive amount up to 1e30"):
        run_backtest(spec, cash=cash, journal=False)


def test_a_price_fixed_in_the_robots_own_data_file_is_another_run(tmp_path):
    """Without --data the run id named the feed alone: a file fixed in place gave
    the same run id, and analyze took the two runs for one."""
    spec = write_robot(tmp_path)
    first = run_backtest(spec, journal_dir=tmp_path / "runs").journal
    again = run_backtest(spec, journal_dir=tmp_path / "runs").journal
    path = tmp_path / "bars.csv"
    head, _, last = path.read_text().rstrip("\n").rpartition("\n")
    path.write_text(f"{head}\n{last.replace('98', '97')}\n")  # one byte
    fixed = run_backtest(spec, journal_dir=tmp_path / "runs").journal
    assert again == first.replace(".journal", ".2.journal")  # the same data: the same run
    assert fixed.rsplit("/", 1)[-1].split(".")[0] != first.rsplit("/", 1)[-1].split(".")[0]


def test_a_tick_file_given_twice_is_refused(tmp_path):
    """Ticks may share a time, so the same tick file given twice fed every tick
    twice: net PnL changed, and nothing said why (bars are refused as a second
    bar of a symbol at one time)."""
    (tmp_path / "ticks.csv").write_text(
        "Date,Price,Volume\n2026-12-01T10:00:00Z,100,1\n2026-12-01T10:00:01Z,101,1\n"
    )
    (tmp_path / "robot.yaml").write_text(ROBOT + "backtest: {kind: tick}\n")
    spec = load_robot(tmp_path / "robot.yaml")
    assert (
        run_backtest(spec, data=[str(tmp_path / "ticks.csv")], journal=False).stats["events"] == 2
    )
    twice = [str(tmp_path / "ticks.csv"), f"Si-12.26={tmp_path / 'ticks.csv'}"]
    with pytest.raises(ConfigError, match=r"ticks.csv: the file is given twice \(also "):
        run_backtest(spec, data=twice, journal=False)


def test_data_that_breaks_off_leaves_no_journal(tmp_path):
    """A bad row past the first: the error names it, and no journal is left that
    analyze would list as a run "still running" from 1970 with no events (the
    rows before it were still batched, never written)."""
    spec = write_robot(tmp_path)
    lines = (tmp_path / "bars.csv").read_text().splitlines()
    lines.insert(6, "2026-12-01T10:04:30Z,100,99,101,100")  # high under low
    (tmp_path / "bars.csv").write_text("\n".join(lines) + "\n")
    data = [str(tmp_path / "bars.csv")]
    with pytest.raises(ConfigError, match=r"bars.csv:7: inconsistent bar"):
        run_backtest(spec, data=data, journal_dir=tmp_path / "runs")
    assert list((tmp_path / "runs").glob("*.journal")) == []


@pytest.mark.parametrize("given", ["01.12.2026", "10:02"])
def test_a_from_that_is_not_iso_says_what_to_write(tmp_path, given):
    """A Russian-locale date (as the trader's own export writes it) or a time
    alone got only Python's "Invalid isoformat string"."""
    spec = write_robot(tmp_path)
    with pytest.raises(ConfigError, match=r"write an ISO-8601 date or time, 2026-12-01, "):
        run_backtest(spec, start=given, journal=False)


def test_data_for_a_symbol_the_robot_lacks_names_the_robots_symbols(tmp_path):
    """--data si-12.26=FILE (or last quarter's contract) said only that the symbol
    is not the robot's, not which ones are."""
    spec = write_robot(tmp_path)
    data = [f"si-12.26={tmp_path / 'bars.csv'}"]
    with pytest.raises(ConfigError, match=r"'si-12.26' is not one of the robot's symbols \(Si-12"):
        run_backtest(spec, data=data, journal=False)
