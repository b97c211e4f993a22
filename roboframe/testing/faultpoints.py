"""Named points where a fault test has the process killed (SIGKILL) on purpose.

A random kill rarely lands in the narrow windows that matter, so the code
marks them, and a test arms one through the environment of the process it
starts::

    ROBOFRAME_FAULT_KILL_AT="store.after_insert:3"   # die the 3rd time it is reached

Several points may be armed at once (``"a:1,b:2"``); a point without a count
fires the first time. The points:

``journal.mid_frame``
    the journal writer hands the OS its buffer up to the middle of the last
    frame, then dies: a torn frame on disk.
``journal.mid_actions``
    the same, counting only buffers whose last frame is an ACTIONS record --
    the flush just before an order leaves.
``store.after_insert``
    the store gateway's insert of an order has committed; nothing of its
    acknowledgement has been journaled.

The variable is read once, at import. Call sites test :data:`ARMED` (a
module constant, bound to a local name in their module) before anything
else, so an unarmed process pays one falsy check.
"""

from __future__ import annotations

import os
import signal

ENV = "ROBOFRAME_FAULT_KILL_AT"
POINTS = ("journal.mid_frame", "journal.mid_actions", "store.after_insert")


def _parse(text: str) -> dict[str, int]:
    armed = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, count = item.partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown fault point {name!r}; known: {', '.join(POINTS)}")
        armed[name] = int(count) if count else 1
    return armed


_countdown = _parse(os.environ.get(ENV, ""))
ARMED = bool(_countdown)


def due(name: str) -> bool:
    """Count one arrival at ``name``; True when this is the one to die at."""
    left = _countdown.get(name)
    if left is None:
        return False
    _countdown[name] = left - 1
    return left == 1


def kill() -> None:
    """Die at once, as a power cut or ``kill -9`` would: no cleanup, no flush."""
    os.kill(os.getpid(), signal.SIGKILL)


def reached(name: str) -> None:
    """Die here if ``name`` is armed and its count has run out."""
    if due(name):
        kill()
