"""Bars or ticks from a CSV file, streamed line by line (never loaded whole).

Columns (header names are case-insensitive, may be wrapped in ``<>`` as in
Finam exports, and may come in any order; other columns are ignored):

Bars (``kind: bar``, the default)::

    Date,Open,High,Low,Close[,Volume][,Symbol]

Ticks (``kind: tick``)::

    Date,Price[,Volume][,Bid,Ask][,Symbol]

Also understood: ``Last`` for ``Price``; ``Vol``, ``Qty`` or ``Quantity``
for ``Volume``; ``Ticker`` for ``Symbol``. ``columns`` renames anything else,
``{file column: standard name}``, e.g. ``{Close Price: close}``.

The time column may be called ``Date``, ``Time``, ``Datetime`` or
``Timestamp`` and hold:

- ISO-8601: ``2026-12-01T10:00:00Z``, ``2026-12-01 10:00[:00[.123456789]]``,
  ``2026-12-01`` (fractions of a second are kept to the nanosecond);
- ``YYYYMMDD`` in a ``Date`` column with ``HHMMSS`` (or ``HH:MM:SS``) in a
  separate ``Time`` column -- MOEX/Finam exports;
- epoch seconds, milliseconds, microseconds or nanoseconds, told apart by
  magnitude (seconds may have a decimal fraction).

Times without an offset are in ``tz`` (``UTC`` by default; ``MSK`` or
``+03:00`` for Moscow exchange time). A bar's time is its close time, unless
``time_is: open`` with ``interval`` says the file stamps bars at their open.

Without a symbol column -- or when ``symbol`` is set, which then wins over
the column -- every row belongs to the robot symbol ``symbol`` (a robot with
one symbol needs neither). Prices become ticks with decimal arithmetic
(:meth:`Instrument.to_ticks`, no floats), rounded half-even to the nearest
tick; prices off the tick grid are counted and a warning says so once the
file is read. Volumes must be whole numbers; empty means 0 (unknown).

Fields are separated by whatever the header line uses of ``,``, ``;``, tab
and ``|`` (Finam lets the user choose), unless ``delimiter`` says otherwise.

Rows must be in time order. A bad row -- short, a value that is not a
number or a time, a symbol the robot does not trade, ``high`` below ``low``,
time going backwards, a second bar of a symbol at one time -- stops the feed
with a :class:`~roboframe.errors.ConfigError` naming the file, the line and
the column. ``docs/feeds.md`` has examples.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path
from typing import Any

from roboframe.builtin.feeds.timeparse import (
    EPOCH_FLOOR,
    ZONE_PATTERN,
    in_range,
    interval_ns,
    iso_to_ns,
    msk_history,
    parse_tz,
)
from roboframe.core.events import Bar, Tick
from roboframe.core.feed import PACING_SCHEMA, Feed
from roboframe.errors import ConfigError, ConfigProblem

log = logging.getLogger(__name__)

STANDARD = ("date", "time", "datetime", "timestamp", "open", "high", "low", "close")
STANDARD += ("volume", "price", "bid", "ask", "symbol")
ALIASES = {"last": "price", "vol": "volume", "qty": "volume", "quantity": "volume"}
ALIASES |= {"ticker": "symbol"}
TIME_NAMES = ("datetime", "timestamp", "date", "time")
REQUIRED = {"bar": ("open", "high", "low", "close"), "tick": ("price",)}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_SEPARATORS = (",", ";", "\t", "|")
_FRACTION = re.compile(r"^(.*\d[T ]?\d{2}:?\d{2}:?\d{2})[.,](\d+)(.*)$")


class _BadRow(ValueError):
    """A row problem, already worded for people."""


def norm(name: str) -> str:
    """A header name as matched: trimmed, without Finam's ``<>``, lower case."""
    return name.strip().strip("<>").strip().lower()


