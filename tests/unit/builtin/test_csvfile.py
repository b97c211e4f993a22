"""The CSV feed on real files: every time form, columns, exact prices, errors."""

from __future__ import annotations

import tracemalloc
from decimal import Decimal

import jsonschema
import pytest

from roboframe.builtin.feeds.csvfile import CsvFeed
from roboframe.core.events import Bar, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

SI, RTS, BR = "Si-12.26", "RTS-12.26", "BR-1.27"
INSTRUMENTS = {
    SI: Instrument(SI, Decimal(1)),
    RTS: Instrument(RTS, Decimal(10)),
    BR: Instrument(BR, Decimal("0.01")),
}
T0 = 1_796_119_200_000_000_000  # 2026-12-01T10:00:00Z
HOUR = 3600 * 10**9


def feed(tmp_path, text, instruments=INSTRUMENTS, **params):
    (tmp_path / "data.csv").write_text(text)
    return CsvFeed({"path": "data.csv", **params}, instruments, base_dir=tmp_path)


def one_bar_time(tmp_path, header, cells, **params) -> int:
    text = f"{header},Open,High,Low,Close,Volume\n{cells},1,1,1,1,1\n"
    (event,) = feed(tmp_path, text, symbol=SI, **params).events()
    return event.ts


@pytest.mark.parametrize(
    ("header", "cells", "ts"),
    [
        ("Date", "2026-12-01T10:00:00Z", T0),
        ("Datetime", "2026-12-01T13:00:00+03:00", T0),
        ("Timestamp", "2026-12-01 10:00:00", T0),
        ("Time", "2026-12-01 10:00", T0),
        ("DATE", "2026-12-01", T0 - 10 * HOUR),
        ("date", "20261201", T0 - 10 * HOUR),
        ("Date", "2026-12-01T10:00:00.123456789Z", T0 + 123_456_789),
        ("Date", "2026-12-01 10:00:00.5", T0 + 500_000_000),
        ("Date,Time", "20261201,100000", T0),
        ("<DATE>,<TIME>", "20261201,100000", T0),
        ("Date,Time", "2026-12-01,10:00:00", T0),
        ("Date,Time", "20261201,90000", T0 - HOUR),
        ("Date,Time", "20261201,100000.25", T0 + 250_000_000),
        # Finam's other time forms: HHMM and HH:MM are hours and minutes, not
        # minutes and seconds past midnight
        ("Date,Time", "20261201,1000", T0),
        ("Date,Time", "20261201,10:00", T0),
        ("Date,Time", "20261201,1845", T0 + 8 * HOUR + 45 * 60 * 10**9),
        ("Date,Time", "20261201,930", T0 - HOUR + 30 * 60 * 10**9),
        ("Date,Time", "20261201,9:30", T0 - HOUR + 30 * 60 * 10**9),
        ("Date,Time", "20261201,9:30:15", T0 - HOUR + (30 * 60 + 15) * 10**9),
        # Russian-locale dates (Excel, Finam's DD.MM.YYYY and DD.MM.YY)
        ("Date", "01.12.2026 10:00:00", T0),
        ("Date", "1.12.2026 10:00", T0),
        ("Date", "01.12.2026", T0 - 10 * HOUR),
        ("Date,Time", "01.12.2026,10:00:00", T0),
        ("Date,Time", "01.12.26,100000", T0),
        ("Date", "1796119200", T0),
        ("Date", "1796119200.5", T0 + 500_000_000),
        ("Date", "1796119200123", T0 + 123_000_000),
        ("Date", "1796119200123456", T0 + 123_456_000),
        ("Date", "1796119200123456789", T0 + 123_456_789),
    ],
)
def test_time_forms(tmp_path, header, cells, ts):
    assert one_bar_time(tmp_path, header, cells) == ts


@pytest.mark.parametrize(
    ("header", "cells", "tz", "ts"),
    [
        ("Date", "2026-12-01 13:00:00", "MSK", T0),
        ("Date", "2026-12-01 13:00:00", "+03:00", T0),
        ("Date", "2026-12-01 05:00:00", "-0500", T0),
        ("Date", "2026-12-01T10:00:00Z", "MSK", T0),  # an explicit offset wins
        ("Date,Time", "20261201,130000", "MSK", T0),
        ("Date", "1796119200", "MSK", T0),  # epoch times are UTC
    ],
)
def test_time_zones(tmp_path, header, cells, tz, ts):
    assert one_bar_time(tmp_path, header, cells, tz=tz) == ts


