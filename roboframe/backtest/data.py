"""Historical data for backtests: one or more files (CSV, or Parquet by the
``.parquet``/``.pq`` suffix) merged in time order."""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from roboframe.builtin.feeds.csvfile import CsvFeed, ns_to_iso
from roboframe.builtin.feeds.timeparse import iso_to_ns
from roboframe.core.events import Bar, Tick
from roboframe.errors import ConfigError

PARQUET_SUFFIXES = (".parquet", ".pq")
FILE_FEEDS = ("csv", "parquet")  # robot feeds whose reading params --data files share
_DAY = 86_400 * 10**9


def parse_data_arg(arg: str) -> tuple[str | None, str]:
    """``SYMBOL=path`` or ``path``."""
    symbol, sep, path = arg.partition("=")
    return (symbol, path) if sep and symbol and "/" not in symbol else (None, arg)


def data_id(paths: list[str]) -> str:
    """Names, sizes and a hash of the contents: the same data gets the same run id
    wherever it lies, and different data never does -- two daily exports of one
    name and size (a price typo fixed in place) were taken for one run, and
    ``analyze`` kept only one of them."""
    parts = []
    for arg in paths:
        symbol, p = parse_data_arg(arg)
        try:
            size, digest = os.path.getsize(p), _content_hash(p)
        except OSError:
            size, digest = -1, ""
        parts.append(f"{symbol + '=' if symbol else ''}{Path(p).name}:{size}:{digest}")
    return ",".join(parts)


def _content_hash(path: str) -> str:
    h = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_events(
    args: list[str], instruments: dict, reading: dict[str, Any] | None = None
) -> Iterator[Tick | Bar]:
    """Events of every ``--data`` file, merged by time; ties keep argument order.

    ``reading``: how to read them (:data:`READING` params of the csv feed;
    each file's feed takes those it knows).
    """
    reading = reading or {}
    kind = reading.get("kind", "bar")
    feeds = []
    given: dict[str, str] = {}  # file -> the argument that gave it
    for arg in args:
        symbol, path = parse_data_arg(arg)
        cls = feed_for(path)
        known = cls.params_schema["properties"]
        params: dict[str, Any] = {k: v for k, v in reading.items() if k in known}
        params["path"] = str(Path(path).resolve())
        _once(given, params["path"], arg)
        if symbol:
            if symbol not in instruments:  # Si-3.27 for Si-12.26, si-12.26: say which are
                known = ", ".join(sorted(instruments))
                raise ConfigError(
                    f"--data {arg}: {symbol!r} is not one of the robot's symbols ({known})"
                )
            params["symbol"] = symbol
        feeds.append(cls(params, instruments))
    if len(feeds) == 1:
        return feeds[0].events()
    streams = [_keyed(feed, index) for index, feed in enumerate(feeds)]
    merged = heapq.merge(*streams)
    if kind != "bar":  # ticks may share a time
        return (item[3] for item in merged)
    return _one_bar_a_time(merged, [feed.file_path().name for feed in feeds])


def _once(given: dict[str, str], path: str, arg: str) -> None:
    """Refuse a file given twice: ticks may share a time, so nothing else stops
    every tick of it reaching the strategy twice (a second bar of a symbol at
    one time is refused, but only once the data gets there)."""
    if path in given:
        raise ConfigError(f"--data {arg}: the file is given twice (also {given[path]})")
    given[path] = arg


def _one_bar_a_time(merged: Iterator[tuple], names: list[str]) -> Iterator[Bar]:
    """The merged bars, refusing a second bar of a symbol at one time from
    another file (each file checks its own): overlapping exports of one
    symbol would otherwise feed the strategy every shared bar twice."""
    last: dict[str, tuple[int, int]] = {}  # symbol -> (time, file index) of its last bar
    for ts, index, _, bar in merged:
        seen = last.get(bar.symbol)
        if seen is not None and seen[0] == ts:
            raise ConfigError(
                f"--data {names[seen[1]]} and {names[index]} both hold a bar of {bar.symbol} "
                f"at {ns_to_iso(ts)}: do the files overlap? give each bar once"
            )
        last[bar.symbol] = (ts, index)
        yield bar


def feed_for(path: str) -> type[CsvFeed]:
    """The feed that reads ``path``: Parquet by its suffix, else CSV."""
    from roboframe.builtin.feeds.parquetfile import ParquetFeed

    return ParquetFeed if Path(path).suffix.lower() in PARQUET_SUFFIXES else CsvFeed


def _keyed(feed: CsvFeed, index: int) -> Iterator[tuple]:
    """``(ts, file index, row number, event)``: a total order, events never compared."""
    for n, event in enumerate(feed.events()):
        yield event.ts, index, n, event


def window(
    events, start: str | None, end: str | None, tz: dt.tzinfo = dt.UTC
) -> Iterator[Tick | Bar]:
    """Only events with ``start <= ts <= end`` (ISO-8601 dates or times; without
    an offset in ``tz``, the zone the data's own times are read in). A bound that
    is not a time is a ConfigError now, before any event is read."""
    bounds = []
    for flag, text in (("--from", start), ("--to", end)):
        try:
            bounds.append(iso_to_ns(text, tz) if text else None)
        except ValueError as exc:
            raise ConfigError(
                f"{flag} {text!r} is not a time ({exc}): write an ISO-8601 date or time, "
                "2026-12-01, 20261201, 2026-12-01T10:02 or 2026-12-01T10:02+03:00"
            ) from None
    lo, hi = bounds
    if hi is not None and _is_date(end):  # a date: through the end of that day
        hi += _DAY - 1
    return _between(events, lo, hi)


def _between(events, lo: int | None, hi: int | None) -> Iterator[Tick | Bar]:
    for event in events:
        if lo is not None and event.ts < lo:
            continue
        if hi is not None and event.ts > hi:
            return
        yield event


def _is_date(text: str) -> bool:
    """Whether ``text`` is a date alone, in any ISO form (``2026-12-01`` or
    ``20261201``, as Finam exports write it): as ``--to`` it includes its day."""
    try:
        dt.date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True
