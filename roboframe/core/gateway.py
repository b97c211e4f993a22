"""The gateway contract: where a robot's orders go and its fills come from.

The loop thread hands every batch of actions to :meth:`Gateway.submit`,
which must return at once (send on a socket, append to a queue; never wait
for a network). Everything the outside world says back -- accepted,
rejected, cancelled, filled -- comes into the loop as events through the
*trade stream*: a thread the runtime starts, which runs
:meth:`Gateway.trade_stream` and gives it a socket connected to the loop.
Those events are journaled like market data, which is what makes a live run
replayable.

Write a gateway by subclassing :class:`Gateway`::

    class MyBroker(Gateway):
        params_schema = {"type": "object", "required": ["url"]}

        def open(self, runtime):
            self.orders = runtime.context.socket(zmq.PUSH)   # loop -> thread
            self.orders.bind(runtime.private_address("orders"))
            ...

        def submit(self, actions):
            self.orders.send(codec.encode(actions))

        def trade_stream(self, runtime, sender):
            # runs in its own thread until runtime.stop is set;
            # sender.send(codec.encode(Fill(...))) for every fill
            ...

The built-in paper exchange (:mod:`roboframe.builtin.paper`) is the worked
example.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import zmq

from roboframe.core.events import Action
from roboframe.core.instruments import Instrument


@dataclass
class Runtime:
    """What the runtime hands a gateway or stream: sockets, addresses, stop flag."""

    robot: str
    run_id: str
    context: zmq.Context
    loop_address: str
    market_data_address: str | None
    stop: threading.Event = field(default_factory=threading.Event)
    store_seen: tuple[frozenset[int], frozenset[int]] | None = None
    """For a resumed run: the order-store ids of the trades and updates its journal
    holds (see :attr:`roboframe.core.resume.Resumed.store_seen`)."""
    store_anchor: tuple[int, str] = (0, "")
    """For a resumed run: its journal's highest trade id and that trade's client id
    (see :attr:`roboframe.core.resume.Resumed.store_anchor`)."""
    robot_time: Callable[[], int] | None = None
    """The time of the latest market event the robot has handled, readable from
    any thread: a simulated exchange holds back prices the robot has not
    reached, or it fills orders at prices after them."""
    max_ahead_ns: int | None = None
    """Market data stamped more than this past the host's clock is dropped by the
    loop (``loop.max_ahead``; None: nothing is): one who sees it first drops it too."""
    in_step: bool = False
    """The loop steps the gateway itself (:attr:`Gateway.in_step`): its trade stream
    has nothing to do, and no market data are published for it."""
    resumed_seq: int = 0
    """For a resumed run: the last sequence number its journal holds (0: a new run)."""
    resumed_filled: dict[str, int] = field(default_factory=dict)
    """For a resumed run: the lots each open order had filled before the restart,
    by client id (:meth:`Gateway.resubmit` sends such orders for what is left)."""
    ready: threading.Event = field(default_factory=threading.Event)
    """Set by the trade stream once it has tried its order path (connected, the
    robot's lock taken -- or the store out of reach), or failed: see
    :attr:`Gateway.ready_before_start`."""
    failure: tuple[str, str] | None = None
    """``(what, why)`` when the feed or the order gateway broke the run (``what``:
    ``feed`` or ``gateway``), set by the stream before it wakes the loop with a
    ``fail`` message: the loop takes a ``fail`` only with this set, so no
    publisher can end a run by sending one."""

    def private_address(self, what: str) -> str:
        """An ``inproc://`` address unique to this run, for a gateway's own sockets."""
        return f"inproc://{self.robot}.{self.run_id}.{what}"


class Gateway:
    """Base class of every order gateway."""

    params_schema: ClassVar[dict] = {"type": "object"}
    """JSON Schema of this gateway's ``params``; merged into the robot schema."""

    needs_market_data: ClassVar[bool] = False
    """True when the trade stream wants the robot's market data (paper fills).

    The runtime then publishes every market-data message on
    ``runtime.market_data_address`` (a PUB socket) before the loop sees it.
    """

    ready_before_start: ClassVar[bool] = False
    """True when the run must wait, before its start, for the trade stream to say
    it may trade (``runtime.ready``): an order store's gateway takes the robot's
    lock there, and a second process of the robot must end before its strategy
    has decided anything -- else it journaled orders that a later resume sent."""

    in_step: ClassVar[bool] = False
    """True for a simulated exchange that runs in the loop's own thread, in step
    with the data, as in a backtest: the loop hands it each market event before
    the robot sees it (:meth:`step_market`) and each action as it is made
    (:meth:`step_submit`), and journals and handles its answers at once. Its
    trade stream has nothing to do. A live run on it then sends the orders
    the backtest sends, fills included, paced or not."""

    def step_market(self, event: Any) -> list:
        """(``in_step``) The fills ``event`` makes, before the robot sees it."""
        raise NotImplementedError

    def step_submit(self, actions: list[Action], ts: int) -> list:
        """(``in_step``) The answers to ``actions``, made at robot time ``ts``."""
        raise NotImplementedError

    def step_resubmit(
        self,
        actions: list[Action],
        filled: dict[str, int],
        placed: dict[str, int],
        sent: dict[str, int],
        ts: int,
    ) -> list:
        """(``in_step``) After a resume: rest the acknowledged orders again as they
        were (``placed`` at that time, ``filled`` lots filled already), place the
        others as ``sent``; their answers."""
        raise NotImplementedError

    def __init__(
        self,
        params: dict[str, Any],
        instruments: dict[str, Instrument],
        *,
        robot: str,
    ) -> None:
        self.params = params
        self.instruments = instruments
        self.robot = robot
        self.base_dir = Path.cwd()
        """Folder of the robot file: relative paths in ``params`` start there (set by the
        runtime after construction, so plugin constructors need not take it)."""

    def open(self, runtime: Runtime) -> None:
        """Prepare sockets/connections. Called on the loop thread before any event."""

    def submit(self, actions: list[Action]) -> None:
        """Send actions on their way. Called on the loop thread; must not block."""
        raise NotImplementedError

    def resubmit(self, actions: list[Action]) -> None:
        """Send again, after ``run --resume``, what the journal says went out
        without an answer: open orders (for their remaining lots) and pending
        cancels and replaces. Some may have arrived before the crash, so send
        them the way that ignores a client id already seen. The default is
        :meth:`submit`: right for a gateway with one way to the exchange that
        treats a repeated client id as a duplicate."""
        self.submit(actions)

    def trade_stream(self, runtime: Runtime, sender: zmq.Socket) -> None:
        """Run in the trade-stream thread until ``runtime.stop`` is set.

        Send every order update and fill, encoded with
        :func:`roboframe.core.codec.encode`, on ``sender``.
        """
        runtime.stop.wait()

    def cancel_left(
        self, run_id: str, timeout: float, known: list[str]
    ) -> tuple[list[str], list[str]] | None:
        """A strategy error stopped run ``run_id`` and the robot file says
        ``loop.open_orders_on_error: cancel``. The loop and the trade stream are
        gone: cancel the run's orders still working at the exchange -- those the
        exchange side holds, and ``known``, the ones the robot holds open (an
        exchange may have taken some it has not recorded yet) -- and wait up to
        ``timeout`` seconds for them to close. Returns the client ids asked to
        cancel and those not seen closed then, or None when the orders end
        with the robot's process (the paper exchange's). Not journaled:
        the robot learns of the answers when it resumes, as of a cancel made
        at the broker. The default cannot, and the robot file's check says so
        before a run starts."""
        raise NotImplementedError

    def close(self) -> None:
        """Close what :meth:`open` opened. Called on the loop thread, last."""
