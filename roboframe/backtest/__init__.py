"""Backtests: the robot's own kernel over history, in step with the paper exchange."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any

from roboframe.backtest.data import FILE_FEEDS, data_id, file_events, window
from roboframe.backtest.engine import Backtest, BacktestResult
from roboframe.builtin.feeds.timeparse import parse_tz
from roboframe.config.schema import READING
from roboframe.core.feed import well_formed, what_is_wrong
from roboframe.errors import ConfigError, RoboframeError, blamed
from roboframe.plugins import BUILTIN_PLUGINS

__all__ = ["Backtest", "BacktestResult", "feed_events", "run_backtest"]

MAX_CASH = Decimal(10**30)


def run_backtest(
    spec: Any,
    *,
    data: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    cash: Decimal | None = None,
    fill_at: str | None = None,
    journal_dir: Path | None = None,
    journal: bool = True,
    registry: Any = None,
    progress=None,
    keep_trades: bool = False,
) -> BacktestResult:
    """Backtest ``spec`` on ``data`` files (or on its own feed when none are given)."""
    settings = spec.raw.get("backtest", {})
    given = "--cash" if cash is not None else "backtest.cash"
    cash = Decimal(str(cash if cash is not None else settings.get("cash", 1_000_000)))
    if not (cash.is_finite() and 0 < cash <= MAX_CASH):  # equity is a float: 1e400 is inf
        raise ConfigError(f"{given}: must be a positive amount up to 1e30, got {cash}")
    fill_at = fill_at or backtest_fill_at(spec)
    events, ident = feed_events(spec, data, registry=registry, with_id=True, finite=not end)
    zone = (data_params(spec) if data else spec.feed.params).get("tz") or "UTC"
    if start or end:
        events = window(events, start, end, parse_tz(zone))
        ident += f"|{start or ''}..{end or ''}"
    events = _not_empty(events, data or [f"feed {spec.feed.plugin}"], start, end, zone)
    bt = Backtest(
        spec,
        events,
        cash=cash,
        fill_at=fill_at,
        data_id=ident,
        journal_dir=journal_dir,
        journal=journal,
        registry=registry,
        progress=progress,
        keep_trades=keep_trades,
    )
    return bt.run()


def backtest_fill_at(spec: Any) -> str:
    """How the robot file says a backtest fills market orders: ``backtest.fill_at``
    or its paper gateway's ``fill_at`` -- ``close`` when either says so (both
    default to ``next``; a robot run on the paper gateway at the close must
    backtest the same way, as it does with its commission and slippage)."""
    said = [(spec.raw.get("backtest") or {}).get("fill_at")]
    if spec.gateway.plugin == "paper":
        said.append(spec.gateway.params.get("fill_at"))
    return "close" if "close" in said else "next"


def data_params(spec: Any) -> dict[str, Any]:
    """How ``--data`` files are read: as the robot's own file feed reads its
    file (columns, time_is, encoding ...), with ``backtest.kind``/``tz`` over
    that when the robot file sets them. A trader who told the csv feed once
    that the export's times are bar opens gets the same bars from --data."""
    params = {}
    if spec.feed.plugin in FILE_FEEDS:
        params = {k: v for k, v in spec.feed.params.items() if k in READING}
    settings = spec.raw.get("backtest") or {}
    params.update({key: settings[key] for key in READING if key in settings})
    return params


def _not_empty(events, sources: list[str], start: str | None, end: str | None, zone: str):
    """``events``, or a ConfigError when there are none: statistics of no data
    (a mistyped ``--from``, a header-only file) would look like a robot that
    never traded. Checked before the journal is opened, so none is left behind."""
    events = iter(events)
    first = next(events, None)
    if first is not None:
        return chain((first,), events)
    span = "".join(f" {word} {when}" for word, when in (("from", start), ("to", end)) if when)
    where = f"{span} ({zone})" if span else ""
    raise ConfigError(f"no market events to backtest in {', '.join(sources)}{where}")


def feed_events(
    spec: Any,
    data: list[str] | None,
    *,
    registry: Any = None,
    with_id: bool = False,
    finite: bool = False,
):
    """The robot's history: ``data`` files merged in time order, or its own feed.

    ``finite`` refuses an own feed that never ends (a backtest without ``--to``).
    """
    instruments = dict(spec.symbols)
    if data:
        events = file_events(data, instruments, data_params(spec))
        ident = data_id(data) if with_id else ""  # it reads every file whole: only if asked
    else:
        events, ident = _own_feed(spec, registry, instruments, finite)
        if with_id:
            ident += _own_file_id(spec)
    return (events, ident) if with_id else events


def _own_file_id(spec: Any) -> str:
    """The content of the file the robot's own feed reads, as ``--data`` files are
    named in run ids: a price fixed in the file is another run, not a copy."""
    from roboframe.core.feed import robot_dir

    path = spec.feed.params.get("path")
    if not isinstance(path, str):
        return ""
    full = Path(path) if Path(path).is_absolute() else robot_dir(spec) / path
    return "|" + data_id([str(full)])


def _own_feed(spec: Any, registry: Any, instruments: dict, finite: bool):
    from roboframe.core.feed import preflight_feed, robot_dir
    from roboframe.plugins import get_registry

    registry = registry or get_registry()
    found = registry.lookup("feeds", spec.feed.plugin)
    cls, named = found.obj, f"feed {spec.feed.plugin!r} (plugin {found.plugin})"
    if cls.live_only:
        raise ConfigError(f"feed {spec.feed.plugin!r} is live only; give history with --data FILE")
    preflight_feed(spec, registry)
    with blamed(f"{named} on start"):
        feed = cls(dict(spec.feed.params), instruments, base_dir=robot_dir(spec))
    if finite and feed.endless:
        raise ConfigError(
            f"feed {spec.feed.plugin!r} is endless with these params, so a backtest on it "
            "would never finish; give it an end (synthetic: bars: N), --to DATE, "
            "or history with --data FILE"
        )
    events = feed.events()
    if found.plugin not in BUILTIN_PLUGINS:  # the built-in feeds say what is wrong themselves
        events = _blamed_events(events, named)
    return events, f"feed:{spec.feed.plugin}"


def _blamed_events(events: Iterable, named: str) -> Iterator:
    """A plugin feed's events; what it raises names it and the line that raised.
    (Only the feed's own code runs in this frame: the consumer's errors do not.)
    Each event is checked as the live loop's socket checks it: a float or NumPy
    price, a dict for a Bar, a bar whose high is under its low, stopped the
    backtest with a traceback, or passed into a journal no replay could read."""
    with blamed(f"{named} reading its data"):  # our own error below passes through
        for n, event in enumerate(events, start=1):
            if not well_formed(event):
                raise RoboframeError(f"{named}: its event {n} {what_is_wrong(event)}: {event!r}")
            yield event
