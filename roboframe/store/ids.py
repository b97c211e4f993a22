"""Trade and event ids reserved ahead of need, off the exchange's hot path.

The exchange gives every answer its store id before it sends it (the fast
path tells a robot of a fill first, and writes the store behind). The ids
come from the store's sequences a block at a time, and a reservation commits
a sequence's advance, which PostgreSQL flushes to disk before it answers: a
few milliseconds on an ordinary disk. Taken on the exchange's thread when a
block ran out, that stall fell on one order in every ``ID_BLOCK / 2`` (fills
and events each have their block), which made the fast path's p99 ten times
its p50.

:class:`IdsAhead` keeps each block topped up from a thread with a store
connection of its own, started when the block runs low, so the exchange's
thread takes ids from memory. It never fetches itself: one fetcher keeps the
ids handed out increasing, in the order they are handed out (readers read
"after id N"). Should a burst empty a block, the taker waits for the
thread's fetch, as it waited for its own before.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from roboframe.errors import described
from roboframe.store.base import ID_BLOCK, StoreUnavailable, open_store

log = logging.getLogger(__name__)

KINDS = ("trades", "order_events")
WAIT_S = 5.0  # an empty block not refilled by then: the store is unavailable
RETRY_S = 0.5  # between two attempts of the thread while the store is away


class IdsAhead:
    """Ids of ``KINDS`` reserved in the store at ``url`` before they are needed."""

    def __init__(self, url: str, low: int = ID_BLOCK // 2) -> None:
        self.url = url
        self.low = low
        self._ids: dict[str, deque[int]] = {kind: deque() for kind in KINDS}
        self._wanted = dict.fromkeys(KINDS, 0)  # ids a taker waits to find held
        self._cond = threading.Condition()
        self._error = ""  # the thread's last failure, for a taker that waits in vain
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ids-ahead", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def take(self, kind: str, n: int) -> list[int]:
        """``n`` increasing ids of ``kind``, all above those taken before."""
        ids = self._ids[kind]
        if n and len(ids) - n <= self.low:  # at or below the mark after this take: top up
            with self._cond:
                if len(ids) < n:  # a burst: more than a block, waited for
                    self._wanted[kind] = max(self._wanted[kind], n)
                self._cond.notify_all()
                # the store away (the thread's last try failed): at once, not after a wait
                if len(ids) < n and not self._cond.wait_for(
                    lambda: len(ids) >= n or self._stopping or self._error, WAIT_S
                ):
                    raise StoreUnavailable(f"no {kind} ids reserved within {WAIT_S:g}s")
                if len(ids) < n:
                    raise StoreUnavailable(
                        f"no {kind} ids reserved: {self._error or 'the exchange is stopping'}"
                    )
        return [ids.popleft() for _ in range(n)]

    def held(self, kind: str) -> int:
        """Ids of ``kind`` reserved and not yet taken."""
        return len(self._ids[kind])

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(WAIT_S)

    def _short(self) -> dict[str, int]:
        """How many ids each kind needs now: a block, more if a taker waits for more."""
        return {
            kind: max(ID_BLOCK, self._wanted[kind] - len(ids))
            for kind, ids in self._ids.items()
            if len(ids) <= self.low or len(ids) < self._wanted[kind]
        }

    def _run(self) -> None:
        store = None
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._short())
                    if self._stopping:
                        return
                    short = self._short()
                try:
                    if store is None:
                        store = open_store(self.url)
                    fetched = {kind: store.reserve_ids(kind, n) for kind, n in short.items()}
                except Exception as exc:  # the store away, or a bug: said, and tried again
                    if not isinstance(exc, StoreUnavailable) and not self._error:
                        log.exception("ids-ahead: reserving ids failed")
                    if store is not None:
                        store.close()
                    store = None
                    with self._cond:
                        self._error = described(exc) or "store unavailable"
                        self._cond.notify_all()  # a taker waiting fails now
                        self._cond.wait(RETRY_S)
                    continue
                with self._cond:
                    for kind, fresh in fetched.items():
                        self._ids[kind].extend(fresh)  # above every id held: one fetcher
                        self._wanted[kind] = 0
                    self._error = ""
                    self._cond.notify_all()
        finally:
            if store is not None:
                store.close()
