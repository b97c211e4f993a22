"""The feed contract: where a robot's market data comes from.

A feed turns some source (a generator, a file, a publisher) into
:class:`~roboframe.core.events.Tick` and :class:`~roboframe.core.events.Bar`
events with exact prices (ticks) and source timestamps. Write one by
subclassing :class:`Feed` and registering it from a plugin::

    class MyFeed(Feed):
        params_schema = {"type": "object", "properties": {"url": {"type": "string"}}}

        def events(self):
            for row in read_somewhere(self.params["url"]):
                inst = self.instruments[row.symbol]
                yield Bar(row.symbol, row.ts, inst.to_ticks(row.o), ...)

A feed is used two ways. A backtest iterates :meth:`events` directly, in the
caller's thread. A live run calls :meth:`messages` in the data-stream thread:
the default encodes :meth:`events`, paces them to ``rate`` events per second
when the robot file asks for it, and joins unpaced events into batches so the
loop pays one socket receive per batch. A feed whose source already speaks the
wire format (the ZeroMQ publisher feed) overrides :meth:`messages` and
forwards bytes untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from roboframe.core import codec
from roboframe.core.events import Bar, Tick
from roboframe.core.instruments import Instrument
from roboframe.core.wellformed import MAX_NUMBER
from roboframe.errors import PluginError, blamed

log = logging.getLogger(__name__)

PACING_SCHEMA = {
    "rate": {
        "type": "number",
        "minimum": 0,
        "description": "live runs only: events per second; 0 sends as fast as the loop takes them",
    },
    "batch": {
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "description": "live runs only: most events per wire message when unpaced",
    },
}


class Feed:
    """Base class of every market-data feed."""

    params_schema: ClassVar[dict] = {"type": "object"}
    """JSON Schema of this feed's ``params``; merged into the robot schema."""

    last_ts: int = 0
    """Source time of the last event :meth:`messages` handed out (for the end-of-feed stop)."""

    live_only: ClassVar[bool] = False
    """True when :meth:`events` cannot be iterated offline (a network feed)."""

    @property
    def endless(self) -> bool:
        """True when :meth:`events` never ends (a backtest on it would never finish)."""
        return False

    def __init__(
        self,
        params: dict[str, Any],
        instruments: dict[str, Instrument],
        *,
        base_dir: Path | None = None,
    ) -> None:
        self.params = params
        self.instruments = instruments
        self.base_dir = base_dir or Path.cwd()

    @classmethod
    def preflight(
        cls, params: dict[str, Any], base_dir: Path
    ) -> list[tuple[tuple, str, str | None]]:
        """What can be known wrong before a run starts (a data file that cannot be
        opened), as ``(field path under feed.params, message, hint)`` problems; the
        caller reports them with the robot file's lines, before anything is written."""
        return []

    # -- to implement ---------------------------------------------------------

    def events(self) -> Iterator[Tick | Bar]:
        """Yield events in time order. Finite feeds simply end."""
        raise NotImplementedError

    # -- optional -------------------------------------------------------------

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        """Yield wire messages for the live loop until the feed ends or ``stop``.

        Each item is one encoded event or :class:`~roboframe.core.events.Batch`.
        """
        self.last_ts = 0
        rate = float(self.params.get("rate", 0) or 0)
        encode = codec.encode
        if rate <= 0:
            size = int(self.params.get("batch", 256))
            chunk: list[bytes] = []
            event = None
            try:
                for event in self.unseen_events():
                    chunk.append(encode(event))
                    if len(chunk) >= size:
                        yield codec.encode_batch(chunk)
                        chunk = []
                        if stop.is_set():
                            return
            except Exception:
                if chunk:  # the events before a broken row still reach the robot
                    self.last_ts = event.ts if event is not None else 0
                    yield codec.encode_batch(chunk)
                raise
            if event is not None:
                self.last_ts = event.ts
            if chunk:
                yield codec.encode_batch(chunk)
            return
        interval = 1.0 / rate
        next_at = time.monotonic()
        for event in self.unseen_events():
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            if stop.is_set():
                return
            self.last_ts = event.ts
            yield encode(event)
            next_at += interval

    # -- resuming ---------------------------------------------------------------

    seen: tuple[int, dict[str, int]] | None = None
    """Where a resumed run stopped in this feed: the last market event's time,
    and how many events of each symbol at that time it had already handled."""

    def resume_after(self, last_ts: int, at_last: dict[str, int]) -> None:
        """Skip what a resumed run has already seen (recorded feeds replay from the start)."""
        self.seen = (last_ts, dict(at_last))

    bad_events: int = 0
    """Events :meth:`checked` dropped."""

    checked_as: str | None = None
    """Set by a live run for a plugin's feed (its name): each event is checked as a
    backtest checks it, and a bad one dropped, counted and logged (see
    :meth:`checked`). The built-in feeds check their data themselves."""

    def checked(self, events: Iterator[Any]) -> Iterator[Tick | Bar]:
        """``events`` without those no wire message can carry or no market has (a
        float price, a bar whose high is under its low, a time in 1970): live
        input, so the run goes on without them -- each counted under ``bad event``
        and logged (the first, then every 1000th) as a backtest states it."""
        for n, event in enumerate(events, start=1):
            if well_formed(event):
                yield event
                continue
            self.bad_events += 1
            if self.bad_events % 1000 == 1:
                log.warning(
                    "%s: its event %d %s: %r; dropped (%d so far)",
                    self.checked_as, n, what_is_wrong(event), event, self.bad_events,
                )  # fmt: skip

    def unseen_events(self) -> Iterator[Tick | Bar]:
        """:meth:`events`, without those a resumed run has already handled."""
        events = self.events()
        if self.checked_as is not None:
            events = self.checked(events)
        if self.seen is None:
            yield from events
            return
        last_ts, at_last = self.seen
        left = dict(at_last)
        for event in events:
            ts = event.ts
            if ts < last_ts:
                continue
            if ts == last_ts and left.get(event.symbol, 0) > 0:
                left[event.symbol] -= 1
                continue
            yield event
            break
        yield from events

    def malformed(self) -> dict[str, int]:
        """Messages this feed dropped itself as malformed, by kind, for ``status``
        and the run summary (next to the loop's own counts). Read from another
        thread while the feed runs: return counts only."""
        return {"bad event": self.bad_events} if self.bad_events else {}

    def close(self) -> None:
        """Release files or sockets. Called once, from the thread that used the feed."""


