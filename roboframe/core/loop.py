"""The robot loop: the one thread that owns all business logic.

It binds one PULL socket (default ``inproc://robo``); the data, control and
trade streams connect PUSH sockets to it. PUSH/PULL never drops a message:
when the loop falls behind, a sender's queue fills to its high-water mark and
the sender waits, so backpressure reaches the feed instead of events
vanishing -- the original design's PUB/SUB would silently drop past the mark.

For every message the loop: decodes it (a malformed one is counted, logged
once per kind and dropped, and nothing of it reaches the journal or the
kernel; in a batch, only its malformed events are, when the batch's frame
is intact), gives its events sequence numbers, appends the raw bytes to the
journal, lets the kernel handle each event, journals what each event made the
robot do and hands the actions to the gateway. Before actions leave, the
journal is flushed to the OS, so an order that left has its cause on disk.

:meth:`RoboLoop.process` does all that for one message without sockets or
threads, which is how tests and the benchmarks drive it directly.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Control, Tick, Timer
from roboframe.core.kernel import MAX_ANSWERS, too_many_answers
from roboframe.core.streams import FAIL
from roboframe.core.timetext import span_text, utc_text
from roboframe.errors import GatewayError, RoboframeError, RunFailed, StrategyError, described
from roboframe.journal.format import CLOSED, NOTE, STRATEGY_ERROR, encode_note
from roboframe.risk.limits import STOPPED

log = logging.getLogger(__name__)

_IDLE_MS = 20  # longest wait for a message before timers and stop checks run
_HOUSEKEEPING_EVERY = 0xF  # under load, timers and stop checks every 16 messages
_LATENCY_EVERY = 0xF  # one message in 16 is timed
MAX_MESSAGE_BYTES = 16 << 20
"""Largest frame the loop's socket takes over ipc/tcp (``zmq.MAXMSGSIZE``; inproc has no
limit): a full feed batch, 65535 events of up to 256 bytes each, fits. ZeroMQ drops a
larger frame before it is read into memory and disconnects its sender."""
LEFT_NAMED = 20  # orders left working a clean end names in its journal


def strategy_error_note(exc: StrategyError) -> bytes:
    """The NOTE a run that a strategy error stopped ends its journal with."""
    return encode_note(STRATEGY_ERROR, error=str(exc))


class EmptyBatch(ValueError):
    """A batch message with no events in it."""


class ForgedFail(ValueError):
    """A ``fail`` command no stream of the robot sent (see ``streams.FAIL``)."""


def malformed_kind(exc: Exception) -> str:
    """A short, stable name for what was wrong with a message."""
    if isinstance(exc, EmptyBatch):
        return "empty batch"
    if isinstance(exc, ForgedFail):
        return "forged fail"
    if isinstance(exc, RecursionError):
        return "nested too deep"
    text = str(exc)
    if isinstance(exc, codec.ValidationError):
        if text.startswith("Invalid value") and "$[0]" in text:
            return "unknown event kind"
        if "$[0]" in text or "Expected `array`" in text:
            return "not an event"
        return "invalid field"
    return "not msgpack"


class RoboLoop:
    """Receive, sequence, journal, handle, send -- one message at a time."""

    def __init__(
        self,
        kernel: Any,
        journal: Any,
        gateway: Any,
        *,
        clock: Callable[[], int] = time.time_ns,
        wall_clock: bool = True,
        receipt_clock: bool | None = None,
        max_ahead_ns: int | None = None,
        gateway_named: str = "the gateway",
    ) -> None:
        self.kernel = kernel
        self.gateway_named = gateway_named  # for an error its submit raises
        self.wall_clock = wall_clock
        # robot time follows each message's receipt time (a real-time feed); a run
        # resumed from a journal whose header does not say so goes on without
        self.receipt_clock = wall_clock if receipt_clock is None else receipt_clock
        # live data stamped further ahead of ``clock`` is dropped before the journal
        self.max_ahead_ns = max_ahead_ns if wall_clock else None
        self.journal = journal
        self.gateway = gateway
        self.clock = clock
        self.seq = 0
        self.messages = 0
        self.malformed: dict[str, int] = {}
        self.error: StrategyError | None = None
        self.failure: str | None = None  # why the feed or the gateway broke the run
        # the run ended unfinished on request (request_unfinished), not broken: a
        # resume goes on with it at once, its orders as they are
        self.ended_to_resume = False
        # where a stream says so (Runtime.failure): (what, why), or None
        self.failed_by: Callable[[], tuple[str, str] | None] = lambda: None
        self._drain_broken = False  # the order gateway broke while the stop drained
        self.latency_ns: deque[int] = deque(maxlen=4096)
        """Processing time of recent messages (one in 16 is timed), for metrics."""
        self._stop_reason: str | None = None
        self._unfinished: str | None = None  # see request_unfinished
        # a simulated exchange stepped in this thread, as in a backtest (Gateway.in_step)
        self.in_step = bool(getattr(gateway, "in_step", False))
        self._answers: deque = deque()  # its answers, not yet journaled and handled
        self._bind_process()
        if self.in_step:
            self.process = self._process_in_step

    # -- the per-message path -------------------------------------------------

    def _bind_process(self) -> None:
        """Build :meth:`process` as a closure over locals: it runs once per message,
        up to a million times a second, and local lookups are the cheapest."""
        decode = codec.decode
        decode_error = codec.DECODE_ERRORS
        clock = self.clock
        append = self.journal.append_message
        kernel = self.kernel
        handlers = kernel.handlers
        emit = self._emit
        malformed = self._malformed
        salvage = self._salvage
        ahead = self.max_ahead_ns
        keep_present = self._keep_present
        wall = self.receipt_clock
        received_at = kernel.received

        def take(raw: bytes) -> tuple[bytes, Any, int] | None:
            """One wire message decoded (what is malformed of it counted and dropped),
            its market data from the future kept out, its receipt time: ``(raw as
            journaled, its events, received)``; None when nothing of it is left."""
            try:
                msg = decode(raw)
            except decode_error as exc:
                raw = salvage(exc, raw)
                if raw is None:
                    return None
                msg = decode(raw)
            if type(msg) is Batch:
                events = msg.events
                if not events:
                    malformed(EmptyBatch("batch has no events"), raw)
                    return None
            else:
                if type(msg) is Control and msg.command == FAIL:  # see streams.FAIL
                    failure = self.failed_by()
                    if failure is None:  # not one of our streams': a publisher's, say
                        malformed(ForgedFail("a fail command no stream of the robot sent"), raw)
                        return None
                    raise RunFailed(*failure)
                events = (msg,)
            received = clock()
            if ahead is not None:
                horizon = received + ahead
                for event in events:
                    if event.ts > horizon:
                        raw, events = keep_present(raw, events, horizon)
                        if not events:
                            return None
                        break
            self.messages += 1
            if wall:  # robot time: the data's, never behind the clock (see Kernel.received)
                received_at(received)
            return raw, events, received

        def process(raw: bytes) -> None:
            """Handle one wire message (an event or a batch of events)."""
            taken = take(raw)
            if taken is None:
                return
            raw, events, received = taken
            seq = self.seq + 1
            self.seq += len(events)
            append(seq, received, raw)
            for event in events:
                try:  # free when nothing raises (zero-cost exceptions)
                    actions = handlers[type(event)](event)
                except StrategyError as exc:
                    exc.seq = seq  # the event's own: a batch's later ones were never handled
                    raise
                if actions or kernel.rejected:
                    emit(seq, actions)
                seq += 1

        self._take = take
        self.process = process

    # -- in step with a simulated exchange -------------------------------------

    def _process_in_step(self, raw: bytes) -> None:
        """:meth:`process` when the loop steps the gateway (``in_step``): as the
        backtest steps its exchange. Before a market event, the timers due by its
        time (recorded data), then the fills it makes; then the event; each
        action goes to the exchange as it is made, and its answers are journaled
        and handled before anything else. Each event is a journal message of its
        own, so the answers fall in their place between them."""
        taken = self._take(raw)
        if taken is None:
            return
        _, events, received = taken
        kernel, gateway = self.kernel, self.gateway
        for event in events:
            if type(event) is Bar or type(event) is Tick:
                if not self.wall_clock and kernel.next_due <= event.ts:
                    for timer in kernel.timers_due_by(event.ts):  # as a backtest fires them
                        self._step(timer, received)
                        self._step_answers(received)
                self._answers.extend(gateway.step_market(event))
                self._step_answers(received)
            self._step(event, received)
            self._step_answers(received)

    def _step(self, event: Any, received: int) -> None:
        """Journal one event, let the kernel handle it, hand its actions over."""
        seq = self.seq = self.seq + 1
        self.journal.append_message(seq, received, codec.encode(event))
        # its actions are made at its time, as in a backtest; on the host's clock a
        # timer's or a command's time lies past the data, where nothing would fill
        # them: they are made just after the latest market event instead (at fill_at
        # close they wait for the next price, as a backtest's timer orders do)
        kind = type(event)
        if not self.wall_clock or kind is Bar or kind is Tick:
            self._step_ts = event.ts
        else:
            self._step_ts = max(self.kernel.market_time() + 1, 0)
        try:
            actions = self.kernel.handlers[kind](event)
        except StrategyError as exc:
            exc.seq = seq
            raise
        if actions or self.kernel.rejected:
            self._emit(seq, actions)

    def _step_answers(self, received: int) -> None:
        """The exchange's answers, oldest first, and the answers those bring."""
        answers = self._answers
        handled = 0
        while answers:
            self._step(answers.popleft(), received)
            handled += 1
            if handled > MAX_ANSWERS:
                raise too_many_answers()

    def step_resubmit(
        self, actions: list, filled: dict[str, int], replaced_at: dict[str, int]
    ) -> None:
        """After a resume, what went out unanswered, to the stepped exchange: the
        open orders rest again as they were; the answers to the rest are handled."""
        received = self.clock()
        own = self.kernel.orders.open
        placed = {
            cid: replaced_at.get(cid, o.created_ts) for cid, o in own.items() if o.status != "new"
        }
        sent = {cid: o.created_ts for cid, o in own.items()}
        answers = self.gateway.step_resubmit(actions, filled, placed, sent, self.kernel.now)
        self._answers.extend(answers)
        self._step_answers(received)

    def inject(self, event: Any) -> None:
        """Process an event made by the runtime itself (start, stop, timers)."""
        self.process(codec.encode(event))

    def _emit(self, seq: int, actions: list) -> None:
        rejected = self.kernel.take_rejected()
        self.journal.append_actions(seq, codec.encode_outputs(actions, rejected))
        if actions:
            self.journal.flush()
            try:
                if self.in_step:  # answered at once; handled before anything else
                    self._answers.extend(self.gateway.step_submit(actions, self._step_ts))
                else:
                    self.gateway.submit(actions)
            except RoboframeError:
                raise
            except Exception as exc:  # the plugin's bug, or its broker gone: said in a line
                raise GatewayError(
                    f"{self.gateway_named} sending orders raised {described(exc)}; the robot "
                    "stopped, and the orders it journaled as sent go again with run --resume"
                ) from exc

    def _salvage(self, exc: Exception, raw: bytes) -> bytes | None:
        """A batch that does not decode: when its events can still be told apart,
        only the malformed ones are dropped (each counted and logged as a lone
        message would be) and the rest go on as a batch of their own, which is
        what the journal holds. Otherwise the whole message is dropped and counted."""
        parts = codec.batch_parts(raw)
        if parts is None:
            self._malformed(exc, raw)
            return None
        good = []
        for part in parts:
            try:
                codec.decode_event(part)
            except codec.DECODE_ERRORS as bad:
                self._malformed(bad, part)
                continue
            good.append(part)
        if len(good) == len(parts):  # each event decodes, the whole did not: keep it out
            self._malformed(exc, raw)
            return None
        return codec.encode_batch(good) if good else None

    def _keep_present(self, raw: bytes, events: Any, horizon: int) -> tuple[bytes, list]:
        """``raw`` without its market data stamped after ``horizon`` (the host's
        clock plus ``loop.max_ahead``): counted in ``malformed`` and logged. One bar
        from years ahead -- a wrong time unit, a two-digit year, a broken clock at
        the publisher -- would move the robot's time there and make every later bar
        stale: a robot deaf to the market, and again after every resume, which
        rebuilds it from the journal. Dropped before the journal, so what the robot
        saw stays replayable; fills and commands pass whatever their time."""
        ahead = [e for e in events if e.ts > horizon and type(e) in (Bar, Tick)]
        if not ahead:
            return raw, events
        keep = [e for e in events if not (e.ts > horizon and type(e) in (Bar, Tick))]
        dropped = len(ahead)
        kind = "time too far ahead"
        count = self.malformed.get(kind, 0)
        self.malformed[kind] = count + dropped
        if count == 0 or count // 1000 != (count + dropped) // 1000:
            first = ahead[0]
            log.error(
                "market data from the future dropped (%d so far): %s at %s is %s ahead of "
                "this host's clock (loop.max_ahead %s); does the publisher send the wrong "
                "time unit, or is a clock wrong?",
                count + dropped,
                first.symbol,
                utc_text(first.ts),
                span_text(first.ts - horizon + self.max_ahead_ns),
                span_text(self.max_ahead_ns),
            )
        if len(keep) > 1:
            return codec.encode(Batch(keep)), keep
        return (codec.encode(keep[0]) if keep else b""), keep

    def _malformed(self, exc: Exception, raw: bytes) -> None:
        kind = malformed_kind(exc)
        count = self.malformed.get(kind, 0) + 1
        self.malformed[kind] = count
        if count == 1:
            log.warning(
                "malformed message dropped (%s): %s; first bytes %r; further ones counted",
                kind,
                exc,
                bytes(raw[:32]),
            )

    # -- time -----------------------------------------------------------------

    def now(self) -> int:
        """Time for events the loop makes (start, stop, timers).

        With a real-time feed, the wall clock (never before the last event);
        with recorded or synthetic data, whose times may lie anywhere, the
        robot's own time, so a timer never pushes robot time past the data.
        """
        if self.wall_clock:
            return max(self.clock(), self.kernel.now)
        return self.kernel.now

    def fire_timers(self) -> None:
        """Inject the strategy's timers that are due by :meth:`now`, stamped with it.

        A timer that fell behind (a busy loop, a gap in the data) fires once,
        not once per missed period.
        """
        now = self.now()
        kernel = self.kernel
        for timer in kernel.due_timers(now):
            if kernel.still_due(timer.name, timer.ts, now):  # not cancelled or moved since
                self.inject(Timer(timer.name, now))

    def start(self) -> None:
        self.inject(Control("start", self.now()))

    def stop(self, reason: str) -> None:
        """Journal and handle a stop; the strategy's on_stop runs once."""
        if self.kernel.risk.state != STOPPED:
            self.inject(Control("stop", self.now(), {"reason": reason}))

    def request_stop(self, reason: str) -> None:
        """Ask the running loop to stop soon (signal handlers, --duration)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def request_unfinished(self, reason: str) -> None:
        """Ask the running loop to end the run soon as a crash ends it -- no stop
        journaled, ``run --resume`` goes on with it -- but cleanly: its journal
        flushed, its streams joined (a supervisor restarting it under a changed
        feed, which a resume takes). A stop asked as well wins: the trader's."""
        if self._unfinished is None:
            self._unfinished = reason

    @property
    def stopped(self) -> bool:
        return self.kernel.risk.state == STOPPED

    def _warn_undrained(self, drain_ms: int) -> None:
        """The stop's wait ran out: say what was left, for a trader who sent flatten
        and stop and would otherwise learn of an open position from the summary."""
        kernel = self.kernel
        if kernel.flattening:
            log.warning(
                "stopped with the flatten unfinished: the cancels of %s were not answered "
                "within drain_ms (%d ms), so the position stays open: %s",
                ", ".join(kernel.flattening),
                drain_ms,
                ", ".join(f"{s} {kernel.book.positions[s].qty:+d}" for s in kernel.flattening),
            )
        if kernel.closing_owed:
            log.warning(
                "stopped with the flatten unfinished: the order path stayed down (%s) "
                "for drain_ms (%d ms), so the position stays open: %s",
                kernel.risk.gateway_down,
                drain_ms,
                ", ".join(f"{s} {kernel.book.positions[s].qty:+d}" for s in kernel.closing_owed),
            )
        unfilled = kernel.closing_unfilled()
        if unfilled:
            log.warning(
                "stopped with the flatten unfinished: its closing orders of %s did not "
                "fill within drain_ms (%d ms); they stay working, and the position is: %s",
                ", ".join(unfilled),
                drain_ms,
                ", ".join(f"{s} {kernel.book.positions[s].qty:+d}" for s in unfilled),
            )
        waiting = kernel.orders.unanswered()
        if waiting:
            log.warning(
                "stopped with %d order(s), cancel(s) or replace(s) not answered within "
                "drain_ms (%d ms)",
                waiting,
                drain_ms,
            )

    # -- the socket loop ------------------------------------------------------

    def run(
        self,
        sock: zmq.Socket,
        *,
        timer_ms: int | None = None,
        drain_ms: int = 1000,
        deadline: float | None = None,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 1.0,
        flush_ms: int = 200,
    ) -> None:
        """Serve ``sock`` until the robot is stopped and drained.

        ``timer_ms`` injects a ``heartbeat`` timer event; ``deadline`` (a
        ``time.monotonic()`` value) stops the run; ``on_tick`` is called about
        every ``tick_s`` seconds (progress, status snapshots). After the stop
        event the loop keeps serving fills and acknowledgements for up to
        ``drain_ms`` while orders, cancels or replaces are unanswered (the
        cancels of ``open_orders_on_stop: cancel`` among them) or a flatten
        waits for its cancels to be answered. Buffered journal frames
        reach the OS at least every ``flush_ms``.
        """
        sock.setsockopt(zmq.RCVTIMEO, _IDLE_MS)
        recv = sock.recv
        process = self.process
        again = zmq.Again
        mono = time.monotonic
        perf = time.perf_counter_ns
        kernel = self.kernel
        latency = self.latency_ns.append
        next_timer = mono() + timer_ms / 1000 if timer_ms else None
        next_tick = mono() + tick_s
        flush_every = flush_ms / 1000
        next_flush = mono() + flush_every
        drain_until: float | None = None
        served = 0
        if self._stop_reason is not None and not self.stopped:
            self.stop(self._stop_reason)  # asked before the loop ran: before any message
        try:
            while True:
                try:
                    raw = recv()  # blocks at most _IDLE_MS, without the GIL
                except again:
                    pass
                else:
                    served += 1
                    try:
                        if served & _LATENCY_EVERY:
                            process(raw)
                        else:  # one message in 16 is timed, for the latency percentiles
                            started = perf()
                            process(raw)
                            latency(perf() - started)
                    except RunFailed as exc:
                        if not self.stopped:
                            raise
                        self._failed_in_drain(exc)
                    if kernel.next_due <= kernel.now and not self.stopped:
                        self.fire_timers()  # data time passed a timer (recorded feeds)
                    if served & _HOUSEKEEPING_EVERY:
                        continue  # under load, look at the clock every 16 messages
                now = mono()
                if self._stop_reason is not None and not self.stopped:
                    self.stop(self._stop_reason)  # first: a stop asked too wins over a resume
                if self._unfinished is not None and not self.stopped:
                    raise RunFailed("run", self._unfinished)
                if deadline is not None and now >= deadline and not self.stopped:
                    self.stop("duration reached")
                if next_timer is not None and now >= next_timer and not self.stopped:
                    self.inject(Timer("heartbeat", self.now()))
                    next_timer = now + timer_ms / 1000
                if kernel.next_due <= self.now() and not self.stopped:
                    self.fire_timers()
                if now >= next_flush:
                    self.journal.flush()
                    next_flush = now + flush_every
                if on_tick is not None and now >= next_tick:
                    on_tick()
                    next_tick = now + tick_s
                if self.stopped:
                    if drain_until is None:
                        drain_until = now + drain_ms / 1000
                    orders = kernel.orders.unanswered()
                    closing = kernel.flattening or kernel.closing_owed
                    if not (orders or closing or kernel.closing_unfilled()):
                        self._close_journal()  # the stop and what came after it
                        return
                    if now >= drain_until or self._drain_broken:
                        self._warn_undrained(drain_ms)
                        self._close_journal()
                        return
        except StrategyError as exc:
            self.failed(exc)
        except RunFailed as exc:  # ended as a crash ends it: no stop, resumable
            self.failure = str(exc)
            self.ended_to_resume = exc.what == "run"
            log.log(
                logging.WARNING if self.ended_to_resume else logging.ERROR,
                "the run ended unfinished (%s); `roboframe run --resume` goes on with it",
                exc,
            )
            self.journal.flush()

    def _failed_in_drain(self, exc: RunFailed) -> None:
        """The feed or the gateway broke after the stop: the stop stands (the run
        ends as stopped, not to be restarted). A dead feed is nothing to a drain;
        a dead gateway answers nothing more: the drain ends now."""
        if exc.what == "gateway":
            log.error("after the stop, %s: the drain ends here", exc)
            self._drain_broken = True
        else:
            log.warning("after the stop, %s; the drain goes on", exc)

    def _close_journal(self) -> None:
        """The run ended cleanly: the journal says so (see ``CLOSED``) and is flushed."""
        kernel = self.kernel
        open_orders = kernel.orders.open
        left = {  # what the next run, flat, will not manage (said when it starts)
            "positions": {s: p.qty for s, p in kernel.book.positions.items() if p.qty},
            "open_orders": len(open_orders),
            "orders": list(islice(open_orders, LEFT_NAMED)),  # named, oldest first
        }
        self.journal.append_record(NOTE, self.seq, 0, encode_note(CLOSED, left=left))
        self.journal.flush()

    def failed(self, exc: StrategyError) -> None:
        """The strategy raised: the run stops here, and its journal says so (a NOTE
        at the event it raised on, which replay --verify holds a changed strategy to)."""
        self.error = exc
        log.error("robot stopped: %s (event seq %s)", exc, exc.seq)
        self.journal.append_record(NOTE, exc.seq or self.seq, 0, strategy_error_note(exc))