def parse_volume(text: str, shown: str | None = None) -> int:
    """A whole, non-negative quantity; empty is 0 (unknown). ``shown``: the cell
    as the file wrote it, for messages (``text`` may be it with a decimal point)."""
    text = text.strip()
    shown = repr(text if shown is None else shown.strip())
    if text.isdigit():
        value = int(text)
        if value >= _TOO_BIG:
            raise _BadRow(f"{shown} is too large (at most 2**63 - 1)")
        return value
    if not text:
        return 0
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _BadRow(f"{shown} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise _BadRow(f"{shown} is not a whole non-negative number")
    if value >= _TOO_BIG:
        raise _BadRow(f"{shown} is too large (at most 2**63 - 1)")
    return int(value)


_TOO_BIG = 1 << 63  # no quantity or price in ticks reaches it: a wrong column, a broken row


def _prices_out_of_range(row_prices: str, low: int, high: int, least: int = 1) -> _BadRow:
    if low < least:
        return _BadRow(
            f"prices must be {'positive' if least else 'zero or more'}: {row_prices} (a "
            "zero or negative row: an export's gap, or a spread or adjusted series the "
            "robot cannot trade)"
        )
    return _BadRow(f"prices too large: {row_prices} (over 2**63 - 1 ticks)")


_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?=$|[ T])(.*)$")


def undotted(text: str) -> str:
    """``DD.MM.YYYY`` (or ``DD.MM.YY``: this century), as Russian-locale exports
    write dates, then whatever follows, as ISO ``YYYY-MM-DD...``; other text as is."""
    match = _DOTTED.match(text)
    if match is None:
        return text
    day, month, year, rest = match.groups()
    year = f"20{year}" if len(year) == 2 else year
    return f"{year}-{int(month):02d}-{int(day):02d}{rest}"


