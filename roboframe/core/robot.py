"""Assembling a live robot run: plugins, kernel, journal, sockets, threads.

:func:`run_robot` is what ``roboframe run`` calls. It builds the kernel from
the robot spec, opens a new journal, binds the loop's socket, starts the
three streams (data, trade, and control when an address is configured),
runs the loop on the calling thread until the robot stops, shuts everything
down in order and returns a summary.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import zmq

from roboframe.config.checks import unlimited_positions
from roboframe.core import codec
from roboframe.core.events import Control
from roboframe.core.feed import preflight_feed, robot_dir
from roboframe.core.gateway import Runtime
from roboframe.core.kernel import Kernel
from roboframe.core.loop import MAX_MESSAGE_BYTES, RoboLoop
from roboframe.core.orders import NEW
from roboframe.core.streams import (
    CONTROL_MAX_BYTES,
    SetCheck,
    control_stream,
    data_stream,
    start_thread,
    trade_stream,
)
from roboframe.errors import (
    GatewayError,
    JournalError,
    RoboframeError,
    StrategyError,
    blamed,
    described,
)
from roboframe.journal import JournalWriter
from roboframe.journal.format import RECEIPT_CLOCK, RULES
from roboframe.plugins import (
    BUILTIN_PLUGINS,
    Registry,
    call_each,
    get_plugin_manager,
    get_registry,
    resolve_strategy,
    strategy_search,
)

if TYPE_CHECKING:
    from roboframe.metrics import MetricsServer

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal"


def new_run_id(journal_dir: Path, now: dt.datetime | None = None) -> str:
    """A run id from the UTC start time, unique within ``journal_dir``."""
    now = now or dt.datetime.now(dt.UTC)
    base = now.strftime("%Y%m%dT%H%M%SZ")
    run_id, n = base, 1
    while (journal_dir / f"{run_id}{JOURNAL_SUFFIX}").exists():
        n += 1
        run_id = f"{base}.{n}"
    return run_id


def make_strategy(spec: Any, registry: Registry | None = None):
    search = strategy_search(getattr(spec, "source", None))
    cls, origin = resolve_strategy(spec.strategy.plugin, registry, search)
    named = f"strategy {spec.strategy.plugin!r}"
    if origin != spec.strategy.plugin:  # a registered name: the plugin that gave it
        named += f" (plugin {origin})"
    with blamed(f"{named} on start", StrategyError):
        strategy = cls(dict(spec.strategy.params))
    return strategy, cls, origin


def source_hash(cls: type) -> str | None:
    """SHA-256 (first 16 hex digits) of the module that defines ``cls``."""
    try:
        text = inspect.getsource(inspect.getmodule(cls))
    except (OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_sources(spec: Any, registry: Any = None) -> dict[str, str | None]:
    """Each plugin risk check's source hash, by name: a check whose code changed
    since a run decides otherwise on replay, and ``replay`` says which."""
    if not spec.risk.checks:
        return {}
    registry = registry or get_registry()
    return {
        ref.plugin: source_hash(registry.lookup("risk_checks", ref.plugin).obj)
        for ref in spec.risk.checks
    }


def bind_loop(sock: zmq.Socket, address: str) -> None:
    """Bind the loop's socket, or say in one line why it cannot be; a tcp://
    endpoint past this host is said to take any sender's message as the robot's
    own (fills, commands): nothing on it is authenticated."""
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        raise RoboframeError(f"loop.address {address}: cannot bind: {exc}") from None
    host = address.removeprefix("tcp://").rsplit(":", 1)[0]
    if address.startswith("tcp://") and host not in ("127.0.0.1", "localhost", "[::1]", "::1"):
        log.warning(
            "loop.address %s takes messages from any host that reaches it, as the robot's "
            "own market data, fills and commands, unauthenticated: keep it on 127.0.0.1 or "
            "a private network",
            address,
        )


UNACKNOWLEDGED_S = 10.0
"""Host seconds an order may wait for its acknowledgement before the log says so."""

READY_WAIT_S = 10.0
"""Longest wait, before the start, for the trade stream to try its order path (see
``Gateway.ready_before_start``); past it the run starts with the path down."""


def journal_header(spec: Any, run_id: str, strategy_cls: type, mode: str) -> dict:
    """Everything needed to rebuild the robot from its journal alone."""
    from roboframe import __version__

    return {
        "robot": spec.name,
        "run_id": run_id,
        "mode": mode,
        "config_hash": spec.config_hash,
        "config": spec.raw,
        "source": spec.source,  # as the run named it: found from a copy's root elsewhere
        # and where it was: found from any folder on this host (see replay.header_source)
        "source_path": str(Path(spec.source).resolve()) if spec.source else None,
        "strategy": {
            "name": spec.strategy.plugin,
            "class": f"{strategy_cls.__module__}:{strategy_cls.__qualname__}",
            "version": str(strategy_cls.version),
            "interface": strategy_cls.interface_version,
            "source_sha256": source_hash(strategy_cls),
        },
        "codec": {"name": codec.CODEC, "version": codec.CODEC_VERSION},
        "risk_checks": check_sources(spec),
        **RULES,  # the rules this roboframe's kernel follows (see RULES)
        "roboframe": __version__,
    }


@dataclass
class RunOptions:
    journal_dir: Path | None = None
    duration_s: float | None = None
    on_progress: Callable[[dict], None] | None = None
    registry: Registry | None = None
    run_id: str | None = None
    resume: bool = False
    extra: dict = field(default_factory=dict)


class LiveRobot:
    """One live run of one robot; :meth:`run` blocks until it stops."""

    def __init__(self, spec: Any, options: RunOptions | None = None) -> None:
        self.spec = spec
        self.options = options or RunOptions()
        self.cancelled_on_error: dict | None = None  # see _cancel_left
        registry = self.options.registry or get_registry()
        self.registry = registry
        self.journal_dir = Path(self.options.journal_dir or spec.journal.dir)
        preflight_feed(spec, registry)  # before anything is written
        try:
            self.journal_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file in the way, a read-only file system ...
            raise JournalError(
                f"cannot create the journal folder {self.journal_dir}: {exc.strerror}; "
                "a robot does not trade without its journal"
            ) from None
        # one process writes a journal folder: a second (a --resume of the running
        # run, a new run beside it) read, cut and appended to the live journal
        self._journal_lock = _hold_journal_dir(self.journal_dir)
        try:
            self._set_up(spec, registry)
        except BaseException:  # nothing runs: all is free at once, not at collection
            journal = getattr(self, "journal", None)
            if journal is not None:  # a stop signal as it loads, after the journal opened
                journal.close()
                self._drop_unstarted_journal()
            for lock in (self._journal_lock, getattr(self, "_endpoint_lock", None)):
                if lock is not None:
                    lock.close()
            raise

    def _drop_unstarted_journal(self) -> None:
        """A new run that failed or was stopped before its start, its journal closed:
        a header alone records nothing, and would be the run --resume takes."""
        if self.resumed is None and self.journal.frames == 0:
            self.journal_path.unlink(missing_ok=True)

    def _set_up(self, spec: Any, registry: Any) -> None:
        """The rest of ``__init__``, with the journal folder held."""
        self.control_address, self.control_keys = self._control_endpoint()
        strategy, strategy_cls, _ = make_strategy(spec, registry)
        self.resumed = self._resume(spec, strategy) if self.options.resume else None
        if self.options.resume and self.resumed is None:
            strategy, _, _ = make_strategy(spec, registry)  # the old run's replay touched it
        if self.resumed is not None:
            self.run_id = self.resumed.run_id
            self.journal_path = self.resumed.path
            self.kernel = self.resumed.kernel
            self.journal = JournalWriter.open_append(self.journal_path, fsync=spec.journal.fsync)
            for seq, actions, rejected in self.resumed.unjournaled:  # the crash cut them
                self.journal.append_actions(seq, codec.encode_outputs(actions, rejected))
            self.journal.flush()  # before the actions leave, as the loop does
        else:
            self.run_id = self.options.run_id or new_run_id(self.journal_dir)
            self.journal_path = self.journal_dir / f"{self.run_id}{JOURNAL_SUFFIX}"
            self.kernel = Kernel(spec, self.run_id, strategy, registry)
        base_dir = robot_dir(spec)
        found = registry.lookup("feeds", spec.feed.plugin)
        feed_cls = found.obj
        with blamed(f"feed {spec.feed.plugin!r} (plugin {found.plugin}) on start"):
            self.feed = feed_cls(dict(spec.feed.params), self.kernel.instruments, base_dir=base_dir)
            if found.plugin not in BUILTIN_PLUGINS:  # checked as a backtest checks them
                self.feed.checked_as = f"feed {spec.feed.plugin!r} (plugin {found.plugin})"
            if self.resumed is not None:  # recorded data goes on from there; live data says
                self.feed.resume_after(*self.resumed.market_seen)  # what the robot missed
        found = registry.lookup("gateways", spec.gateway.plugin)
        self._gateway_named = f"gateway {spec.gateway.plugin!r} (plugin {found.plugin})"
        with blamed(f"{self._gateway_named} on start", GatewayError):
            self.gateway = found.obj(
                dict(spec.gateway.params), self.kernel.instruments, robot=spec.name
            )
        self.gateway.base_dir = base_dir
        unpaced = not float(spec.feed.params.get("rate", 0) or 0)
        stepped = self.gateway.in_step  # the loop steps it: exact, paced or not
        if self.gateway.needs_market_data and not stepped and not feed_cls.live_only and unpaced:
            log.warning(
                "feed %s runs unpaced (rate 0): the robot runs ahead of the fills its "
                "gateway makes from the same data and hears of them hundreds of bars late, "
                "so its trades differ from a "
                "backtest's and from run to run; for results use `roboframe backtest`, "
                "to paper-trade the file set feed.params.rate",
                spec.feed.plugin,
            )
        unlimited = unlimited_positions(spec)
        if unlimited is not None:
            log.warning("%s", unlimited)
        if self.resumed is None:  # the plugins started: now the journal (none left if not)
            self._say_what_the_last_run_left()
            header = journal_header(spec, self.run_id, strategy_cls, "live")
            if feed_cls.live_only:  # robot time follows receipt times too (replays alike)
                header["clock"] = RECEIPT_CLOCK
            self.journal = JournalWriter(self.journal_path, header, fsync=spec.journal.fsync)
        # real-time feeds run on the wall clock; recorded and synthetic ones on their own
        ahead_ms = spec.loop.max_ahead_ms
        self.loop = RoboLoop(
            self.kernel,
            self.journal,
            self.gateway,
            wall_clock=feed_cls.live_only,
            max_ahead_ns=None if ahead_ms is None else ahead_ms * 1_000_000,
            # a resumed run goes on as its journal began: replays apply one rule to all
            receipt_clock=None if self.resumed is None else self.resumed.receipt_clock,
            gateway_named=self._gateway_named,
        )
        if self.resumed is not None:
            self.loop.seq = self.resumed.last_seq
        self.first_seq = self.loop.seq  # a resumed run's seq goes on from its journal's
        self.status: dict = {}
        self._unacknowledged: dict[str, float] = {}  # client id -> host time first seen new
        if self.resumed is not None and self.kernel.risk.unacknowledged:
            # resumed stalled: how long its orders waited is not known, so they stay late
            # until taken (timed anew, the stall was lifted at once, nothing acknowledged)
            for cid, own in self.kernel.orders.open.items():
                if own.status == NEW:
                    self._unacknowledged[cid] = -math.inf
        self.started = time.monotonic()
        self.metrics: MetricsServer | None = None

    def _say_what_the_last_run_left(self) -> None:
        from roboframe.core.resume import what_the_last_run_left

        said = what_the_last_run_left(self.journal_dir, JOURNAL_SUFFIX)
        if said is not None:
            log.warning("%s", said)

    def _resume(self, spec: Any, strategy: Any):
        from roboframe.core.resume import RunFinished, latest_unfinished, rebuild

        path = latest_unfinished(self.journal_dir, JOURNAL_SUFFIX)
        if path is None:
            log.info("no earlier run to resume: starting a new one")
            return None
        try:
            resumed = rebuild(path, spec, strategy)
        except RunFinished as exc:
            log.info("%s; starting a new run", exc)
            return None
        except JournalError as exc:  # never a new run over, or on top of, damaged state
            raise JournalError(
                f"cannot resume from {path}: {exc}\n"
                f"  hint: the run cannot continue from a damaged journal; to start a new run, "
                f"move {path.name} out of {path.parent} (keep it for inspection)"
            ) from None
        log.warning(
            "resuming run %s after seq %d (%d orders to resubmit)",
            resumed.run_id,
            resumed.last_seq,
            len(resumed.unanswered),
        )
        return resumed

    def _control_endpoint(self) -> tuple[str | None, Any]:
        """The control address and CURVE keys, checked before anything is written."""
        from roboframe.config import problems_at_start
        from roboframe.config.checks import check_control
        from roboframe.config.spec import default_control_address
        from roboframe.curve import load_server_keys

        control = self.spec.control
        address = control.address
        if control.default and self.options.journal_dir is not None:
            address = default_control_address(self.journal_dir)
        curve = {"secret_key": control.curve.secret_key} if control.curve else None
        problems = check_control({"curve": curve}, address, default=control.default)
        if problems:
            raise problems_at_start(self.spec, problems)
        self._endpoint_lock = _hold_ipc_endpoint(address)
        _refuse_a_taken_ipc_endpoint(address)
        if not address or control.curve is None:
            return address, None
        what = f"control.curve ({address})"
        return address, load_server_keys(control.curve.secret_key, control.curve.clients, what)

    def _bind_control(self, ctx: zmq.Context) -> tuple[zmq.Socket, Any]:
        """The control REP socket, bound (CURVE server and authenticator first, if any)."""
        from roboframe.curve import bind_owner_only, make_server, start_authenticator

        address = self.control_address
        auth = None
        rep = ctx.socket(zmq.REP)
        rep.setsockopt(zmq.LINGER, 0)
        rep.setsockopt(zmq.MAXMSGSIZE, CONTROL_MAX_BYTES)
        try:
            if self.control_keys is not None:
                auth = start_authenticator(ctx, self.control_keys, f"control {address}")
                make_server(rep, self.control_keys)
            bind_owner_only(rep, address)
        except (zmq.ZMQError, OSError) as exc:
            rep.close()
            if auth is not None:
                auth.stop()
            raise RoboframeError(f"cannot open the control endpoint {address}: {exc}") from None
        return rep, auth

    def request_stop(self, reason: str) -> None:
        self.loop.request_stop(reason)

    def request_unfinished(self, reason: str) -> None:
        self.loop.request_unfinished(reason)

    def _snapshot(self) -> dict:
        snap = self.kernel.snapshot()
        snap["seq"] = self.loop.seq
        snap["process_events"] = self.loop.seq - self.first_seq  # for rates over uptime_s
        snap["messages"] = self.loop.messages
        snap["malformed"] = {**self.loop.malformed, **self.feed.malformed()}
        snap["uptime_s"] = round(time.monotonic() - self.started, 3)
        return snap

    def _tick(self) -> None:
        self.status = self._snapshot()  # replaced whole: the control thread reads it lock-free
        if self.options.on_progress is not None:
            self.options.on_progress(self.status)
        self._watch_acknowledgements(time.monotonic())

    def _watch_acknowledgements(self, now: float) -> None:
        """Say when orders wait :data:`UNACKNOWLEDGED_S` of the host's clock for the
        exchange side to take them, and until they are taken let risk refuse new
        orders (cancels go; a flatten's closing orders too): a dead exchange
        process or broker bridge left the order path "up" -- the store took the
        orders -- while nothing answered them, and the strategy's next orders
        piled up behind them, to fill at once, at later prices, when it came back.

        The host's clock decides, so the loop journals what it decided (an
        ``acks`` control) and replay follows it. The kernel's state is the one
        looked at: a run resumed stalled stays so until the orders it waited on
        are taken; a run resumed otherwise times its orders' waits anew."""
        if self.loop.stopped:
            return
        waiting = self._unacknowledged
        if self.kernel.risk.gateway_down and not self.kernel.risk.unacknowledged:
            # the order path is down (the store away, the exchange's link lost): new
            # orders are refused for that already, and orders wait for it, not for
            # the exchange side -- timed from when it is back up
            waiting.clear()
            return
        new = [cid for cid, own in self.kernel.orders.open.items() if own.status == NEW]
        for cid in [cid for cid in waiting if cid not in self.kernel.orders.open]:
            del waiting[cid]
        for cid in new:
            waiting.setdefault(cid, now)
        late = [cid for cid in new if now - waiting[cid] >= UNACKNOWLEDGED_S]
        stalled = bool(self.kernel.risk.unacknowledged)
        if late and not stalled:
            named = ", ".join(late[:5]) + (" ..." if len(late) > 5 else "")
            log.warning(
                "%d order(s) not acknowledged by the exchange side for %gs or more: %s; "
                "is it running (`roboframe exchange`, the broker bridge)? New orders are "
                "refused until they are",
                len(late),
                UNACKNOWLEDGED_S,
                named,
            )
            why = f"{len(late)} order(s) unacknowledged for {UNACKNOWLEDGED_S:g}s: {named}"
            self.loop.inject(Control("acks", self.loop.now(), {"status": "late", "reason": why}))
        elif not late and stalled:
            log.warning("the exchange side acknowledges orders again; new orders may go")
            self.loop.inject(Control("acks", self.loop.now(), {"status": "ok"}))

    def run(self) -> dict:
        spec = self.spec
        ctx = zmq.Context()
        runtime = Runtime(
            robot=spec.name,
            run_id=self.run_id,
            context=ctx,
            loop_address=spec.loop.address,
            market_data_address=f"inproc://{spec.name}.{self.run_id}.md",
            store_seen=self.resumed.store_seen if self.resumed else None,
            store_anchor=self.resumed.store_anchor if self.resumed else (0, ""),
            robot_time=self.kernel.market_time,
            max_ahead_ns=self.loop.max_ahead_ns,
        )
        runtime.in_step = self.gateway.in_step
        if self.resumed is not None:
            runtime.resumed_seq = self.resumed.last_seq
            runtime.resumed_filled = {
                cid: o.filled for cid, o in self.kernel.orders.open.items() if o.filled
            }
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        threads: list[threading.Thread] = []
        pm = get_plugin_manager()
        rep = auth = None
        try:
            if spec.metrics.port is not None:  # prometheus_client is imported only then
                from roboframe.metrics import serve_robot

                self.metrics = serve_robot(self)
            bind_loop(sock, spec.loop.address)
            if self.control_address:
                rep, auth = self._bind_control(ctx)
            with blamed(f"{self._gateway_named} opening", GatewayError):
                self.gateway.open(runtime)
                seed = getattr(self.gateway, "seed_prices", None)
                if runtime.in_step and self.resumed is not None and seed is not None:
                    # a fresh engine: the run's last prices, and how far it had matched
                    seed(self.resumed.last_market, self.resumed.matched_through)
            early = self.gateway.ready_before_start
            if early:  # the order path first: a second process of the robot ends here
                threads.append(start_thread("trade-stream", trade_stream, self.gateway, runtime))
                runtime.ready.wait(READY_WAIT_S)
                if runtime.failure is not None:
                    raise GatewayError(runtime.failure[1])
            for plugin, call in call_each(
                pm,
                "roboframe_robot_start",
                robot=spec,
                run_id=self.run_id,
                journal_path=str(self.journal_path),
            ):
                with blamed(f"the roboframe_robot_start hook (plugin {plugin})"):
                    call()
            try:
                if self.resumed is None or self.resumed.last_seq == 0:  # killed before its start
                    self.loop.start()
                else:
                    after = {"after_seq": self.resumed.last_seq}
                    self.loop.inject(Control("restarted", self.loop.now(), after))
                    if self.resumed.unanswered:  # already journaled; sent the deduping way
                        with blamed(f"{self._gateway_named} sending orders again", GatewayError):
                            if runtime.in_step:
                                self.loop.step_resubmit(
                                    self.resumed.unanswered,
                                    runtime.resumed_filled,
                                    self.resumed.replaced_at,
                                )
                            else:
                                self.gateway.resubmit(self.resumed.unanswered)
            except StrategyError as exc:  # on_start raised: stopped as the loop stops
                self.loop.failed(exc)
            else:  # started: the streams and the loop
                self._tick()
                if not early:
                    threads.append(
                        start_thread("trade-stream", trade_stream, self.gateway, runtime)
                    )
                if rep is not None:
                    check_set = SetCheck(type(self.kernel.strategy), self.kernel.strategy.params)
                    threads.append(
                        start_thread(
                            "control-stream",
                            control_stream,
                            rep,
                            runtime,
                            lambda: self.status,
                            self.loop.now,  # robot time: data time for recorded feeds
                            check_set,
                        )
                    )
                tap = self.gateway.needs_market_data and not runtime.in_step
                threads.append(start_thread("data-stream", data_stream, self.feed, runtime, tap))
                deadline = None
                if self.options.duration_s is not None:
                    deadline = time.monotonic() + self.options.duration_s
                self.loop.failed_by = lambda: runtime.failure
                self.loop.run(
                    sock,
                    timer_ms=spec.loop.timer_ms,
                    drain_ms=spec.loop.drain_ms,
                    flush_ms=spec.journal.flush_ms,
                    deadline=deadline,
                    on_tick=self._tick,
                )
        except JournalError as exc:  # disk full, journal deleted ...: no order leaves unjournaled
            raise JournalError(f"{exc}; the robot stopped trading without its journal") from None
        finally:
            runtime.stop.set()
            if self.metrics is not None:
                self.status = self._snapshot()  # the last scrape sees the final figures
                self.metrics.close()
            for thread in threads:
                thread.join(timeout=5)
                if thread.is_alive():
                    log.warning("%s did not stop in time", thread.name)
            sock.close()
            self.gateway.close()
            try:
                self.journal.close()
                close_error = None
            except JournalError as exc:  # raised below, unless the run already failed
                close_error = exc
            self._drop_unstarted_journal()  # a gateway that did not open, a hook that raised
            if auth is not None:
                auth.stop()
            if not any(t.is_alive() for t in threads):
                ctx.destroy(linger=0)  # also closes what a failed start left open
            if self._endpoint_lock is not None:
                self._endpoint_lock.close()  # the endpoint is free for the next run
            if self._journal_lock is not None:
                self._journal_lock.close()  # and the journal folder
        # a run ended to be resumed at once (SIGHUP) is not broken: its orders stay its own
        if self.loop.error is not None or (
            self.loop.failure is not None and not self.loop.ended_to_resume
        ):
            # the trade stream has written what it was handed
            if spec.loop.open_orders_on_error == "cancel":
                self._cancel_left()
            else:
                self._say_orders_left()
        if close_error is not None:
            raise JournalError(f"{close_error}; the run's last journal records may be lost")
        summary = self.summary()
        for plugin, call in call_each(
            pm, "roboframe_robot_stop", robot=spec, run_id=self.run_id, summary=summary
        ):
            try:
                call()
            except Exception as exc:  # the run is over; the others' hooks still run
                log.warning(
                    "the roboframe_robot_stop hook (plugin %s) raised %s", plugin, described(exc)
                )
        return summary

    def _say_orders_left(self) -> None:
        """A strategy error, or a broken feed or gateway, stopped the robot: its open
        orders stay working at the exchange (as on any crash). Say which, and how
        to cancel them without it."""
        from roboframe.builtin.storegw import StoreGateway

        open_orders = list(self.kernel.orders.open.values())
        if not open_orders or not isinstance(self.gateway, StoreGateway):
            return  # the paper exchange's orders end with this process
        shown = ", ".join(o.client_id for o in open_orders[:5])
        log.warning(
            "%d order(s) stay working at the exchange: %s%s; `roboframe orders %s --cancel` "
            "cancels them without the robot",
            len(open_orders),
            shown,
            " ..." if len(open_orders) > 5 else "",
            self.spec.source or "ROBOT_FILE",
        )

    def _cancel_left(self) -> None:
        """A strategy error, or a broken feed or gateway, stopped the robot, whose
        file says to cancel what is left working: through the gateway, without the
        loop, waiting up to ``drain_ms`` for the exchange side to answer."""
        command = f"roboframe orders {self.spec.source or 'ROBOT_FILE'} --cancel"
        try:
            known = list(self.kernel.orders.open)  # some may not be in a store yet
            done = self.gateway.cancel_left(self.run_id, self.spec.loop.drain_ms / 1000, known)
        except Exception as exc:  # the store out of reach, a bridge's own failure
            what = str(exc) if isinstance(exc, RoboframeError) else f"{type(exc).__name__}: {exc}"
            log.error("the run's open orders were not cancelled: %s; `%s` does it", what, command)
            return
        if done is None:
            return  # they ended with the process
        asked, left = done
        self.cancelled_on_error = {"asked": len(asked), "still_open": left}
        if asked:
            log.warning(
                "the run broke: a cancel was written for each of %d open order(s) "
                "(loop.open_orders_on_error: cancel); %d closed",
                len(asked),
                len(asked) - len(left),
            )
        if left:
            log.error(
                "%d order(s) not seen closed %.1fs after their cancels: %s; is the exchange "
                "side running? `%s` waits for those the store holds",
                len(left),
                self.spec.loop.drain_ms / 1000,
                ", ".join(left[:5]) + (" ..." if len(left) > 5 else ""),
                command,
            )

    def summary(self) -> dict:
        snap = self._snapshot()
        kernel = self.kernel
        return {
            "robot": self.spec.name,
            "run_id": self.run_id,
            "journal": str(self.journal_path),
            # ended on request to be resumed at once (SIGHUP): nothing broke
            "state": ("SUSPENDED" if self.loop.ended_to_resume else "FAILED")
            if self.loop.failure
            else snap["state"],
            "stop_reason": "strategy error"
            if self.loop.error
            else (self.loop.failure or self.kernel.stop_reason),
            "error": str(self.loop.error) if self.loop.error else None,
            "error_seq": self.loop.error.seq if self.loop.error else None,
            # a strategy error stops the run at its event: a batch's later ones were
            # journaled, never handled
            "events": getattr(self.loop.error, "seq", None) or self.loop.seq,
            "messages": self.loop.messages,
            # a resumed run's events go on from its journal's; this process handled these
            "process_events": (getattr(self.loop.error, "seq", None) or self.loop.seq)
            - self.first_seq,
            "malformed": snap["malformed"],
            "orders": kernel.counters["orders"],
            "fills": kernel.counters["fills"],
            "rejections": kernel.counters["rejections"],
            "last_rejection": kernel.last_rejection,
            "cancels": kernel.counters["cancels"],
            "stale_bars": kernel.counters["stale"],
            "stale_ticks": kernel.counters["stale_ticks"],
            "open_orders": len(kernel.orders.open),
            "positions": snap["positions"],
            "net_pnl": snap["net_pnl"],
            "duration_s": snap["uptime_s"],
            "cancelled_on_error": self.cancelled_on_error,
        }


