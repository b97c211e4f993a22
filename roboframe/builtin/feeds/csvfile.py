"""Bars or ticks from a CSV file, streamed line by line.

Columns (header names are case-insensitive; order does not matter):

Bars (``kind: bar``, the default)::

    Date,Open,High,Low,Close,Volume[,Symbol]

Ticks (``kind: tick``)::

    Date,Price[,Volume][,Bid,Ask][,Symbol]

The time column may be called ``Date``, ``Time``, ``Datetime`` or
``Timestamp`` and hold ISO-8601 (``2026-12-01T10:00:00Z``,
``2026-12-01 10:00:00``, ``2026-12-01``) or epoch seconds, milliseconds or
nanoseconds (by magnitude). MOEX/Finam exports with separate ``<DATE>``
(``YYYYMMDD``) and ``<TIME>`` (``HHMMSS``) columns work too; angle brackets
and a ``<TICKER>`` column are understood. Times without an offset are in
``tz`` (default UTC; ``MSK`` or ``+03:00`` for exchange time). For bars the
time is taken as the bar's close time unless ``time_is: open`` and
``interval`` are given.

Without a symbol column, ``symbol`` names the robot symbol the file is for.
Prices are converted to ticks exactly (decimal arithmetic, rounded to the
nearest tick). A bad row stops the feed with the file name and line number.
Rows must be in time order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from roboframe.builtin.feeds.timeparse import interval_ns, iso_to_ns, parse_tz
from roboframe.core.events import Bar, Tick
from roboframe.core.feed import PACING_SCHEMA, Feed
from roboframe.errors import ConfigError

_TIME_NAMES = ("date", "time", "datetime", "timestamp")


def _norm(name: str) -> str:
    return name.strip().strip("<>").strip().lower()


class CsvFeed(Feed):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "CSV file, relative to the robot file's folder",
            },
            "symbol": {"type": "string", "description": "robot symbol of a one-symbol file"},
            "kind": {
                "enum": ["bar", "tick"],
                "default": "bar",
                "description": "rows are bars or ticks",
            },
            "tz": {
                "type": "string",
                "default": "UTC",
                "description": "time zone of times without an offset: UTC, MSK, +03:00",
            },
            "time_is": {
                "enum": ["close", "open"],
                "default": "close",
                "description": "whether a bar's time is its open or close time",
            },
            "interval": {
                "type": "string",
                "pattern": "^[0-9]+(ms|s|m|h|d)$",
                "description": "bar length, needed with time_is: open",
            },
            "delimiter": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1,
                "default": ",",
                "description": "field separator",
            },
            **PACING_SCHEMA,
        },
    }

    def file_path(self) -> Path:
        path = Path(self.params["path"])
        return path if path.is_absolute() else self.base_dir / path

    def _error(self, line: int | None, message: str) -> ConfigError:
        where = f"{self.file_path()}:{line}" if line else str(self.file_path())
        return ConfigError(f"{where}: {message}")

    def events(self) -> Iterator[Bar | Tick]:
        path = self.file_path()
        try:
            handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
        except OSError as exc:
            raise self._error(None, f"cannot open CSV feed: {exc.strerror}") from None
        with handle:
            reader = csv.reader(handle, delimiter=self.params.get("delimiter", ","))
            header = next(reader, None)
            if header is None:
                raise self._error(1, "empty file")
            columns = {_norm(h): i for i, h in enumerate(header)}
            make = self._columns(columns)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                try:
                    yield make(row)
                except (ValueError, IndexError, KeyError) as exc:
                    raise self._error(reader.line_num, f"bad row: {exc}") from None

    def _columns(self, cols: dict[str, int]):
        kind = self.params.get("kind", "bar")
        need = ("open", "high", "low", "close") if kind == "bar" else ("price",)
        missing = [c for c in need if c not in cols]
        if "last" in cols and kind == "tick":
            missing = []
            cols = {**cols, "price": cols["last"]}
        time_col = next((cols[n] for n in _TIME_NAMES if n in cols), None)
        if time_col is None:
            missing.append("Date")
        if missing:
            raise self._error(
                1,
                f"missing column(s) {', '.join(missing)}; found "
                f"{', '.join(cols) or 'none'} (see docs/feeds.md)",
            )
        symbol_col = cols.get("symbol", cols.get("ticker"))
        fixed = self.params.get("symbol")
        if symbol_col is None and fixed is None:
            if len(self.instruments) != 1:
                raise self._error(
                    1, "no Symbol column: set params.symbol to the robot symbol this file is for"
                )
            fixed = next(iter(self.instruments))
        when = self._time_parser(cols, time_col)
        volume_col = cols.get("volume", cols.get("vol"))
        instruments = self.instruments

        def symbol_of(row: list[str]) -> str:
            name = fixed if symbol_col is None else row[symbol_col].strip()
            if name not in instruments:
                raise ValueError(f"symbol {name!r} is not one of the robot's symbols")
            return name

        def volume_of(row: list[str]) -> int:
            return int(float(row[volume_col])) if volume_col is not None else 0

        if kind == "bar":
            o, h, lo, c = (cols[k] for k in ("open", "high", "low", "close"))

            def make(row: list[str]) -> Bar:
                sym = symbol_of(row)
                tt = instruments[sym].to_ticks
                return Bar(
                    sym, when(row), tt(row[o]), tt(row[h]), tt(row[lo]), tt(row[c]), volume_of(row)
                )

            return make
        p, bid, ask = cols["price"], cols.get("bid"), cols.get("ask")

        def make_tick(row: list[str]) -> Tick:
            sym = symbol_of(row)
            tt = instruments[sym].to_ticks
            return Tick(
                sym,
                when(row),
                tt(row[p]),
                volume_of(row),
                tt(row[bid]) if bid is not None and row[bid] else 0,
                tt(row[ask]) if ask is not None and row[ask] else 0,
            )

        return make_tick

    def _time_parser(self, cols: dict[str, int], time_col: int):
        tz = parse_tz(self.params.get("tz"))
        shift = 0
        if self.params.get("time_is") == "open":
            if "interval" not in self.params:
                raise self._error(1, "time_is: open needs params.interval (the bar length)")
            shift = interval_ns(self.params["interval"])
        if "date" in cols and "time" in cols:  # MOEX/Finam: YYYYMMDD + HHMMSS
            d, t = cols["date"], cols["time"]

            def split(row: list[str]) -> int:
                day, clock = row[d].strip(), row[t].strip().replace(":", "").zfill(6)
                text = f"{day[:4]}-{day[4:6]}-{day[6:8]}T{clock[:2]}:{clock[2:4]}:{clock[4:6]}"
                return iso_to_ns(text, tz) + shift

            return split

        def single(row: list[str]) -> int:
            text = row[time_col].strip()
            if text.isdigit():
                value = int(text)
                if value < 10**11:
                    return value * 10**9 + shift
                if value < 10**14:
                    return value * 10**6 + shift
                return value + shift
            return iso_to_ns(text, tz) + shift

        return single