def parse_time(text: str, tz: dt.tzinfo) -> int:
    """One time cell as UTC nanoseconds: ISO-8601, ``YYYYMMDD``, ``DD.MM.YYYY``
    (with a time after it or not) or epoch."""
    text = text.strip()
    if text.isdigit():
        if len(text) == 8 and text[:2] in ("19", "20"):
            return iso_to_ns(f"{text[:4]}-{text[4:6]}-{text[6:]}", tz)
        value = int(text)
        if value < EPOCH_FLOOR:  # 261201 (YYMMDD), 01122026 (DDMMYYYY): not epoch times
            raise _BadRow(
                f"{text!r} is neither a date (YYYYMMDD) nor an epoch time; "
                "write the year in full (YYYYMMDD or YYYY-MM-DD)"
            )
        for limit, scale in ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3)):
            if value < limit:
                return value * scale
        try:
            return in_range(value)
        except ValueError as exc:
            raise _BadRow(f"{text!r} as epoch nanoseconds is {exc}") from None
    text = undotted(text)
    extra = 0
    if "." in text or "," in text:  # a fraction of a second, kept to the nanosecond
        whole, dot, frac = text.partition(".")
        if dot and whole.isdigit() and frac.isdigit() and EPOCH_FLOOR <= int(whole) < 10**11:
            return int(whole) * 10**9 + int(frac[:9].ljust(9, "0"))  # epoch seconds
        match = _FRACTION.match(text)
        if match:
            text = match.group(1) + match.group(3)
            extra = int(match.group(2)[:9].ljust(9, "0"))
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _BadRow(f"{text!r} is not a time (ISO-8601, YYYYMMDD, DD.MM.YYYY or epoch)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    try:
        return in_range((value - _EPOCH) // _MICROSECOND * 1000 + extra)
    except ValueError as exc:
        raise _BadRow(f"{text!r} is {exc}") from None


def fast_time_parser(tz: dt.tzinfo) -> Callable[[str], int]:
    """:func:`parse_time` for a file's cells, the common ``YYYY-MM-DD HH:MM:SS``
    (or ``T``) form taken apart by hand: the date converted once per day, the
    clock looked up once per distinct value. ``tz`` is a fixed offset (all
    :func:`parse_tz` makes), so a day's midnight plus the clock is exactly what
    ``datetime.fromisoformat`` gives; any other cell goes to :func:`parse_time`."""
    last_day = ""
    midnight = 0
    clocks: dict[str, int] = {}

    def parse(text: str) -> int:
        nonlocal last_day, midnight
        if len(text) == 19 and text[10] in " T" and text[13] == ":" and text[16] == ":":
            day = text[:10]
            if day != last_day:
                try:
                    midnight = iso_to_ns(undotted(day) + "T00:00:00", tz)
                except ValueError:
                    return parse_time(text, tz)
                last_day = day
            clock = text[11:]
            ns = clocks.get(clock)
            if ns is None:
                hh, mm, ss = clock[:2], clock[3:5], clock[6:]
                if not (clock.isascii() and hh.isdigit() and mm.isdigit() and ss.isdigit()):
                    return parse_time(text, tz)
                h, m, sec = int(hh), int(mm), int(ss)
                if h > 23 or m > 59 or sec > 59:
                    return parse_time(text, tz)  # it explains what is wrong
                ns = (h * 3600 + m * 60 + sec) * 1_000_000_000
                if len(clocks) < 100_000:
                    clocks[clock] = ns
            return midnight + ns
        return parse_time(text, tz)

    return parse


def parse_date_and_time(day: str, clock: str, tz: dt.tzinfo) -> int:
    """Separate ``YYYYMMDD`` (or ``YYYY-MM-DD``) and time cells: ``HHMMSS``,
    ``HHMM`` (Finam's ЧЧММ), ``HH:MM:SS`` or ``HH:MM`` (hours may lose their
    leading zero), with an optional fraction of a second (after a point or a
    comma, as a Russian locale writes it)."""
    if len(day.strip()) > 10:  # a whole date and time already
        return parse_time(day, tz)
    day, shown = undotted(day.strip()).replace("-", ""), clock.strip()
    if not (len(day) == 8 and day.isdigit()):
        raise _BadRow(f"date {day!r} is not YYYYMMDD or YYYY-MM-DD")
    hms, _, frac = shown.replace(",", ".", 1).partition(".")  # 10:00:00,500 too
    hms = _clock_digits(hms)
    if hms is None or (frac and not frac.isdigit()):
        raise _BadRow(f"time {shown!r} is not HHMMSS, HHMM, HH:MM:SS or HH:MM")
    clock = hms
    text = f"{day[:4]}-{day[4:6]}-{day[6:]}T{clock[:2]}:{clock[2:4]}:{clock[4:]}"
    try:
        return iso_to_ns(text, tz) + (int(frac[:9].ljust(9, "0")) if frac else 0)
    except ValueError:
        raise _BadRow(f"{day} {clock} is not a valid date and time") from None


def _clock_digits(text: str) -> str | None:
    """A time of day as its six digits ``HHMMSS``, or None. With colons, hours
    and minutes (``HH:MM``) or seconds too; without, six digits, five (an hour
    without its zero: ``93000``), four (``HHMM``: ``1000`` is ten o'clock, not
    ten minutes past midnight) or three (``930``)."""
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
            return None
        hour, *rest = parts
        if not (1 <= len(hour) <= 2 and all(len(p) == 2 for p in rest)):
            return None
        return hour.zfill(2) + "".join(rest) + ("00" if len(rest) == 1 else "")
    if not text.isdigit() or not 3 <= len(text) <= 6:
        return None
    return text.zfill(6) if len(text) >= 5 else text.zfill(4) + "00"


def decimal_comma(text: str, *, said: bool) -> str:
    """``74,35`` as ``74.35``. Unless the file ``said`` its decimal mark is the
    comma, one before exactly three digits is refused: ``92,000`` may be 92 or
    92000 (a thousands group), and read as 92 it would land on the tick grid
    without a word."""
    whole, _, frac = text.strip().partition(",")
    if not said and len(frac) == 3 and frac.isdigit():
        raise _BadRow(
            f"{text!r}: a decimal comma or a thousands group? write it without grouping, "
            "or set params.decimal: ',' (backtest.decimal for --data files)"
        )
    return f"{whole}.{frac}"


def text_encoding(path: Path, said: str) -> str:
    """``said``, but ``utf-16`` for a file read as ``utf-8-sig`` (the default)
    that starts with a UTF-16 byte order mark: Excel's "Unicode Text" export,
    tab-separated. Read as UTF-8 it was refused with a hint to try cp1251, which
    takes any bytes and read the header as garbage."""
    if codecs.lookup(said).name != "utf-8-sig":
        return said
    with open(path, "rb") as f:
        head = f.read(2)
    return "utf-16" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else said


def sniff_delimiter(header: str) -> str:
    """The field separator a header line uses: the most frequent of ``,``, ``;``,
    tab and ``|`` (``,`` on a tie or when there is none). Finam lets the user
    pick the separator and Excel in Russian locales writes ``;``; ``--data``
    files have no params to say so."""
    best = max(_SEPARATORS, key=header.count)
    return best if header.count(best) else ","


def ns_to_iso(ns: int) -> str:
    """UTC nanoseconds as ISO-8601, for messages."""
    seconds, frac = divmod(ns, 10**9)
    when = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{when}.{frac:09d}Z" if frac else f"{when}Z"


class CsvFeed(Feed):
    """Bars or ticks of a CSV file; see the module docstring for the columns."""

    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "CSV file, relative to the robot file's folder, or absolute",
            },
            "symbol": {
                "type": "string",
                "minLength": 1,
                "description": "robot symbol every row belongs to (wins over a Symbol column)",
            },
            "kind": {"enum": ["bar", "tick"], "default": "bar", "description": "bars or ticks"},
            "tz": {
                "type": "string",
                "pattern": ZONE_PATTERN,
                "default": "UTC",
                "description": "time zone of times without an offset: UTC, MSK, +03:00",
            },
            "columns": {
                "type": "object",
                "additionalProperties": {"enum": sorted(STANDARD)},
                "description": "rename columns: {file column: standard name}",
            },
            "time_is": {
                "enum": ["close", "open"],
                "default": "close",
                "description": "whether a bar's time is its close or its open time",
            },
            "interval": {
                "type": "string",
                "pattern": "^[0-9]+(ms|s|m|h|d)$",
                "description": "bar length, needed with time_is: open",
            },
            "encoding": {
                "type": "string",
                "default": "utf-8-sig",
                "description": "text encoding of the file, e.g. cp1251 for some Russian exports",
            },
            "delimiter": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1,
                "description": "field separator (default: the one the header line uses "
                "of , ; tab |, else ,)",
            },
            "decimal": {
                "enum": [".", ","],
                "description": "the prices' decimal mark (default: '.', and in a file not "
                "separated by commas also ',' -- but for a comma before exactly three "
                "digits, which may group thousands: say ',' for those)",
            },
            **PACING_SCHEMA,
        },
    }

    def file_path(self) -> Path:
        """The data file: ``path`` as given when absolute, else under ``base_dir``."""
        return _resolve(self.params["path"], self.base_dir)

    @classmethod
    def preflight(cls, params, base_dir):
        path = _resolve(params["path"], base_dir)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            hint = "a relative path is taken from the robot file's folder"
            return [(("path",), f"cannot open {path}: {exc.strerror}", hint)]
        try:  # a header it cannot read: found as the feed started, it left a run unfinished
            for _ in cls(params, {}, base_dir=base_dir)._read(header_only=True):
                pass
        except ConfigError as exc:
            hint = "docs/feeds.md lists the columns; rename others with params.columns"
            return [(("path",), str(exc), hint)]
        return []

    def error(self, line: int | None, message: str) -> ConfigError:
        """A :class:`ConfigError` located at ``file:line``."""
        problem = ConfigProblem(str(self.file_path()), line, "", message)
        return ConfigError([problem])

    def events(self) -> Iterator[Bar | Tick]:
        """Yield one event per data row, checking time order."""
        return self._read()

    def _read(self, header_only: bool = False) -> Iterator[Bar | Tick]:
        """:meth:`events`; with ``header_only``, none: the header line is read
        and its columns checked (:meth:`preflight`). A subclass reading another
        format (Parquet) reads its own."""
        path = self.file_path()
        try:
            encoding = self.params.get("encoding", "utf-8-sig")
            encoding = text_encoding(path, encoding)
            handle = open(path, newline="", encoding=encoding)  # noqa: SIM115
        except OSError as exc:
            raise self.error(None, f"cannot open CSV feed: {exc.strerror}") from None
        except LookupError:
            raise self.error(None, f"unknown encoding {encoding!r}") from None
        with handle:
            try:
                first = handle.readline()
            except UnicodeDecodeError as exc:
                raise self._undecodable(1, exc) from None
            delimiter = self.params.get("delimiter") or sniff_delimiter(first)
            reader = csv.reader(chain((first,), handle) if first else (), delimiter=delimiter)
            try:
                header = next(reader, None)
            except UnicodeDecodeError as exc:
                raise self._undecodable(1, exc) from None
            except csv.Error as exc:
                raise self.error(1, f"not a CSV file: {exc}") from None
            if header is None:
                raise self.error(1, "empty file: expected a header line (see docs/feeds.md)")
            self._header = header
            cols = self._columns(header)
            if header_only:
                return
            self._delimiter = delimiter
            make, width = self._maker(cols)
            yield from self._rows(reader, make, width, cols)

    def _rows(self, reader: Any, make: Callable, width: int, cols: dict[str, int]):
        previous = -(1 << 63)
        unchecked = True  # the first time's zone (see msk_history)
        bars = self.params.get("kind", "bar") == "bar"
        first = None  # the first event at time ``previous``
        same_time: list[str] = []  # symbols of the bars at that time, once there are two
        fields = len(self._header)
        try:
            for row in reader:
                if len(row) != fields:
                    if len(row) < width:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # a blank line
                        raise self.error(
                            reader.line_num, f"expected at least {width} fields, found {len(row)}"
                        )
                    if len(row) > fields and any(cell.strip() for cell in row[fields:]):
                        raise self._too_long(reader.line_num, len(row), fields)
                try:
                    event = make(row)
                except ValueError as exc:
                    raise self._explain(reader.line_num, row, cols, exc) from None
                if event.ts > previous:
                    if unchecked:  # the data's first time
                        unchecked = False
                        said = msk_history(self.params.get("tz"), event.ts)
                        if said is not None:
                            log.warning("%s: %s", self.file_path(), said)
                    previous = event.ts
                    first = event
                elif event.ts < previous:
                    raise self.error(
                        reader.line_num,
                        f"time goes backwards ({ns_to_iso(event.ts)} after "
                        f"{ns_to_iso(previous)}): rows must be in time order",
                    )
                elif bars:
                    if first is not None:  # the second event at this time
                        same_time = [first.symbol]
                        first = None
                    self._one_bar_a_time(reader.line_num, event, same_time)
                yield event
            self._report_off_tick()
        except UnicodeDecodeError as exc:
            raise self._undecodable(reader.line_num + 1, exc) from None
        except csv.Error as exc:
            raise self.error(reader.line_num, f"unreadable line: {exc}") from None

    def _too_long(self, line: int, found: int, fields: int) -> ConfigError:
        """A row with more cells than the header has names: its cells do not line
        up with the columns. Taken as it was, an unquoted decimal comma in the
        last price (``...,92005,5,100``) made the close 92005 and the volume 5."""
        return self.error(
            line,
            f"{found} fields, but the header names {fields}: an unquoted decimal comma "
            f"(92005,5) or a stray {self._delimiter!r}? the cells would not be under "
            "their columns",
        )

    def _one_bar_a_time(self, line: int, bar: Bar, same_time: list[str]) -> None:
        """Refuse a second bar of a symbol at one time: a repeated row (two
        overlapping exports pasted together) that the strategy would see twice.
        Ticks may share a time."""
        if bar.symbol in same_time:
            raise self.error(
                line,
                f"a second bar of {bar.symbol} at {ns_to_iso(bar.ts)}: a repeated row? "
                "each bar needs its own time",
            )
        same_time.append(bar.symbol)

    def _undecodable(self, line: int, exc: UnicodeDecodeError) -> ConfigError:
        encoding = self.params.get("encoding", "utf-8-sig")
        return self.error(
            None,
            f"cannot read the file as {encoding} (at or after line {line}: {exc.reason}); "
            "set params.encoding (for --data files: backtest.encoding), e.g. cp1251",
        )

    # -- the header -----------------------------------------------------------

    def _columns(self, header: list[str]) -> dict[str, int]:
        """Standard column name -> index, after ``columns`` renames and aliases."""
        renames = {norm(k): v for k, v in (self.params.get("columns") or {}).items()}
        cols: dict[str, int] = {}
        for index, raw in enumerate(header):
            name = norm(raw)
            name = renames.get(name, ALIASES.get(name, name))
            if name in cols and name in STANDARD:
                raise self.error(1, f"two columns give {name!r}: rename one with params.columns")
            cols.setdefault(name, index)
        kind = self.params.get("kind", "bar")
        missing = [c for c in REQUIRED[kind] if c not in cols]
        if not any(n in cols for n in TIME_NAMES):
            missing.insert(0, "date")
        if missing:
            first = ",".join(header).lstrip()
            if first[:1] in ("{", "["):  # JSON lines, say: said as such, not as columns
                raise self.error(
                    1, "this is JSON, not CSV: the csv feed and --data read CSV files "
                    "(with a header line of column names; see docs/feeds.md)",
                )  # fmt: skip
            found = ", ".join(norm(h) for h in header) or "none"
            raise self.error(
                1,
                f"missing column(s) {', '.join(missing)} for kind {kind}; found {found} "
                f"({_header_hint(header)}see docs/feeds.md)",
            )
        return cols

    def _maker(self, cols: dict[str, int]) -> tuple[Callable[[list[str]], Bar | Tick], int]:
        """A fast row -> event function and the number of fields it needs."""
        self._symbol_of = symbol_of = self._symbol_reader(cols)
        self._when = when = self._time_reader(cols)
        instruments = self.instruments
        vol = cols.get("volume")
        width = max(i for k, i in cols.items() if k in STANDARD) + 1
        self._ticks = ticks = self._tick_readers()  # _explain reads a bad row's cells alike
        volume_of = self._volume
        if self.params.get("kind", "bar") == "bar":
            o, h, lo, c = (cols[k] for k in REQUIRED["bar"])

            # one-tick instruments: prices written as whole numbers are the ticks
            whole = {s: inst.to_ticks("1") == 1 for s, inst in instruments.items()}

            def make_bar(row: list[str]) -> Bar:
                sym = symbol_of(row)
                a, b, d, e = row[o], row[h], row[lo], row[c]
                if whole[sym] and a.isdigit() and b.isdigit() and d.isdigit() and e.isdigit():
                    op, high, low, close = int(a), int(b), int(d), int(e)
                else:
                    tt = ticks[sym]
                    op, high, low, close = tt(a), tt(b), tt(d), tt(e)
                volume = volume_of(row[vol]) if vol is not None else 0
                if not (low <= op <= high and low <= close <= high):
                    raise _BadRow(
                        f"inconsistent bar: open {row[o]}, high {row[h]}, low {row[lo]}, "
                        f"close {row[c]} (need low <= open, close <= high)"
                    )
                if low <= 0 or high >= _TOO_BIG:
                    shown = f"open {row[o]}, high {row[h]}, low {row[lo]}, close {row[c]}"
                    raise _prices_out_of_range(shown, low, high)
                return Bar(sym, when(row), op, high, low, close, volume)

            return make_bar, width
        p, bid, ask = cols["price"], cols.get("bid"), cols.get("ask")

        def make_tick(row: list[str]) -> Tick:
            sym = symbol_of(row)
            tt = ticks[sym]
            tick = Tick(
                sym,
                when(row),
                tt(row[p]),  # 0: a quote, no trade
                volume_of(row[vol]) if vol is not None else 0,
                tt(row[bid]) if bid is not None and row[bid].strip() else 0,
                tt(row[ask]) if ask is not None and row[ask].strip() else 0,
            )
            low = min(tick.price, tick.bid, tick.ask)
            high = max(tick.price, tick.bid, tick.ask)
            if low < 0 or high >= _TOO_BIG:
                shown = f"price {row[p]}"
                if bid is not None:
                    shown += f", bid {row[bid]}"
                if ask is not None:
                    shown += f", ask {row[ask]}"
                raise _prices_out_of_range(shown, low, high, least=0)
            return tick

        return make_tick, width

    def _tick_readers(self) -> dict[str, Callable[[str], int]]:
        """Per symbol, price text -> ticks (and ``_volume``, volume text -> lots,
        by the same decimal mark). A price off the tick grid is rounded
        half-even to the nearest tick and counted: many such prices usually
        mean a wrong ``tick_size``, which :meth:`_report_off_tick` says once
        the file is read."""
        self._off_tick: dict[str, list] = {}  # symbol -> [count, the first such price]

        # a file whose fields are not separated by commas may use the comma as its
        # decimal point: Russian-locale exports (Excel, Finam) write 74,35
        mark = self.params.get("decimal")
        said = mark == ","
        comma = said or (mark is None and getattr(self, "_delimiter", ",") != ",")

        def reader(inst: Any) -> Callable[[str], int]:
            to_ticks, symbol = inst.to_ticks, inst.symbol

            def ticks(text: str) -> int:
                if comma and "," in text:
                    text = decimal_comma(text, said=said)
                try:
                    return to_ticks(text, strict=True)
                except ValueError:
                    rounded = to_ticks(text)  # not a price at all: raises again
                    seen = self._off_tick.setdefault(symbol, [0, text])
                    seen[0] += 1
                    return rounded

            return ticks

        def volume(text: str) -> int:  # "100,0" in such a file: 100
            if comma and "," in text:
                return parse_volume(decimal_comma(text, said=said), text)
            return parse_volume(text)

        self._volume = volume
        return {s: reader(inst) for s, inst in self.instruments.items()}

    def _report_off_tick(self) -> None:
        for symbol, (count, first) in sorted(self._off_tick.items()):
            tick = self.instruments[symbol].tick_size
            log.warning(
                "%s: %d price(s) of %s were not multiples of its tick %s and were rounded to "
                "the nearest tick (the first: %s); is symbols.%s.tick_size right?%s",
                self.file_path().name,
                count,
                symbol,
                tick,
                first.strip(),
                symbol,
                _grouped_hint(first),
            )

    def _symbol_reader(self, cols: dict[str, int]) -> Callable[[list[str]], str]:
        instruments = self.instruments
        known = ", ".join(sorted(instruments)) or "none"
        fixed = self.params.get("symbol")
        col = cols.get("symbol")
        if fixed is not None:
            if fixed not in instruments:
                raise self.error(
                    None, f"params.symbol {fixed!r} is not one of the robot's symbols ({known})"
                )
            if col is None:
                return lambda row: fixed
            others = frozenset(instruments) - {fixed}
            first = None  # the instrument the first row names: every row must

            def given(row: list[str]) -> str:
                """The file's symbol -- unless a row names another of the robot's
                symbols, or another instrument than the first row: a file of
                several instruments given as one would trade one's prices as the
                other's (a one-symbol robot's too, which has no other symbol)."""
                nonlocal first
                name = row[col].strip()
                if name == first:
                    return fixed
                if name in others:
                    raise _BadRow(
                        f"symbol {name!r}: this file is read as {fixed}'s (params.symbol, "
                        f"or --data {fixed}=FILE), and {name} is another of the robot's "
                        "symbols; a file of several symbols needs no symbol given"
                    )
                if first is not None:
                    raise _BadRow(
                        f"symbol {name!r} after {first!r}: this file is read as {fixed}'s "
                        f"(params.symbol, or --data {fixed}=FILE), and it holds several "
                        "instruments; give a file of one (one contract under two names, "
                        "rolled over: without its symbol column)"
                    )
                first = name
                return fixed

            return given
        if col is None:
            if len(instruments) != 1:
                raise self.error(
                    1,
                    "no Symbol column: set params.symbol to the robot symbol this file is for, "
                    "or SYMBOL=FILE (backtest --data SYMBOL=FILE, feed publish SYMBOL=FILE)",
                )
            only = next(iter(instruments))
            return lambda row: only

        def read(row: list[str]) -> str:
            name = row[col].strip()
            if name not in instruments:
                raise _BadRow(
                    f"symbol {name!r} is not one of the robot's symbols ({known}); a file "
                    "of several instruments may hold only the robot's, and a file of one "
                    "instrument named otherwise (an exchange ticker) needs params.symbol, "
                    "or SYMBOL=FILE (backtest --data SYMBOL=FILE, feed publish SYMBOL=FILE)"
                )
            return name

        return read

    def _tz_and_shift(self) -> tuple[dt.tzinfo, int]:
        """The zone of times without an offset, and what to add to a bar's time
        (its length, when the file stamps bars at their open)."""
        try:
            tz = parse_tz(self.params.get("tz"))
            shift = 0
            if self.params.get("time_is") == "open":
                if "interval" not in self.params:
                    raise ValueError("time_is: open needs params.interval (the bar length)")
                shift = interval_ns(self.params["interval"])
        except ValueError as exc:
            raise self.error(None, str(exc)) from None
        return tz, shift

    @staticmethod
    def _split_time(cols: dict[str, int]) -> bool:
        """Whether the time is a Date column and a separate Time column."""
        return "date" in cols and "time" in cols and not ("datetime" in cols or "timestamp" in cols)

    @staticmethod
    def _time_column(cols: dict[str, int]) -> int:
        return next(cols[n] for n in TIME_NAMES if n in cols)

    def _time_reader(self, cols: dict[str, int]) -> Callable[[list[str]], int]:
        tz, shift = self._tz_and_shift()
        header = self._header
        if self._split_time(cols):
            d, t = cols["date"], cols["time"]
            self._time_label = f"columns {header[d].strip()} and {header[t].strip()}"
            return lambda row: parse_date_and_time(row[d], row[t], tz) + shift
        col = self._time_column(cols)
        self._time_label = f"column {header[col].strip()}"
        parse = fast_time_parser(tz)
        if shift:
            return lambda row: parse(row[col]) + shift
        return lambda row: parse(row[col])

    def _explain(self, line: int, row: list[str], cols: dict[str, int], exc: Exception):
        """Find which cell of a failed row is wrong; a ConfigError saying so."""
        try:
            symbol = self._symbol_of(row)
        except ValueError as err:
            return self.error(line, str(err))
        to_ticks = self._ticks[symbol]  # as the row was read: decimal comma too
        for key in ("open", "high", "low", "close", "price", "bid", "ask", "volume"):
            index = cols.get(key)
            if index is None:
                continue
            cell = row[index]
            try:
                if key == "volume":
                    self._volume(cell)
                elif cell.strip() or key not in ("bid", "ask"):
                    to_ticks(cell)
            except ValueError as err:
                said = key == "volume" or isinstance(err, _BadRow)
                what = err if said else f"{cell!r} is not a price{self._comma_hint(cell)}"
                return self.error(line, f"column {self._header[index].strip()}: {what}")
        try:
            self._when(row)
        except ValueError as err:
            return self.error(line, f"{self._time_label}: {err}")
        return self.error(line, str(exc))

    def _comma_hint(self, cell: str) -> str:
        """Why a decimal comma was not read as one: in a file separated by commas
        it is read only when ``decimal`` says so (``"92000,5"``, quoted)."""
        if "decimal" in self.params or getattr(self, "_delimiter", None) != ",":
            return ""  # a Parquet file's cells have no delimiter
        if not (isinstance(cell, str) and "," in cell):
            return ""
        return (
            " (a decimal comma in a file separated by commas: set params.decimal: ',', "
            "backtest.decimal for --data files)"
        )