def test_bars_with_exact_prices(tmp_path):
    events = feed(
        tmp_path,
        "Date,Open,High,Low,Close,Volume\n"
        "2026-12-01T10:00:00Z,64.35,64.50,64.10,64.45,12\n"
        "2026-12-01T10:01:00Z,64.45,64.455,64.45,64.45,3.0\n",
        symbol=BR,
    ).events()
    first, second = events
    assert first == Bar(BR, T0, 6435, 6450, 6410, 6445, 12)
    assert second.high == 6446 and second.volume == 3  # 64.455 -> half-even to 64.46


def test_symbol_column_and_finam_export(tmp_path):
    events = feed(
        tmp_path,
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>\n"
        "Si-12.26,1,20261201,130000,92001,92010,91990,92005,40\n"
        "RTS-12.26,1,20261201,130000,110010,110050,109990,110030,7\n",
        tz="MSK",
    ).events()
    assert list(events) == [
        Bar(SI, T0, 92001, 92010, 91990, 92005, 40),
        Bar(RTS, T0, 11001, 11005, 10999, 11003, 7),
    ]


def test_an_exchange_ticker_error_says_how_to_map_the_file(tmp_path):
    """Finam writes the exchange's ticker (SPFB.Si), not the robot's symbol."""
    text = "<TICKER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>\nSPFB.Si,20261201,130000,1,2,1,2\n"
    with pytest.raises(ConfigError) as err:
        list(feed(tmp_path, text, instruments={SI: INSTRUMENTS[SI]}).events())
    assert "symbol 'SPFB.Si' is not one of the robot's symbols (Si-12.26)" in str(err.value)
    assert "params.symbol" in str(err.value) and "--data SYMBOL=FILE" in str(err.value)


def test_a_symbol_the_robot_does_not_trade_in_a_file_of_several_says_so(tmp_path):
    """An RTS robot on the sample file of Si and RTS bars was told that "a file of
    one instrument named otherwise" needs SYMBOL=FILE -- which reads the Si
    bars as RTS's. The error says a file of several may hold only its symbols."""
    text = (
        "Date,Symbol,Open,High,Low,Close\n2026-12-01T10:00:00Z,RTS-12.26,110000,110000,110000,110000\n"
        "2026-12-01T10:00:00Z,Si-12.26,1,2,1,2\n"
    )
    with pytest.raises(ConfigError) as err:
        list(feed(tmp_path, text, instruments={RTS: INSTRUMENTS[RTS]}).events())
    assert ":3: symbol 'Si-12.26' is not one of the robot's symbols (RTS-12.26)" in str(err.value)
    assert "a file of several instruments may hold only the robot's" in str(err.value)


def test_symbol_param_wins_over_the_column(tmp_path):
    text = "Date,Symbol,Open,High,Low,Close\n2026-12-01T10:00:00Z,SPFB.Si,1,2,1,2\n"
    (bar,) = feed(tmp_path, text, symbol=SI).events()
    assert bar.symbol == SI and bar.volume == 0  # no volume column: unknown


def test_a_row_naming_another_robot_symbol_is_refused_when_the_file_is_given_as_one(tmp_path):
    """``--data Si-12.26=FILE`` on a file with RTS rows read RTS prices as Si's."""
    text = (
        "Date,Symbol,Open,High,Low,Close\n2026-12-01T10:00:00Z,Si-12.26,1,2,1,2\n"
        "2026-12-01T10:01:00Z,RTS-12.26,110060,110060,110060,110060\n"
    )
    with pytest.raises(ConfigError) as err:
        list(feed(tmp_path, text, symbol=SI).events())
    assert ":3: symbol 'RTS-12.26': this file is read as Si-12.26's" in str(err.value)


