"""Guards for the whole test session (``tests/`` and the plugins' tests)."""

from __future__ import annotations

import threading

import zmq

_finalize = zmq.Context.__del__


def _finalize_off_thread(self: zmq.Context) -> None:
    """Terminate a zmq Context left to the garbage collector on a daemon thread.

    ``term()`` waits for every socket of the context. Twice in full CI runs an
    unclosed context, collected mid-way through an unrelated backtest test,
    waited for ever there (its sockets already closed; where it was made is not
    found yet). Off the test's thread, such a wait cannot hang the suite; the
    process exit ends it.
    """
    if getattr(self, "closed", True):
        return
    threading.Thread(target=_finalize, args=(self,), daemon=True, name="zmq-finalizer").start()


zmq.Context.__del__ = _finalize_off_thread
