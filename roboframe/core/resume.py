"""Resuming a run after a crash: the journal rebuilds the robot exactly.

The latest journal of the robot that did not reach its stop is reopened: a
torn last frame is cut, every journaled event is fed to a fresh kernel (the
same pure function, so the same state: what it does is checked against the
journaled actions, and a strategy whose code now acts differently is
refused), and the run continues in the same file with the next sequence
number. Every open order (for its lots left) and every cancel and replace
still waiting for an answer is sent again
(:func:`unanswered`); an order store's unique client ids make a repeated
order a no-op when it did arrive. When the
crash cut the last event's ACTIONS record (the loop dies while flushing it,
so none of those actions left), the resumed run journals that record first
and then sends them, so the journal says what the robot did. The
trade stream resumes after the last store trade and update the journal
holds, so nothing is missed and nothing is repeated.

A run the strategy stopped by raising resumes once the strategy is fixed:
the event it raised on (and the rest of that message, never handled) is
handled by the new code like a message whose actions the crash cut. Until
then the rebuild meets the same error and says so.
"""

from __future__ import annotations

import json
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roboframe.config.spec import ABSENT, config_changes
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Replace, Tick
from roboframe.core.kernel import Kernel
from roboframe.errors import ConfigError, RoboframeError, StrategyError
from roboframe.journal import MESSAGE, NOTE, JournalReader, recover
from roboframe.journal.format import receipt_clock
from roboframe.replay import follow_rules, quietly
from roboframe.risk.limits import STOPPED

log = logging.getLogger(__name__)


class RunFinished(RoboframeError):
    """The latest run reached its stop: there is nothing to resume."""


@dataclass
class Resumed:
    path: Path
    run_id: str
    kernel: Kernel
    last_seq: int
    store_seen: tuple[frozenset[int], frozenset[int]]
    """The order-store ids of the trades and updates the journal holds: the trade
    stream reads the run's changes again from the start and forwards only the
    others. Not "after the highest": on the fast path a higher id can come over
    the socket before a lower one is in the store (an order that went the
    store's way), and a read after the highest never brought the lower."""
    unanswered: list[NewOrder | Cancel | Replace]  # to send again: see unanswered()
    market_seen: tuple[int, dict[str, int]] = (0, {})  # see Feed.resume_after
    unjournaled: list[tuple[int, list, list]] = field(default_factory=list)
    """``(seq, actions, rejected)`` of the last message's events whose ACTIONS record
    the crash cut: to journal before anything else, as the loop would have."""
    receipt_clock: bool = False  # its header says robot time follows receipt times
    last_market: dict = field(default_factory=dict)
    """Each symbol's last journaled market event: a paper engine's prices anew."""
    matched_through: dict[str, int] = field(default_factory=dict)
    """Each symbol's time up to which a stepped paper engine had matched: its last
    market event's, or a later fill's -- the fills of a bar are journaled before
    the bar, which a run stopped between them has not handled, and the feed
    sends it again: matched again, it filled its volume twice."""
    replaced_at: dict[str, int] = field(default_factory=dict)
    """When each open order was last replaced: a paper engine's queue time."""
    store_anchor: tuple[int, str] = (0, "")
    """The highest order-store trade id the journal holds, and its order's client
    id: the store must hold that very trade (see ``OrderStore.check_not_behind``)."""


def latest_unfinished(journal_dir: Path, suffix: str) -> Path | None:
    """The newest live-run journal in ``journal_dir`` (backtests excluded)."""
    runs = [p for p in journal_dir.glob(f"*{suffix}") if not p.name.startswith("bt-")]
    return max(runs, key=lambda p: _started(p, suffix)) if runs else None


def _started(path: Path, suffix: str) -> tuple[str, int]:
    """When a run started: its second, then which run of that second it was.

    Run ids are ``T``, ``T.2``, ``T.3`` ... for runs started in one second
    (:func:`roboframe.core.robot.new_run_id`); by name alone ``T`` would sort
    after ``T.2`` and ``T.10`` before ``T.9``.
    """
    run_id = path.name.removesuffix(suffix)
    base, dot, n = run_id.rpartition(".")
    return (base, int(n)) if dot and n.isdigit() else (run_id, 1)