@pytest.mark.parametrize(
    ("instruments", "other"), [({RTS: INSTRUMENTS[RTS]}, SI), (INSTRUMENTS, "GAZP")]
)
def test_a_file_of_several_instruments_given_as_one_is_refused(tmp_path, instruments, other):
    """An RTS robot backtested with ``--data RTS-12.26=FILE`` on a file of Si and
    RTS ticks (as the error for the file alone advised) read the Si ticks as RTS
    prices: a buy at 92000 "made" 23,426 RUB. Only another of the robot's own
    symbols was refused, and a one-symbol robot has none."""
    text = (
        "Time,Symbol,Price,Volume\n2026-12-01T10:00:00Z,RTS-12.26,110000,1\n"
        f"2026-12-01T10:00:01Z,{other},92000,1\n"
    )
    with pytest.raises(ConfigError) as err:
        list(feed(tmp_path, text, instruments, symbol=RTS, kind="tick").events())
    said = f":3: symbol {other!r} after 'RTS-12.26': this file is read as RTS-12.26's"
    assert said in str(err.value)


def test_one_symbol_robot_needs_no_symbol(tmp_path):
    text = "Date,Open,High,Low,Close\n2026-12-01T10:00:00Z,1,2,1,2\n"
    (bar,) = feed(tmp_path, text, instruments={SI: INSTRUMENTS[SI]}).events()
    assert bar.symbol == SI


def test_columns_renames_and_other_columns_are_ignored(tmp_path):
    text = "When,Note,First,Max,Min,Last Price,Lots\n2026-12-01T10:00:00Z,hello,100,103,99,102,5\n"
    columns = {"When": "date", "First": "open", "MAX": "high", "min": "low"}
    columns |= {"Last Price": "close", "Lots": "volume"}
    (bar,) = feed(tmp_path, text, symbol=SI, columns=columns).events()
    assert bar == Bar(SI, T0, 100, 103, 99, 102, 5)


def test_ticks_with_quotes(tmp_path):
    events = feed(
        tmp_path,
        "timestamp,last,qty,bid,ask,ticker\n"
        "1796119200,92001,2,92000,92002,Si-12.26\n"
        "1796119200500,92003,1,,,Si-12.26\n"
        "1796119201000,92004,,,,Si-12.26\n",
        kind="tick",
    ).events()
    assert list(events) == [
        Tick(SI, T0, 92001, 2, 92000, 92002),
        Tick(SI, T0 + 500_000_000, 92003, 1, 0, 0),
        Tick(SI, T0 + 10**9, 92004, 0, 0, 0),
    ]


def test_bar_time_at_open_is_shifted_to_the_close(tmp_path):
    ts = one_bar_time(tmp_path, "Date", "2026-12-01T09:55:00Z", time_is="open", interval="5m")
    assert ts == T0


def test_absolute_path_and_delimiter(tmp_path):
    path = tmp_path / "sub" / "bars.csv"
    path.parent.mkdir()
    path.write_text("Date;Open;High;Low;Close\n2026-12-01T10:00:00Z;1;2;1;2\n")
    params = {"path": str(path), "symbol": SI, "delimiter": ";"}
    (bar,) = CsvFeed(params, INSTRUMENTS, base_dir=tmp_path / "elsewhere").events()
    assert bar.close == 2


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_finam_export_with_another_separator_is_read_without_params(tmp_path, sep):
    """Finam and Excel in Russian locales write ``;`` (or tabs), with a BOM and
    CRLF line ends; ``--data`` has no way to pass ``delimiter``."""
    header = "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>"
    row = "SPFB.Si,1,20261201,130000,92001,92010,91990,92005,40"
    text = "\ufeff" + "\r\n".join([header, row, ""]).replace(",", sep)
    (tmp_path / "data.csv").write_bytes(text.encode())
    params = {"path": "data.csv", "symbol": SI, "tz": "MSK"}
    (bar,) = CsvFeed(params, INSTRUMENTS, base_dir=tmp_path).events()
    assert bar == Bar(SI, T0, 92001, 92010, 91990, 92005, 40)


def test_other_encodings(tmp_path):
    text = "Date,Name,Open,High,Low,Close\n2026-12-01T10:00:00Z,Доллар,1,2,1,2\n"
    (tmp_path / "data.csv").write_bytes(text.encode("cp1251"))
    params = {"path": "data.csv", "symbol": SI}
    with pytest.raises(
        ConfigError, match=r"data.csv: cannot read the file as utf-8-sig .*params.encoding"
    ):
        list(CsvFeed(params, INSTRUMENTS, base_dir=tmp_path).events())
    (bar,) = CsvFeed({**params, "encoding": "cp1251"}, INSTRUMENTS, base_dir=tmp_path).events()
    assert bar.close == 2


