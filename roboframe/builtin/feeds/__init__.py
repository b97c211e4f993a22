"""Built-in feeds, registered like any plugin's: ``synthetic``, ``csv``, ``parquet``
and ``zmq``."""

from __future__ import annotations

from collections.abc import Callable

from roboframe.builtin.feeds.csvfile import CsvFeed
from roboframe.builtin.feeds.parquetfile import ParquetFeed
from roboframe.builtin.feeds.synthetic import SyntheticFeed
from roboframe.builtin.feeds.zmqsub import ZmqFeed
from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_feeds(register: Callable[[str, type], None]) -> None:
    register("synthetic", SyntheticFeed)
    register("csv", CsvFeed)
    register("parquet", ParquetFeed)
    register("zmq", ZmqFeed)