def unfinished_run(journal_dir: Path, suffix: str) -> tuple[Path, dict] | None:
    """The robot's last live run, when it started and did not stop (a crash, or
    an end to be resumed): its journal and the journal's header. A torn last
    frame is cut first, as a resume cuts it."""
    path = latest_unfinished(journal_dir, suffix)
    if path is None:
        return None
    cut = recover(path)
    if cut:
        log.warning("%s: cut a torn last frame of %d bytes", path, cut)
    reader = JournalReader(path)
    if not _started_any(reader) or _stopped(reader):
        return None
    return path, reader.header


def what_the_last_run_left(journal_dir: Path, suffix: str) -> str | None:
    """Said when a new run starts flat: what the robot's last run left -- its
    position and working orders, from the note its clean end wrote -- or that
    it never ended (a crash, to be resumed). None when it left nothing."""
    from roboframe.journal.format import CLOSED, decode_note

    path = latest_unfinished(journal_dir, suffix)
    if path is None:
        return None
    started, last = False, None
    try:
        for record in JournalReader(path).records():
            started = started or record.kind == MESSAGE
            last = record
    except RoboframeError:
        return None  # --resume says what is wrong with it
    if not started:
        return None  # it never started
    note = decode_note(last.payload) if last is not None and last.kind == NOTE else {}
    if note.get("note") != CLOSED:
        return (
            f"the last run ({path.name}) did not end cleanly; its position and orders are "
            f"not this run's: `roboframe run --resume` goes on with it (`--finish` "
            "stops it, as a stop would have)"
        )
    left = note.get("left") or {}
    held = [f"{symbol} {qty:+d}" for symbol, qty in sorted((left.get("positions") or {}).items())]
    working = left.get("open_orders") or 0
    if not held and not working:
        return None
    if working:
        named = left.get("orders") or []  # a journal of an older roboframe names none
        shown = f": {', '.join(named)}{' ...' if working > len(named) else ''}" if named else ""
        held.append(
            f"{working} order(s) left working{shown} (they may have filled since; "
            "`roboframe orders` lists what an order store holds, `--cancel` cancels)"
        )
    return (
        f"the last run ({path.name}) ended with {', '.join(held)}; this run starts flat and "
        "does not manage them"
    )


def _stopped(reader: JournalReader) -> bool:
    """Whether the journal holds its run's stop, read without a kernel."""
    from roboframe.core.events import Control
    from roboframe.replay import iter_events

    return any(
        type(event) is Control and event.command == "stop"
        for _seq, event, _record in iter_events(reader)
    )


FEED_KEYS = "feed."
"""What a run resumes under when changed: where its market data come from (a
broken feed's address or file put right). The kernel never sees them, so the
journal replays as before; anything else changes the run itself."""


FEED_TIME_KEYS = frozenset({"tz", "time_is", "interval", "start"})
"""Feed settings that move the times of the data a feed reads (a file's time
zone, bar times as opens or closes, a generated series' start and step). A
resumed run takes market data after its last journaled time: under such a
change the data it had came again (a file read three hours later traded its
first bars twice), or some never came."""


def resumable(changes: list) -> bool:
    """Whether a run resumes under a robot file with ``changes``
    (``config_changes``): its feed's alone, none moving its data's times."""
    return bool(changes) and all(
        key.startswith(FEED_KEYS) and key.rsplit(".", 1)[-1] not in FEED_TIME_KEYS
        for key, _, _ in changes
    )


def _resumable_change(path: Path, header: dict, spec: Any) -> None:
    """Let a resume under a file whose feed alone changed go on, saying so;
    refuse any other change (see :func:`changed_file`)."""
    changes = config_changes(header.get("config") or {}, spec.raw)
    if not resumable(changes):
        raise changed_file(path, header, spec)
    log.warning(
        "%s: resumed under a changed market-data feed (the run's strategy, risk and "
        "orders are as it started): %s",
        path,
        "; ".join(f"{key}: {_shown(old)} -> {_shown(new)}" for key, old, new in changes),
    )