def _hold_ipc_endpoint(address: str | None) -> IO[bytes] | None:
    """An exclusive lock on ``<socket file>.lock``, held until the run ends.

    The check below asks whoever answers at the address; two robots starting
    together are both past it before either has bound, and the later bind takes
    the socket file over from the earlier without a word. The lock settles who
    owns the endpoint before anything is written; the OS drops it when its
    process dies, so a killed robot's restart is never locked out.
    """
    import fcntl

    from roboframe.curve import ipc_path

    path = ipc_path(address) if address else None
    if path is None:
        return None
    try:
        lock = open(f"{path}.lock", "ab")  # noqa: SIM115 -- held open for the run
    except OSError as exc:  # a read-only folder, say: what opens there next says why
        log.warning("control endpoint %s: no lock on %s.lock (%s)", address, path, exc.strerror)
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise _endpoint_in_use(address) from None
    except OSError as exc:  # a file system without locks: the check below must do
        lock.close()
        log.warning("control endpoint %s: no lock on %s.lock (%s)", address, path, exc)
        return None
    return lock


JOURNAL_LOCK = ".run.lock"


def _hold_journal_dir(folder: Path) -> IO[bytes] | None:
    """An exclusive lock on ``<journal folder>/.run.lock``, held until the run
    ends: a second process of the robot -- its control endpoint off, or on
    another address -- stops here, before it reads, cuts or writes a journal
    the first one is writing. The OS drops the lock when its process dies."""
    import fcntl

    from roboframe.errors import EndpointInUse

    try:
        lock = open(folder / JOURNAL_LOCK, "ab")  # noqa: SIM115 -- held open for the run
    except OSError as exc:
        log.warning("journal folder %s: no lock (%s)", folder, exc.strerror)
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise EndpointInUse(
            f"journal folder {folder} is in use by another running process\n"
            "  hint: is this robot running already (`roboframe ctl FILE status` asks it)? "
            "Else give each robot its own journal.dir"
        ) from None
    except OSError as exc:  # a file system without locks
        lock.close()
        log.warning("journal folder %s: no lock (%s)", folder, exc)
        return None
    return lock


def _endpoint_in_use(address: str) -> Any:
    from roboframe.errors import EndpointInUse

    return EndpointInUse(
        f"control endpoint {address} is in use by another running process\n"
        "  hint: is this robot running already (`roboframe ctl FILE status` asks it)? "
        "Else give each robot its own journal.dir (or control.address); "
        "'roboframe ps' lists the supervised ones"
    )


def _refuse_a_taken_ipc_endpoint(address: str | None) -> None:
    """Another live process answering at our ipc control address (two robots with one
    journal folder, say) would lose its endpoint to us without a word: refuse instead."""
    from roboframe.control import ask_json
    from roboframe.curve import ipc_path

    path = ipc_path(address) if address else None
    if path is None or not Path(path).exists():
        return
    if ask_json(address, {"command": "status", "args": {}}, timeout=0.3) is not None:
        raise _endpoint_in_use(address)


def run_robot(spec: Any, options: RunOptions | None = None) -> dict:
    """Run ``spec`` live until it stops; return the summary."""
    return LiveRobot(spec, options).run()