def test_blank_lines_are_skipped(tmp_path):
    text = "Date,Open,High,Low,Close\n\n2026-12-01T10:00:00Z,1,2,1,2\n\n"
    assert len(list(feed(tmp_path, text, symbol=SI).events())) == 1


GOOD = "2026-12-01T10:00:00Z,1,2,1,2"


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("", {"symbol": SI}, ":1: empty file: expected a header line"),
        (
            "Date,Open,High,Close\n1,2,3,4\n",
            {"symbol": SI},
            ":1: missing column(s) low for kind bar; found date, open, high, close",
        ),
        (
            "When,Price\n1,2\n",
            {"symbol": SI, "kind": "tick"},
            ":1: missing column(s) date for kind tick; found when, price",
        ),
        (
            "Date,Open,High,Low,Close\n" + GOOD + "\n2026-12-01T10:01:00Z,1,2,x,1\n",
            {"symbol": SI},
            ":3: column Low: 'x' is not a price",
        ),
        (
            "Date,Open,High,Low,Close,Volume\n" + GOOD + ",1.5\n",
            {"symbol": SI},
            ":2: column Volume: '1.5' is not a whole non-negative number",
        ),
        (
            "Date,Open,High,Low,Close,Symbol\n" + GOOD + ",GAZP\n",
            {},
            ":2: symbol 'GAZP' is not one of the robot's symbols (BR-1.27, RTS-12.26, Si-12.26)",
        ),
        (
            "Date,Open,High,Low,Close\n" + GOOD + "\n",
            {},
            ":1: no Symbol column: set params.symbol to the robot symbol this file is for, "
            "or SYMBOL=FILE (backtest --data SYMBOL=FILE",
        ),
        (
            "Date,Open,High,Low,Close\nsoon,1,2,1,2\n",
            {"symbol": SI},
            ":2: column Date: 'soon' is not a time (ISO-8601, YYYYMMDD, DD.MM.YYYY or epoch)",
        ),
        (
            "Date,Time,Open,High,Low,Close\n2026120,100000,1,2,1,2\n",
            {"symbol": SI},
            ":2: columns Date and Time: date '2026120' is not YYYYMMDD or YYYY-MM-DD",
        ),
        (
            "Date,Time,Open,High,Low,Close\n20261201,10,1,2,1,2\n",
            {"symbol": SI},
            ":2: columns Date and Time: time '10' is not HHMMSS, HHMM, HH:MM:SS or HH:MM",
        ),
        (
            "Date,Time,Open,High,Low,Close\n20261201,10:0,1,2,1,2\n",
            {"symbol": SI},
            ":2: columns Date and Time: time '10:0' is not HHMMSS, HHMM, HH:MM:SS or HH:MM",
        ),
        (  # Finam's ггммдд: once read as epoch seconds, 1970-01-04
            "Date,Open,High,Low,Close\n261201,1,2,1,2\n",
            {"symbol": SI},
            ":2: column Date: '261201' is neither a date (YYYYMMDD) nor an epoch time; "
            "write the year in full",
        ),
        (  # past 2262: a backtest spun on it for good
            "Date,Open,High,Low,Close\n2300-01-01T00:00:00Z,1,2,1,2\n",
            {"symbol": SI},
            ":2: column Date: '2300-01-01T00:00:00Z' is out of range: times run from 1677 to 2262",
        ),
        (
            "Date,Open,High,Low,Close\n99999999999999999999999,1,2,1,2\n",
            {"symbol": SI},
            ":2: column Date: '99999999999999999999999' as epoch nanoseconds is out of range",
        ),
        (
            "Date,Open,High,Low,Close\n" + GOOD + "\n2026-12-01T10:00:00Z,1,2\n",
            {"symbol": SI},
            ":3: expected at least 5 fields, found 3",
        ),
        (
            "Date,Open,High,Low,Close\n2026-12-01T10:00:00Z,3,2,1,2\n",
            {"symbol": SI},
            ":2: inconsistent bar: open 3, high 2, low 1, close 2",
        ),
        (
            "Date,Open,High,Low,Close\n2026-12-01T10:01:00Z,1,2,1,2\n" + GOOD + "\n",
            {"symbol": SI},
            ":3: time goes backwards (2026-12-01T10:00:00Z after 2026-12-01T10:01:00Z)",
        ),
        (
            "Date,Open,High,Low,Close,Vol,Volume\n" + GOOD + ",1,1\n",
            {"symbol": SI},
            ":1: two columns give 'volume': rename one with params.columns",
        ),
        (  # a zero row (an export's gap) marked the position at 0
            "Date,Open,High,Low,Close\n" + GOOD + "\n2026-12-01T10:01:00Z,0,0,0,0\n",
            {"symbol": SI},
            ":3: prices must be positive: open 0, high 0, low 0, close 0",
        ),
        (
            "Date,Open,High,Low,Close\n2026-12-01T10:01:00Z,-5,2,-5,1\n",
            {"symbol": SI},
            ":2: prices must be positive: open -5, high 2, low -5, close 1",
        ),
        (  # past 64 bits: a traceback from the journal's encoder
            "Date,Open,High,Low,Close\n2026-12-01T10:01:00Z,1,99999999999999999999,1,1\n",
            {"symbol": SI},
            ":2: prices too large: open 1, high 99999999999999999999, low 1, close 1",
        ),
        (
            "Date,Open,High,Low,Close,Volume\n" + GOOD + ",18446744073709551616\n",
            {"symbol": SI},
            ":2: column Volume: '18446744073709551616' is too large",
        ),
        (
            "Date,Price,Bid\n2026-12-01T10:01:00Z,100,-1\n",
            {"symbol": SI, "kind": "tick"},
            ":2: prices must be zero or more: price 100, bid -1",
        ),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, params, message):
    with pytest.raises(ConfigError) as err:
        list(feed(tmp_path, text, **params).events())
    assert str(err.value).startswith(f"{tmp_path / 'data.csv'}{message}")