def changed_file(path: Path, header: dict, spec: Any) -> ConfigError:
    """The refusal of a resume under a changed robot file, naming what changed
    and the ways on: the run as it started (the file put back; strategy params
    then changed live), or a new run, which starts flat."""
    changes = config_changes(header.get("config") or {}, spec.raw)
    changes.sort(key=lambda change: resumable([change]))  # what refuses, first
    shown = [f"  {key}: {_shown(old)} -> {_shown(new)}" for key, old, new in changes[:_SHOWN]]
    if len(changes) > _SHOWN:
        shown.append(f"  ... and {len(changes) - _SHOWN} more")
    robot_file = spec.source or "the robot file"
    live = ""
    params = [(key, new) for key, _, new in changes if key.startswith("strategy.params.")]
    if params and len(params) == len(changes) and all(new is not ABSENT for _, new in params):
        sets = " ".join(f"{key[len('strategy.params.') :]}={_as_arg(new)}" for key, new in params)
        live = f", then `roboframe ctl {robot_file} set {sets}` makes the change live"
    return ConfigError(
        f"{path}: the robot file changed since that run started:\n"
        + "\n".join(shown)
        + "\nit cannot be resumed under the changed file (a change of its feed alone "
        f"can, but for {', '.join(sorted(FEED_TIME_KEYS))}, which move its data's times: "
        "the data the run had would come again). To resume it, put the file back "
        f"as that run had it (`roboframe replay {path} --config` prints it) and resume"
        f"{live}; or start a new run (without --resume): it starts flat, and this run's "
        "position and working orders are left as they are, unmanaged"
    )


_SHOWN = 10  # changed keys named in the refusal


def _shown(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value, default=str)


def _as_arg(value: Any) -> str:
    """A value as ``ctl set`` takes it: JSON, a string bare unless it would
    read as JSON (``"12"`` stays a string)."""
    text = json.dumps(value, default=str)
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            text = value
    return shlex.quote(text)


def _started_any(reader: JournalReader) -> bool:
    """Whether the journal holds any event: a run that failed to open its gateway
    or endpoints, before its start, wrote its header alone."""
    return any(record.kind == MESSAGE for record in reader.records())


@quietly
def rebuild(path: Path, spec: Any, strategy: Any) -> Resumed:
    """Feed ``path``'s events to a fresh kernel; refuse a finished or foreign run."""
    from roboframe.replay import OutputCheck, failed_on, iter_events, stopped_there

    cut = recover(path)
    if cut:
        log.warning("%s: cut a torn last frame of %d bytes", path, cut)
    reader = JournalReader(path)
    header = reader.header
    if header.get("robot") != spec.name:
        raise ConfigError(f"{path} belongs to robot {header.get('robot')!r}, not {spec.name!r}")
    if header.get("config_hash") != spec.config_hash:
        if _stopped(reader):  # a finished run of the old file: nothing to resume anyway
            raise RunFinished(f"{path}: that run has already stopped")
        if not _started_any(reader):  # it failed before its first event: nothing to lose
            raise RunFinished(f"{path}: that run never started (its journal has no events)")
        _resumable_change(path, header, spec)
    kernel = follow_rules(Kernel(spec, header["run_id"], strategy), header)  # to its end
    last_seq = 0
    trades: set[int] = set()
    refs: set[int] = set()
    anchor = (0, "")
    last_ts, at_last = 0, {}
    last_market: dict = {}
    matched: dict[str, int] = {}
    replaced_at: dict[str, int] = {}
    check = OutputCheck()  # the current message's outputs, until their ACTIONS record
    records = reader.records()
    receipt = receipt_clock(header)
    for seq, event, record in iter_events(reader, records):
        if event is None:
            _refuse_divergence(reader, check.journaled(record))
            continue
        _refuse_divergence(reader, check.message(record.offset))
        if receipt:
            kernel.received(record.recv_ns)
        try:
            actions = kernel.handle(event)
        except StrategyError as exc:
            failed_on(exc, seq, event)
            _refuse_divergence(reader, stopped_there(records, check, exc))
            raise _still_failing(path, exc) from None
        check.produced(seq, event, (list(actions), kernel.take_rejected()))
        last_seq = seq
        kind = type(event)
        if kind is Bar or kind is Tick:
            if event.ts != last_ts:
                last_ts, at_last = event.ts, {}
            at_last[event.symbol] = at_last.get(event.symbol, 0) + 1
            last_market[event.symbol] = event
            matched[event.symbol] = max(matched.get(event.symbol, event.ts), event.ts)
        elif kind is Fill:
            if event.trade_id.isdigit():
                trade_id = int(event.trade_id)
                trades.add(trade_id)
                if trade_id > anchor[0]:
                    anchor = (trade_id, event.client_id)
            matched[event.symbol] = max(matched.get(event.symbol, event.ts), event.ts)
        elif kind is OrderUpdate:
            if event.ref.isdigit():
                refs.add(int(event.ref))
            if event.status == "replaced":
                replaced_at[event.client_id] = event.ts
    if kernel.risk.state == STOPPED:
        raise RunFinished(f"{path}: that run has already stopped")
    unjournaled = [(seq, *check.pending[seq][1]) for seq in sorted(check.pending)]
    return Resumed(
        path,
        header["run_id"],
        kernel,
        last_seq,
        (frozenset(trades), frozenset(refs)),
        unanswered(kernel),
        (last_ts, at_last),
        unjournaled,
        receipt,
        last_market,
        matched,
        replaced_at,
        anchor,
    )