def robot_dir(spec: Any) -> Path:
    """Where relative paths in a robot file start: the file's folder."""
    return Path(spec.source).parent if spec.source else Path.cwd()


def preflight_feed(spec: Any, registry: Any) -> None:
    """The feed's own checks (its data file opens), before anything is written."""
    from roboframe.config import problems_at_start

    found = registry.lookup("feeds", spec.feed.plugin)
    named = f"feed {spec.feed.plugin!r} (plugin {found.plugin})"
    with blamed(f"{named} checking its params"):
        problems = found.obj.preflight(dict(spec.feed.params), robot_dir(spec))
    if problems:
        located = [(("feed", "params", *path), m, h) for path, m, h in _problems(problems, named)]
        raise problems_at_start(spec, located)


def _problems(problems: Any, named: str) -> list[tuple[tuple, str, str | None]]:
    """A preflight's problems as ``(path, message, hint)``: the path a tuple of keys
    or a dotted string, the hint optional; anything else is the plugin's bug,
    said in words (it unpacked into a traceback, or spelt a field one letter a key)."""
    out = []
    for item in problems if isinstance(problems, list | tuple) else [problems]:
        if isinstance(item, tuple | list) and len(item) in (2, 3):
            path, message, hint = (*item, None)[:3]
            if isinstance(path, str):
                path = tuple(path.split(".")) if path else ()
            if isinstance(path, tuple | list) and isinstance(message, str):
                out.append((tuple(path), message, hint if isinstance(hint, str) else None))
                continue
        raise PluginError(
            f"{named}: preflight returned {item!r}; expected (field path, message, hint) "
            'problems, the path a tuple of keys under feed.params: (("path",), "file '
            'missing", None)'
        )
    return out


def well_formed(event: Any) -> bool:
    """The cheap check of every event: a Bar or Tick of whole non-negative numbers
    in 64 bits, a bar's prices in order, a time past 1970."""
    kind = type(event)
    if kind is Bar:
        fields = (event.ts, event.open, event.high, event.low, event.close, event.volume)
    elif kind is Tick:
        fields = (event.ts, event.price, event.qty, event.bid, event.ask)
    else:
        return False
    if not all(type(v) is int and 0 <= v <= MAX_NUMBER for v in fields) or event.ts < _EPOCH_1971:
        return False
    if kind is Bar:
        low, high = event.low, event.high
        return low <= event.open <= high and low <= event.close <= high
    return True


def what_is_wrong(event: Any) -> str:
    """What is wrong with a plugin feed's event that :func:`well_formed` refused."""
    if type(event) not in (Bar, Tick):
        return (
            f"is a {type(event).__name__}, not a Bar or Tick "
            "(roboframe.core.events; prices in whole ticks: inst.to_ticks(price))"
        )
    try:  # the wire's own check: whole ticks and lots, 64-bit, the right types
        codec.decode(codec.encode(event))
    except (TypeError, OverflowError, *codec.DECODE_ERRORS) as exc:
        return (
            f"does not pass as one on the wire ({str(exc).splitlines()[0]}; prices and "
            "quantities are Python ints: whole ticks, int(...) of a NumPy number)"
        )
    if type(event) is Bar and not (event.low <= min(event.open, event.close)
                                   and max(event.open, event.close) <= event.high):  # fmt: skip
        return "is an inconsistent bar (need low <= open, close <= high)"
    if event.ts < _EPOCH_1971:
        return "has a time in 1970: times are UTC nanoseconds (seconds * 10**9)"
    return "has a negative number in it"


_EPOCH_1971 = 365 * 86_400 * 10**9  # a time in seconds, ms or µs of these years is before it