def test_a_duplicate_bar_is_refused_not_traded_twice(tmp_path):
    """Two bars of one symbol at one time are a repeated row (two overlapping
    exports pasted together): the strategy would see the bar twice."""
    text = (
        "Date,Symbol,Open,High,Low,Close\n"
        f"{T0 // 10**9},{SI},1,2,1,2\n{T0 // 10**9},{RTS},10,20,10,20\n"
        f"{T0 // 10**9},{SI},1,2,1,2\n"
    )
    events = feed(tmp_path, text).events()
    assert [bar.symbol for bar in (next(events), next(events))] == [SI, RTS]
    with pytest.raises(ConfigError, match=r"data.csv:4: a second bar of Si-12.26 at 2026-12-01T10"):
        next(events)


def test_ticks_may_share_a_time(tmp_path):
    text = "Date,Price\n2026-12-01T10:00:00Z,1\n2026-12-01T10:00:00Z,2\n"
    assert len(list(feed(tmp_path, text, symbol=SI, kind="tick").events())) == 2


def test_error_after_good_rows_comes_in_order(tmp_path):
    text = "Date,Open,High,Low,Close\n" + GOOD + "\n2026-12-01T10:01:00Z,1,2,1,?\n"
    events = feed(tmp_path, text, symbol=SI).events()
    assert next(events).ts == T0
    with pytest.raises(ConfigError, match=r"data.csv:3: column Close: '\?' is not a price"):
        next(events)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"path": "nope.csv", "symbol": SI}, "nope.csv: cannot open CSV feed: No such file"),
        ({"path": "data.csv", "symbol": "GAZP"}, "params.symbol 'GAZP' is not one of the robot"),
        ({"path": "data.csv", "symbol": SI, "tz": "Mars"}, "not a time zone offset"),
        ({"path": "data.csv", "symbol": SI, "time_is": "open"}, "needs params.interval"),
    ],
)
def test_bad_params(tmp_path, params, message):
    (tmp_path / "data.csv").write_text("Date,Open,High,Low,Close\n" + GOOD + "\n")
    with pytest.raises(ConfigError, match=message):
        list(CsvFeed(params, INSTRUMENTS, base_dir=tmp_path).events())


def test_a_large_file_is_streamed_not_loaded(tmp_path):
    rows = 100_000
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("Date,Open,High,Low,Close,Volume\n")
        for i in range(rows):
            out.write(f"{1796108400 + i * 60},92000,92002,91999,{92000 + i % 3},1\n")
    size = path.stat().st_size
    events = CsvFeed({"path": "big.csv", "symbol": SI}, INSTRUMENTS, base_dir=tmp_path).events()
    tracemalloc.start()
    try:
        count, close = 0, 0
        for event in events:
            count += 1
            close = event.close
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == rows and close == 92000 + (rows - 1) % 3
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte file: not streamed"


