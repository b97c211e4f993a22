"""The Parquet feed on real files written with pyarrow: typed columns give the
same events as the same data in CSV; errors name the file, row and column."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roboframe.builtin.feeds import parquetfile
from roboframe.builtin.feeds.csvfile import CsvFeed
from roboframe.builtin.feeds.parquetfile import ParquetFeed
from roboframe.core.events import Bar, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

SI, BR = "Si-12.26", "BR-1.27"
INSTRUMENTS = {SI: Instrument(SI, Decimal(1)), BR: Instrument(BR, Decimal("0.01"))}
T0 = 1_796_119_200_000_000_000  # 2026-12-01T10:00:00Z
MINUTE = 60 * 10**9
UTC = dt.UTC


def write(tmp_path, columns: dict, name="data.parquet", **kw):
    pq.write_table(pa.table(columns), tmp_path / name, **kw)
    return tmp_path / name


def events(tmp_path, table, instruments=INSTRUMENTS, **params):
    write(tmp_path, table)
    return list(
        ParquetFeed({"path": "data.parquet", **params}, instruments, base_dir=tmp_path).events()
    )


def when(minute: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 // 10**9 + 60 * minute, UTC)


BARS = {
    "open": [92000, 92003],
    "high": [92005, 92006],
    "low": [91990, 92001],
    "close": [92003, 92004],
}


@pytest.mark.parametrize(
    ("column", "tz", "first"),
    [
        (pa.array([when(0), when(1)], pa.timestamp("ns", tz="UTC")), "UTC", T0),
        (pa.array([when(0), when(1)], pa.timestamp("ms", tz="Europe/Moscow")), "UTC", T0),
        # a timestamp without a zone is in the feed's tz: 13:00 Moscow is 10:00 UTC
        (
            pa.array(
                [dt.datetime(2026, 12, 1, 13), dt.datetime(2026, 12, 1, 13, 1)], pa.timestamp("us")
            ),
            "MSK",
            T0,
        ),
        (pa.array([when(0), when(1)], pa.timestamp("s")), "UTC", T0),
        (["2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z"], "UTC", T0),
        (pa.array([T0 // 10**9, T0 // 10**9 + 60], pa.int64()), "UTC", T0),
        (
            pa.array([dt.date(2026, 12, 1), dt.date(2026, 12, 2)], pa.date32()),
            "UTC",
            T0 - 10 * 3600 * 10**9,  # a date alone is that day's midnight
        ),
    ],
)
def test_time_columns_of_every_type(tmp_path, column, tz, first):
    got = events(tmp_path, {"timestamp": column, **BARS}, symbol=SI, tz=tz)
    assert got[0] == Bar(SI, first, 92000, 92005, 91990, 92003, 0)
    assert got[1].ts > got[0].ts


def test_the_same_data_as_csv_gives_the_same_events(tmp_path):
    """Float prices (and their binary noise), decimals, a symbol column, nulls."""
    n = 50
    times = [when(i) for i in range(n)]
    symbols = [SI if i % 2 else BR for i in range(n)]
    closes = [
        Decimal(74) + Decimal(i) / 100 if s == BR else Decimal(92000 + i)
        for i, s in enumerate(symbols)
    ]
    floats = [
        float(c) + (1e-9 if i % 3 == 0 else 0.0) for i, c in enumerate(closes)
    ]  # 74.0299999...
    write(
        tmp_path,
        {
            "Date": pa.array(times, pa.timestamp("us", tz="UTC")),
            "Ticker": symbols,
            "Open": pa.array(closes, pa.decimal128(12, 2)),
            "High": floats,
            "Low": pa.array(closes, pa.decimal128(12, 2)),
            "Close": floats,
            "Volume": pa.array([None if i % 5 == 0 else float(i) for i in range(n)], pa.float64()),
        },
    )
    lines = ["Date,Ticker,Open,High,Low,Close,Volume"]
    for i in range(n):
        c = closes[i]
        vol = "" if i % 5 == 0 else str(i)
        lines.append(f"{times[i].isoformat()},{symbols[i]},{c},{c},{c},{c},{vol}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    from_csv = list(CsvFeed({"path": "data.csv"}, INSTRUMENTS, base_dir=tmp_path).events())
    from_parquet = list(
        ParquetFeed({"path": "data.parquet"}, INSTRUMENTS, base_dir=tmp_path).events()
    )
    assert len(from_parquet) == n
    assert from_parquet == from_csv
    assert from_parquet[0] == Bar(BR, T0, 7400, 7400, 7400, 7400, 0)


def test_ticks_with_quotes_and_renamed_columns(tmp_path):
    got = events(
        tmp_path,
        {
            "ts": pa.array([when(0)], pa.timestamp("ns", tz="UTC")),
            "px": [74.05],
            "size": pa.array([3], pa.int32()),
            "bid": [74.04],
            "ask": [None],
        },
        kind="tick",
        symbol=BR,
        columns={"ts": "timestamp", "px": "price", "size": "volume"},
    )
    assert got == [Tick(BR, T0, 7405, 3, 7404, 0)]


def test_date_and_time_columns_and_bars_stamped_at_their_open(tmp_path):
    got = events(
        tmp_path,
        {"DATE": ["20261201"], "TIME": ["095900"], **{k: v[:1] for k, v in BARS.items()}},
        symbol=SI,
        time_is="open",
        interval="1m",
    )
    assert got[0].ts == T0


def test_rows_are_read_batch_by_batch_across_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(parquetfile, "BATCH_ROWS", 7)
    n = 100
    write(
        tmp_path,
        {
            "timestamp": pa.array([when(i) for i in range(n)], pa.timestamp("ns", tz="UTC")),
            "open": list(range(1000, 1000 + n)),
            "high": list(range(1000, 1000 + n)),
            "low": list(range(1000, 1000 + n)),
            "close": list(range(1000, 1000 + n)),
        },
        row_group_size=30,
    )
    got = list(
        ParquetFeed({"path": "data.parquet", "symbol": SI}, INSTRUMENTS, base_dir=tmp_path).events()
    )
    assert [e.close for e in got] == list(range(1000, 1000 + n))
    assert [e.ts for e in got] == [T0 + i * MINUTE for i in range(n)]


def bad(**changes):
    columns = {
        "timestamp": pa.array([when(i) for i in range(20)], pa.timestamp("ns", tz="UTC")),
        "open": [92000.0] * 20,
        "high": [92010.0] * 20,
        "low": [91990.0] * 20,
        "close": [92001.0] * 20,
    }
    for name, (row, value) in changes.items():
        values = columns[name].to_pylist() if name == "timestamp" else list(columns[name])
        values[row] = value
        columns[name] = (
            pa.array(values, columns["timestamp"].type) if name == "timestamp" else values
        )
    return columns


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            bad(timestamp=(12, when(3))),
            "row 13: time goes backwards (2026-12-01T10:03:00Z after 2026-12-01T10:11:00Z)",
        ),
        (bad(timestamp=(9, None)), "row 10: column timestamp: empty time"),
        (bad(close=(15, None)), "row 16: column close: '' is not a price"),
        (bad(close=(4, float("nan"))), "row 5: column close: 'nan' is not a price"),
        (bad(high=(17, 91000.0)), "row 18: inconsistent bar: open 92000, high 91000"),
        ({"timestamp": [1], "open": [1.0]}, "missing column(s) high, low, close for kind bar"),
    ],
)  # fmt: skip
def test_bad_rows_name_the_file_row_and_column(tmp_path, monkeypatch, columns, message):
    monkeypatch.setattr(parquetfile, "BATCH_ROWS", 4)  # errors past the first batch count right
    with pytest.raises(ConfigError) as err:
        events(tmp_path, columns, symbol=SI)
    assert str(tmp_path / "data.parquet") in str(err.value)
    assert message in str(err.value)


def test_a_file_that_is_not_parquet(tmp_path):
    (tmp_path / "data.parquet").write_text("Date,Open\n")
    feed = ParquetFeed({"path": "data.parquet", "symbol": SI}, INSTRUMENTS, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="not a Parquet file"):
        list(feed.events())
    missing = ParquetFeed({"path": "none.parquet", "symbol": SI}, INSTRUMENTS, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot open Parquet feed"):
        list(missing.events())


def test_a_large_file_is_streamed_not_loaded(tmp_path):
    rows = 200_000
    closes = pa.array([92000 + i % 3 for i in range(rows)], pa.int64())
    write(
        tmp_path,
        {
            "timestamp": pa.array([T0 + i * MINUTE for i in range(rows)], pa.timestamp("ns")),
            "open": closes,
            "high": pa.array([92005] * rows, pa.int64()),
            "low": pa.array([91990] * rows, pa.int64()),
            "close": closes,
        },
        row_group_size=50_000,
    )
    feed = ParquetFeed({"path": "data.parquet", "symbol": SI}, INSTRUMENTS, base_dir=tmp_path)
    tracemalloc.start()
    try:
        count, close = 0, 0
        for event in feed.events():
            count += 1
            close = event.close
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == rows and close == 92000 + (rows - 1) % 3
    # all rows as Python objects would take well over 100 MB; one batch of 8,192 rows is a few MB
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MB: not streamed"


def test_params_schema_is_the_csv_one_without_text_settings():
    props = ParquetFeed.params_schema["properties"]
    assert "encoding" not in props and "delimiter" not in props
    assert {"path", "symbol", "kind", "tz", "columns", "time_is", "interval", "rate"} <= set(props)
