"""Built-in feeds: synthetic determinism and shape, CSV columns and errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from roboframe.builtin.feeds.csvfile import CsvFeed
from roboframe.builtin.feeds.synthetic import SyntheticFeed
from roboframe.core import codec
from roboframe.core.events import Bar, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

INSTRUMENTS = {
    "Si-12.26": Instrument("Si-12.26", Decimal(1)),
    "RTS-12.26": Instrument("RTS-12.26", Decimal(10), point_value=Decimal("1.3")),
}
PARAMS = {
    "seed": 3,
    "bars": 200,
    "prices": {"Si-12.26": 92000, "RTS-12.26": 110000},
    "interval": "1m",
    "start": "2026-12-01T07:00:00Z",
}


def digest(events) -> str:
    return hashlib.sha256(b"".join(codec.encode(e) for e in events)).hexdigest()


def test_synthetic_is_deterministic_and_merged_in_time_order():
    events = list(SyntheticFeed(PARAMS, INSTRUMENTS).events())
    assert len(events) == 400
    assert digest(events) == digest(SyntheticFeed(PARAMS, INSTRUMENTS).events())
    keys = [(e.ts, e.symbol) for e in events]
    assert keys == sorted(keys)
    assert events[0].ts == 1_796_108_400_000_000_000 + 60 * 10**9  # start + one interval
    other = list(SyntheticFeed({**PARAMS, "seed": 4}, INSTRUMENTS).events())
    assert digest(other) != digest(events)


def test_synthetic_bars_are_consistent_and_on_the_tick_grid():
    for bar in SyntheticFeed(PARAMS, INSTRUMENTS).events():
        assert isinstance(bar, Bar)
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low >= 1 and bar.volume >= 1
        assert all(isinstance(v, int) for v in (bar.open, bar.high, bar.low, bar.close))
    rts = [b for b in SyntheticFeed(PARAMS, INSTRUMENTS).events() if b.symbol == "RTS-12.26"]
    assert 9000 < rts[0].close < 13000  # ~110000 points = ~11000 ticks of 10


def test_synthetic_same_under_other_hash_seeds():
    code = (
        "import hashlib; from decimal import Decimal;"
        "from roboframe.core import codec; from roboframe.core.instruments import Instrument;"
        "from roboframe.builtin.feeds.synthetic import SyntheticFeed;"
        "i={'Si-12.26': Instrument('Si-12.26', Decimal(1)),"
        " 'RTS-12.26': Instrument('RTS-12.26', Decimal(10))};"
        f"ev=SyntheticFeed({PARAMS!r}, i).events();"
        "print(hashlib.sha256(b''.join(codec.encode(e) for e in ev)).hexdigest())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "99")
    }
    assert len(outs) == 1


def test_synthetic_ticks():
    events = list(SyntheticFeed({**PARAMS, "kind": "tick", "bars": 5}, INSTRUMENTS).events())
    assert len(events) == 10 and all(isinstance(e, Tick) and e.qty > 0 for e in events)


def csv_feed(tmp_path, text, **params):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return CsvFeed({"path": "data.csv", **params}, INSTRUMENTS, base_dir=tmp_path)


def test_csv_bars_iso_dates_and_exact_prices(tmp_path):
    feed = csv_feed(
        tmp_path,
        "Date,Open,High,Low,Close,Volume\n"
        "2026-12-01T10:00:00Z,110010,110050,109990,110030,12\n"
        "2026-12-01 10:01:00,110030,110040,110000,110020,3\n",
        symbol="RTS-12.26",
    )
    a, b = list(feed.events())
    assert a == Bar("RTS-12.26", 1_796_119_200_000_000_000, 11001, 11005, 10999, 11003, 12)
    assert b.ts - a.ts == 60 * 10**9 and b.close == 11002


def test_csv_finam_columns_symbol_and_msk(tmp_path):
    feed = csv_feed(
        tmp_path,
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>\n"
        "Si-12.26,1,20261201,100000,92001,92010,91990,92005,40\n",
        tz="MSK",
    )
    (bar,) = feed.events()
    assert bar.symbol == "Si-12.26" and bar.volume == 40
    assert bar.ts == 1_796_108_400_000_000_000  # 10:00 MSK = 07:00 UTC


def test_csv_epoch_times_and_ticks(tmp_path):
    feed = csv_feed(
        tmp_path,
        "timestamp,price,volume,bid,ask,symbol\n"
        "1796108400,92001,2,92000,92002,Si-12.26\n"
        "1796108400500,92003,1,,,Si-12.26\n",
        kind="tick",
    )
    first, second = feed.events()
    assert first == Tick("Si-12.26", 1_796_108_400 * 10**9, 92001, 2, 92000, 92002)
    assert second.ts == 1_796_108_400_500 * 10**6 and second.bid == 0


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        (
            "Date,Open,High,Close\n1,2,3,4\n",
            {"symbol": "Si-12.26"},
            "data.csv:1: missing column(s) low; found date, open, high, close (see docs/feeds.md)",
        ),
        (
            "Date,Open,High,Low,Close\n2026-12-01,1,2,x,1\n",
            {"symbol": "Si-12.26"},
            "data.csv:2: bad row: Si-12.26: 'x' is not a price",
        ),
        (
            "Date,Open,High,Low,Close,Symbol\n2026-12-01,1,2,1,1,GAZP\n",
            {},
            "data.csv:2: bad row: symbol 'GAZP' is not one of the robot's symbols",
        ),
        (
            "Date,Open,High,Low,Close\n2026-12-01,1,2,1,1\n",
            {},
            "data.csv:1: no Symbol column: set params.symbol to the robot symbol this file is for",
        ),
        ("", {"symbol": "Si-12.26"}, "data.csv:1: empty file"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, text, params, message):
    with pytest.raises(ConfigError) as err:
        list(csv_feed(tmp_path, text, **params).events())
    assert str(err.value).endswith(message)
    assert str(tmp_path) in str(err.value)


def test_csv_missing_file(tmp_path):
    feed = CsvFeed({"path": "nope.csv", "symbol": "Si-12.26"}, INSTRUMENTS, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot open CSV feed"):
        list(feed.events())


def test_csv_streams_a_large_file(tmp_path):
    rows = "".join(
        f"{1796108400 + i * 60},92000,92001,91999,{92000 + i % 3},1\n" for i in range(100_000)
    )
    feed = csv_feed(tmp_path, "Date,Open,High,Low,Close,Volume\n" + rows, symbol="Si-12.26")
    events = feed.events()
    first = next(events)
    assert first.close == 92000
    assert sum(1 for _ in events) == 99_999