def test_params_schema():
    schema = CsvFeed.params_schema
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    jsonschema.validate({"path": "a.csv", "columns": {"Px": "price"}, "rate": 10}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"path": "a.csv", "columns": {"Px": "prix"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"path": "a.csv", "speed": 2}, schema)


@pytest.mark.parametrize("tz", ["UTC", "+03:00", "-05:30", "MSK"])
def test_the_fast_time_parser_agrees_with_the_general_one(tz):
    """The hand-taken-apart ``YYYY-MM-DD HH:MM:SS`` form (dates cached per day,
    clocks per value) gives exactly what ``parse_time`` gives, and sends every
    cell it does not fully understand -- bad dates, bad clocks -- to it."""
    import random

    from roboframe.builtin.feeds.csvfile import _BadRow, fast_time_parser, parse_time
    from roboframe.builtin.feeds.timeparse import parse_tz

    zone = parse_tz(tz)
    fast = fast_time_parser(zone)
    rng = random.Random(5)
    cells = [
        f"{rng.randint(1971, 2099)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        f"{rng.choice(' T')}{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d}"
        for _ in range(3000)
    ]
    cells += ["2024-02-29 23:59:59", "2024-03-01 00:00:00", "2026-12-01 10:00:00.5"]
    cells += ["2026-12-01T10:00:00", "2026-12-01 10:00:00", "2026-12-01T10:00:00Z"]
    for cell in sorted(cells) + cells:  # in order (the day cache hit) and shuffled
        assert fast(cell) == parse_time(cell, zone), cell
    bad_cells = ["2023-02-29 10:00:00", "2026-12-01 24:00:00", "2026-12-01 10:60:00"]
    bad_cells += ["2026-12-01 1a:00:00", "2026-13-01 10:00:00", "2026-12-01 10:00:6\u0669"]
    for bad in bad_cells:
        with pytest.raises(_BadRow):
            parse_time(bad, zone)
        with pytest.raises(_BadRow):
            fast(bad)


def test_whole_number_prices_take_the_short_way_only_for_one_tick_instruments(tmp_path):
    text = (
        "Date,Symbol,Open,High,Low,Close\n"
        f"2026-12-01 10:00:00,{SI},100,102,99,101\n"
        f"2026-12-01 10:00:00,{RTS},100000,100020,99990,100010\n"
        f"2026-12-01 10:00:00,{BR},80,81,79,80.5\n"
        f"2026-12-01 10:01:00,{SI},100.0,102,99,101\n"
    )
    bars = list(feed(tmp_path, text).events())
    assert [(b.open, b.high, b.low, b.close) for b in bars] == [
        (100, 102, 99, 101),
        (10000, 10002, 9999, 10001),  # tick 10: prices are not ticks
        (8000, 8100, 7900, 8050),  # tick 0.01
        (100, 102, 99, 101),  # a decimal point takes the general way, same ticks
    ]


def test_prices_off_the_tick_are_rounded_and_said_once_the_file_is_read(tmp_path, caplog):
    """RTS trades in steps of 10: a file with 110005 in it (or a robot file with
    the wrong tick_size) gets rounded prices, and the trader is told."""
    text = (
        "Date,Open,High,Low,Close\n"
        "2026-12-01T10:00:00Z,110000,110010,109990,110000\n"
        "2026-12-01T10:01:00Z,110005,110015,110000,110010\n"
    )
    with caplog.at_level("WARNING"):
        events = list(feed(tmp_path, text, symbol=RTS).events())
    assert [e.open for e in events] == [11000, 11000]  # 11000.5 ticks: half-even
    (said,) = [r.getMessage() for r in caplog.records]
    assert "2 price(s) of RTS-12.26 were not multiples of its tick 10" in said
    assert "the first: 110005" in said and "symbols.RTS-12.26.tick_size" in said


def test_prices_on_the_tick_say_nothing(tmp_path, caplog):
    text = "Date,Open,High,Low,Close\n2026-12-01T10:00:00Z,110000,110010,109990,110000\n"
    with caplog.at_level("WARNING"):
        list(feed(tmp_path, text, symbol=RTS).events())
        list(feed(tmp_path, text.replace("110010", "110010.00"), symbol=RTS).events())
    assert caplog.records == []