def _refuse_divergence(reader: JournalReader, divergence: Any) -> None:
    """Stop a rebuild whose kernel does not do what the journal says the run did.

    The strategy's code changed since the run (same robot file, new behaviour):
    the rebuilt orders and positions would not be the run's, and resending its
    "open orders" would place orders it never sent, under client ids the
    order store already holds for others. A run that reached its stop needs
    no rebuild: a new run starts, with the new code.
    """
    if divergence is None:
        return
    if _stopped(reader):
        raise RunFinished(f"{reader.path}: that run has already stopped")
    path = reader.path
    raise ConfigError(
        f"{path}: the strategy now acts differently from the run it would resume, "
        f"so that run's state cannot be rebuilt from its journal; first at {divergence}\n"
        "  hint: run it with the strategy code that run used, or, to start a new run, "
        f"move {path.name} out of {path.parent} (its open orders are then yours to handle)"
    )


def _still_failing(path: Path, exc: StrategyError) -> StrategyError:
    """The run stopped on this error, and the strategy still raises it."""
    err = StrategyError(
        f"{path}: the run stopped on a strategy error at seq {exc.seq}, and the strategy "
        f"still raises there: {exc}\n"
        "  hint: fix the strategy; resuming then goes on from that event (meanwhile the "
        "run's orders stay working, unless loop.open_orders_on_error: cancel cancelled "
        "them; `roboframe orders` shows them)"
    )
    err.seq, err.event = exc.seq, exc.event
    return err


def unanswered(kernel: Kernel) -> list[NewOrder | Cancel | Replace]:
    """What to send again after a crash.

    - Every open order, for its remaining lots. One the gateway already holds
      is a duplicate it ignores (same client id; an order store's unique
      index). One it does not hold is placed: an order never acknowledged,
      or a resting order of the embedded paper exchange, which starts empty
      and would otherwise never fill it.
    - Every cancel and replace that got no answer. The crash may have come
      before it left; a cancel that did arrive is answered again, which the
      kernel takes in its stride, and a replace that did arrive is answered
      only once by the order stores' exchange (a second ``replaced`` would
      be an anomaly). Without this, a lost cancel would leave the order open
      at the exchange while the robot waits for an answer and never cancels
      it again.
    """
    out: list[NewOrder | Cancel | Replace] = []
    for o in kernel.orders.open.values():
        left = o.qty - o.filled
        if left > 0:  # none: filled up to its quantity, a replace to more unanswered
            out.append(NewOrder(o.client_id, o.symbol, o.side, left, o.type, o.price))
        if o.cancel_pending:
            out.append(Cancel(o.client_id))
        elif o.replace_pending is not None:
            out.append(Replace(o.client_id, *o.replace_pending))
    return out
