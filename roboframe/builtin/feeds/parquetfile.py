"""Bars or ticks from a Parquet file, read one row group batch at a time.

The same columns, names, aliases, renames, ``symbol``, ``kind``, ``tz`` and
``time_is`` rules as the CSV feed (:mod:`roboframe.builtin.feeds.csvfile`);
only the cells are typed:

- the time column may be an Arrow ``timestamp`` (any unit; one without a time
  zone is in ``tz``), a ``date``, a string (ISO-8601, ``YYYYMMDD``) or an
  integer epoch (seconds to nanoseconds, told apart by magnitude), or a Date
  and a Time column as in MOEX exports;
- prices may be integers, decimals or floats. A float is taken by its
  shortest decimal form (``92195.5``, not ``92195.499999...``) and rounded
  half-even to the instrument's tick, exactly as the same number written in
  a CSV file;
- volumes must be whole numbers; null means 0 (unknown).

Reading needs ``pyarrow`` (``pip install 'roboframe[parquet]'``). Memory stays
flat: one batch of rows is held at a time, never the whole file. Rows must be
in time order; a bad row stops the feed with a
:class:`~roboframe.errors.ConfigError` naming the file, the row (1 is the
first) and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any

from roboframe.builtin.feeds.csvfile import STANDARD, CsvFeed, _BadRow
from roboframe.builtin.feeds.timeparse import tz_offset_ns
from roboframe.core.events import Bar, Tick
from roboframe.errors import ConfigError, ConfigProblem

BATCH_ROWS = 8_192
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "reading Parquet files needs pyarrow: pip install 'roboframe[parquet]'"
        ) from None
    return pa, pq


class _Rows:
    """Rows of every batch in turn, counting them (``line_num``, as csv.reader does)."""

    def __init__(self, batches: Iterable[Iterable[tuple]]) -> None:
        self._batches = batches
        self.line_num = 0

    def __iter__(self) -> Iterator[tuple]:
        for rows in self._batches:
            for row in rows:
                self.line_num += 1
                yield row


class ParquetFeed(CsvFeed):
    """Bars or ticks of a Parquet file; see the module docstring for the columns."""

    params_schema = {
        **CsvFeed.params_schema,
        "properties": {
            key: value
            for key, value in CsvFeed.params_schema["properties"].items()
            if key not in ("encoding", "delimiter")
        }
        | {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "Parquet file, relative to the robot file's folder, or absolute",
            }
        },
    }

    def error(self, line: int | None, message: str) -> ConfigError:
        """A :class:`ConfigError` naming the file and the row (1 is the first)."""
        where = f"row {line}: " if line else ""
        return ConfigError([ConfigProblem(str(self.file_path()), None, "", where + message)])

    def _read(self, header_only: bool = False) -> Iterator[Bar | Tick]:
        pa, pq = _pyarrow()
        path = self.file_path()
        try:
            source = pq.ParquetFile(path)
        except OSError as exc:
            raise self.error(None, f"cannot open Parquet feed: {exc.strerror or exc}") from None
        except pa.ArrowException as exc:
            raise self.error(None, f"not a Parquet file: {exc}") from None
        with source:
            schema = source.schema_arrow
            self._header = header = list(schema.names)
            cols = self._columns(header)
            if header_only:
                return
            used = sorted({i for k, i in cols.items() if k in STANDARD})
            self._types = {i: schema.field(i).type for i in used}
            self._floats = {i: pa.types.is_floating(t) for i, t in self._types.items()}
            make, width = self._maker(cols)
            batches = source.iter_batches(batch_size=BATCH_ROWS, columns=[header[i] for i in used])
            rows = _Rows(self._tuples(batch, used, width) for batch in batches)
            try:
                yield from self._rows(rows, make, width, cols)
            except pa.ArrowException as exc:
                raise self.error(rows.line_num + 1, f"unreadable: {exc}") from None

    def _tuples(self, batch: Any, used: list[int], width: int) -> Iterator[tuple]:
        """One batch as row tuples laid out like a CSV row: every column read at
        its header index, text cells for the CSV rules, ``None`` elsewhere."""
        columns: list[Any] = [repeat(None)] * width
        for position, index in enumerate(used):
            columns[index] = self._cells(batch.column(position), index)
        return zip(*columns, strict=False)

    def _cells(self, array: Any, index: int) -> list:
        if index == self._ns_column:
            return self._nanoseconds(array)
        values = array.to_pylist()
        if self._floats[index]:  # 92195.0 as "92195": the CSV rules' fast whole-tick path
            return [
                "" if v is None else (str(int(v)) if v.is_integer() else repr(v)) for v in values
            ]
        return ["" if v is None else str(v) for v in values]

    # -- time -----------------------------------------------------------------

    _ns_column = -1  # the timestamp column, read as nanoseconds
    _ns_offset = 0  # to subtract from a timestamp without a zone (it is in tz)
    _ns_scale = 1

    def _time_reader(self, cols: dict[str, int]) -> Callable[[tuple], int]:
        pa, _ = _pyarrow()
        if self._split_time(cols):
            return super()._time_reader(cols)
        col = self._time_column(cols)
        kind = self._types[col]
        if not pa.types.is_timestamp(kind):
            return super()._time_reader(cols)  # text, dates and epoch numbers as in CSV
        tz, shift = self._tz_and_shift()
        self._ns_column = col
        self._ns_scale = _NS_PER_UNIT[kind.unit]
        if kind.tz is None:
            self._ns_offset = tz_offset_ns(tz)
        self._time_label = f"column {self._header[col]}"

        def when(row: tuple) -> int:
            ns = row[col]
            if ns is None:
                raise _BadRow("empty time")
            return ns + shift

        return when

    def _nanoseconds(self, array: Any) -> list:
        pa, _ = _pyarrow()
        scale, offset = self._ns_scale, self._ns_offset
        ints = array.cast(pa.int64()).to_pylist()
        if scale == 1 and not offset:
            return ints
        return [None if v is None else v * scale - offset for v in ints]