def test_a_semicolon_file_may_write_its_prices_with_a_decimal_comma(tmp_path):
    """Russian-locale exports separate fields with ';' and write 74,35: read as
    74.35 (a comma-separated file's commas are its separators, never this)."""
    text = "Date;Open;High;Low;Close;Volume\n01.12.2026 10:00;74,35;74,50;74,30;74,41;7\n"
    (event,) = feed(tmp_path, text, symbol=BR).events()
    assert (event.ts, event.open, event.high, event.low, event.close) == (
        T0,
        7435,
        7450,
        7430,
        7441,
    )


def test_a_semicolon_file_may_write_its_volumes_with_a_decimal_comma_too(tmp_path):
    """Excel in a Russian locale writes a volume as 100,0: the file's decimal mark
    for its volumes as for its prices (it was refused as not a number)."""
    text = "Date;Open;High;Low;Close;Volume\n01.12.2026 10:00;74,35;74,50;74,30;74,41;100,0\n"
    (event,) = feed(tmp_path, text, symbol=BR).events()
    assert event.volume == 100
    with pytest.raises(ConfigError, match=r"column Volume: '1,500': a decimal comma or a thous"):
        list(feed(tmp_path, text.replace("100,0", "1,500"), symbol=BR).events())
    with pytest.raises(ConfigError, match=r"column Volume: '100,5' is not a whole non-negative"):
        list(feed(tmp_path, text.replace("100,0", "100,5"), symbol=BR).events())


def test_a_json_lines_file_is_said_to_be_json(tmp_path):
    """--data on a .jsonl file listed its JSON as found columns."""
    text = '{"kind": "bar", "symbol": "Si", "ts": 1, "open": 1}\n'
    with pytest.raises(ConfigError, match=r"data.csv:1: this is JSON, not CSV"):
        list(feed(tmp_path, text, symbol=BR).events())


def test_a_separate_time_column_may_write_its_fraction_after_a_comma(tmp_path):
    """10:00:00,250 -- how a Russian locale writes a quarter of a second (a Time
    cell was refused; a combined Date cell took it)."""
    text = "Date;Time;Open;High;Low;Close\n01.12.2026;10:00:00,250;74,35;74,50;74,30;74,41\n"
    (event,) = feed(tmp_path, text, symbol=BR).events()
    assert event.ts == T0 + 250_000_000


def test_a_comma_before_three_digits_is_not_taken_for_a_decimal_mark_unless_said(tmp_path):
    """92,000 in a tab-separated file may group thousands: read as 92 it landed on
    the tick grid without a word. Refused, unless the file says its decimal mark."""
    row = "\t".join(["2026-12-01 10:00"] + ["92,000"] * 4)
    text = "Date\tOpen\tHigh\tLow\tClose\n" + row + "\n"
    with pytest.raises(ConfigError, match=r"'92,000': a decimal comma or a thousands group\?"):
        list(feed(tmp_path, text, symbol=SI).events())
    text = text.replace("92,000", "74,125")
    (event,) = feed(tmp_path, text, symbol=BR, decimal=",").events()
    assert event.close == 7412  # 74.125 rounded half-even to the 0.01 tick (and counted)


@pytest.mark.parametrize(
    ("first", "tz", "warned"),
    [
        ("2013-06-03 10:00:00", "MSK", True),  # Moscow on UTC+4 then
        ("2009-07-01 10:00:00", "MSK", True),  # summer time then
        ("2014-10-26 10:00:00", "MSK", False),  # UTC+3 for good since the night before
        ("2013-06-03 10:00:00", "+04:00", False),  # the offset of the day, written
        ("2013-06-03 10:00:00", "UTC", False),
    ],
)
def test_msk_data_from_before_moscow_kept_utc3_is_said_to_be_an_hour_off(
    tmp_path, caplog, first, tz, warned
):
    """MSK is UTC+3 here. Moscow kept UTC+3 all year only from 26 Oct 2014: a
    Finam export of 2013, in MSK of its day (UTC+4), was read an hour late
    without a word -- sessions, day starts and fills an hour off."""
    text = f"Date,Open,High,Low,Close,Volume\n{first},1,1,1,1,1\n2026-12-01 10:00:00,1,1,1,1,1\n"
    with caplog.at_level("WARNING", logger="roboframe"):
        events = list(feed(tmp_path, text, symbol=SI, tz=tz).events())
    assert len(events) == 2
    said = [r.getMessage() for r in caplog.records if "tz MSK is UTC+3" in r.getMessage()]
    if warned:
        (message,) = said  # once, for the first time only
        assert f"this data starts {first[:10]}" in message and "tz: +04:00" in message
    else:
        assert said == []