_DOT_GROUPED = re.compile(r"\d{1,3}(\.\d{3})+")


def _grouped_hint(price: str) -> str:
    """A price such as ``92.015`` may be 92015 with its thousands grouped by a
    point (an export option of Finam's, and a Russian locale's with a decimal
    comma): read as 92.015, every price of the file is a thousand times small,
    and the tick_size the warning asks about is not the cause."""
    if not _DOT_GROUPED.fullmatch(price.strip()):
        return ""
    return (
        f" Or does the file group thousands with a point ({price.strip()} for "
        f"{price.strip().replace('.', '')})? Export it without a thousands separator"
    )


def _header_hint(header: list[str]) -> str:
    """What a header without the needed columns most likely is: a first line
    of data (an export saved without its header line), or one field (fields
    separated by a character the header sniffing does not try, such as a space)."""
    digits = sum(cell.strip().replace(".", "").replace(":", "").isdigit() for cell in header)
    if len(header) > 1 and digits * 2 >= len(header):
        return "the first line looks like data: the file needs a header line of column names; "
    if len(header) == 1 and " " in header[0].strip():
        return (
            "one field: separated by spaces? set params.delimiter (backtest.delimiter for "
            "--data files); "
        )
    return ""


def _resolve(path: str, base_dir: Path) -> Path:
    found = Path(path)
    return found if found.is_absolute() else base_dir / found