def test_a_row_with_more_cells_than_the_header_is_refused(tmp_path):
    """An unquoted decimal comma in a comma-separated file's last price split it
    in two: the close read 92005 and the volume 5, the real volume dropped as an
    extra cell, without a word. A trailing separator (empty cells) still passes."""
    text = "Date,Open,High,Low,Close,Volume\n2026-12-01T10:00:00Z,92000,92010,91990,92005,5,100\n"
    with pytest.raises(ConfigError, match=r"data.csv:2: 7 fields, but the header names 6"):
        list(feed(tmp_path, text, symbol=SI).events())
    text = "Date;Open;High;Low;Close;Volume\n2026-12-01T10:00:00Z;92000;92010;91990;92005;100;\n"
    (event,) = feed(tmp_path, text, symbol=SI).events()
    assert (event.close, event.volume) == (92005, 100)


def test_a_quoted_decimal_comma_in_a_comma_separated_file_names_the_setting(tmp_path):
    """'92000,5' quoted in a file separated by commas is refused unless decimal
    says ','; the error said only that it is not a price."""
    text = 'Date,Open,High,Low,Close\n2026-12-01T10:00:00Z,"74,35","74,50","74,30","74,41"\n'
    with pytest.raises(ConfigError, match=r"column Open: '74,35' is not a price \(a decimal com"):
        list(feed(tmp_path, text, symbol=BR).events())
    (event,) = feed(tmp_path, text, symbol=BR, decimal=",").events()
    assert event.close == 7441


@pytest.mark.parametrize("encoding", [None, "utf-8-sig"])
def test_excels_unicode_text_export_is_read_as_utf16(tmp_path, encoding):
    """Excel's "Unicode Text" is tab-separated UTF-16 with a byte order mark; read
    as UTF-8 it was refused with a hint to try cp1251. The robot file's default
    (utf-8-sig, filled in) reads it as the mark says; another encoding said wins."""
    text = "Date\tOpen\tHigh\tLow\tClose\n01.12.2026 10:00\t74,35\t74,50\t74,30\t74,41\n"
    (tmp_path / "data.csv").write_text(text, encoding="utf-16")
    params = {"path": "data.csv", "symbol": BR}
    if encoding:
        params["encoding"] = encoding
    (event,) = CsvFeed(params, INSTRUMENTS, base_dir=tmp_path).events()
    assert (event.ts, event.close) == (T0, 7441)
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        list(CsvFeed({**params, "encoding": "klingon"}, INSTRUMENTS, base_dir=tmp_path).events())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        # an export saved without its header line (Finam: the header is a checkbox)
        ("SPFB.Si,1,20261201,100100,92000,92015,91990,92010,154\n", "the first line looks like"),
        # fields separated by spaces, which the header sniffing does not try
        ("<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE>\n20261201 100100 1 2 1 2\n", "by spaces?"),
    ],
)
def test_a_header_without_the_columns_says_what_it_likely_is(tmp_path, text, said):
    """Both listed their cells as the columns found, and nothing more."""
    with pytest.raises(ConfigError, match=r"data.csv:1: missing column\(s\)") as err:
        list(feed(tmp_path, text, symbol=SI).events())
    assert said in str(err.value)


def test_prices_grouped_in_thousands_by_a_point_are_named_as_a_cause(tmp_path, caplog):
    """An export grouping thousands with a point writes Si's 92015 as 92.015:
    read as 92.015 RUB (a round 92.000 even exactly on the tick), and the
    warning pointed only at tick_size."""
    text = "Date;Open;High;Low;Close\n2026-12-01T10:00:00Z;92.000;92.015;91.990;92.010\n"
    with caplog.at_level("WARNING"):
        list(feed(tmp_path, text, symbol=SI).events())
    (said,) = [r.getMessage() for r in caplog.records]
    assert "group thousands with a point (92.015 for 92015)" in said
