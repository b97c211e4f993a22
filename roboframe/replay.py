"""Re-running a journal through a fresh kernel.

A journal's header holds the robot's whole validated config and its
strategy; its frames hold every inbound message and what each event made the
robot do. :func:`verify` feeds the messages to a new kernel and compares the
produced actions and risk rejections with the journaled ones, event by
event. Since the kernel is a pure function of its events, they match
exactly -- under any ``PYTHONHASHSEED`` -- unless the journal was altered or
the strategy's code changed.

A run the strategy stopped by raising ends with the event it raised on: its
message is the journal's last, with no actions for that event or the ones
after it in the message. A replay meets the same error there, and that is
the run reproduced (:attr:`ReplayResult.failure`), not a divergence; the same
error where the journal goes on is one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from roboframe.core import codec
from roboframe.core.kernel import Kernel
from roboframe.errors import JournalError, StrategyError
from roboframe.journal import JournalReader
from roboframe.journal.format import (
    ACTIONS,
    CLOSED,
    MESSAGE,
    NOTE,
    STRATEGY_ERROR,
    decode_note,
    follows,
    receipt_clock,
)


@dataclass
class Divergence:
    seq: int
    event: Any
    expected: tuple[list, list]
    produced: tuple[list, list]
    raised: str | None = None  # the replayed strategy raised this instead
    stopped: str | None = None  # the run's strategy raised this here, and the run ended

    def __str__(self) -> str:
        replayed = (
            f"the strategy raised: {self.raised}"
            if self.raised is not None
            else f"actions {self.produced[0]!r}, rejected {self.produced[1]!r}"
        )
        journaled = (
            f"the strategy raised: {self.stopped} (the run stopped there)"
            if self.stopped is not None
            else f"actions {self.expected[0]!r}, rejected {self.expected[1]!r}"
        )
        return (
            f"seq {self.seq}: event {self.event!r}\n"
            f"  journaled: {journaled}\n"
            f"  replayed:  {replayed}"
        )


@dataclass
class ReplayResult:
    header: dict
    kernel: Kernel
    events: int = 0
    compared: int = 0
    divergence: Divergence | None = None
    torn_tail: Any = None
    unjournaled: int = 0  # events of the last message whose outputs the journal ends before
    outputs: dict[int, tuple[list, list]] = field(default_factory=dict)
    failure: StrategyError | None = None  # the strategy error the run stopped on, met again

    @property
    def ok(self) -> bool:
        return self.divergence is None


def _as_now(journaled: list, produced: list) -> list:
    """``journaled`` refusals as this roboframe words them: the kernel's own refusal
    of a cancel was ``rejected`` before ``cancel_rejected`` existed, and a journal
    of then must still verify -- and resume, with orders working at the exchange."""
    if len(journaled) != len(produced):
        return journaled
    return [
        now if (then.status, now.status) == ("rejected", "cancel_rejected")
        and msgspec.structs.replace(then, status="cancel_rejected") == now else then
        for then, now in zip(journaled, produced, strict=True)
    ]  # fmt: skip


class OutputCheck:
    """Matches what a replayed kernel does with the journal's ACTIONS records.

    Call :meth:`message` when a new MESSAGE frame starts, :meth:`produced`
    for each event's outputs, :meth:`journaled` for each ACTIONS record; each
    returns a :class:`Divergence` or None. Outputs of a message are matched
    before the next message starts: an ACTIONS record is always written right
    after its message. Outputs still waiting at the end of the journal are
    :attr:`unjournaled`, not a divergence: the writer stopped between the last
    message and its ACTIONS frame, and nothing of them left the robot (the
    journal is flushed before any order is sent).
    """

    def __init__(self) -> None:
        self.pending: dict[int, tuple[Any, tuple[list, list]]] = {}
        self.compared = 0
        self._message_at = -1
        self._events: dict[int, Any] = {}  # the current message's events, by seq

    def message(self, offset: int) -> Divergence | None:
        if offset == self._message_at:
            return None
        self._message_at = offset
        self._events.clear()
        return self.closed()

    def produced(self, seq: int, event: Any, outputs: tuple[list, list]) -> None:
        self._events[seq] = event
        if outputs[0] or outputs[1]:
            self.pending[seq] = (event, outputs)

    def event(self, seq: int) -> Any:
        """The event ``seq`` of the current message, when it was replayed."""
        return self._events.get(seq)

    def journaled(self, record: Any) -> Divergence | None:
        actions, rejected = codec.decode_outputs(record.payload)
        expected = (list(actions), list(rejected))
        event, produced = self.pending.pop(record.seq, (self.event(record.seq), ([], [])))
        self.compared += 1
        if produced == expected or produced == (expected[0], _as_now(expected[1], produced[1])):
            return None
        return Divergence(record.seq, event, expected, produced)

    def closed(self) -> Divergence | None:
        """Outputs still waiting when their message is over -- a new one starts, or
        the journal says its run ended cleanly here (see ``CLOSED``) -- are ones
        the run never produced: the first of them is a divergence."""
        if not self.pending:
            return None
        seq = min(self.pending)
        event, produced = self.pending[seq]
        self.pending.clear()
        return Divergence(seq, event, ([], []), produced)

    @property
    def unjournaled(self) -> int:
        return len(self.pending)


def robot_header(reader: JournalReader) -> dict:
    """``reader``'s header, refused in words unless this roboframe can rebuild its robot.

    A journal another tool wrote with :class:`JournalWriter` has no robot in
    it, and one of a newer roboframe may hold events this codec cannot read.
    """
    header = reader.header
    if not isinstance(header.get("config"), dict) or "run_id" not in header:
        raise JournalError(
            f"journal {reader.path} has no robot config in its header: "
            "it was not written by a robot run, and there is no robot to replay"
        )
    used = header.get("codec") or {}
    name, version = used.get("name", codec.CODEC), used.get("version", codec.CODEC_VERSION)
    if name != codec.CODEC or not isinstance(version, int) or version > codec.CODEC_VERSION:
        raise JournalError(
            f"journal {reader.path}: its events are in codec {name} version {version}; this "
            f"roboframe reads {codec.CODEC} version {codec.CODEC_VERSION} (upgrade roboframe)"
        )
    return header


_FILE_ORDER = ("name", "description", "symbols", "feed", "strategy", "gateway", "risk", "journal")


def robot_file_text(header: dict, path: Path, as_json: bool = False) -> str:
    """The robot file a run started with, from its journal's header (the
    validated file, defaults filled in): put back, it resumes that run, whose
    config hash it has."""
    config = header["config"]
    first = [key for key in _FILE_ORDER if key in config]
    config = {key: config[key] for key in [*first, *sorted(set(config) - set(first))]}
    control = config.get("control")
    if isinstance(control, dict) and control.get("address", 0) is None:
        # the default endpoint is stored as null, which written out would turn the
        # endpoint off (ctl, ps, the one-process lock); left out, the default comes
        # back, with the same config hash
        config["control"] = {k: v for k, v in control.items() if k != "address"}
    if as_json:
        return json.dumps(config, indent=2, default=str) + "\n"
    return (
        f"# the robot file of run {header['run_id']} as it started, defaults filled in "
        f"(from {path.name})\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )


def message_events(reader: JournalReader, record: Any) -> list:
    """The events of one MESSAGE record, refused in words when this codec cannot
    read them (the checksum was good: written so, not damaged)."""
    try:
        return codec.events_in(codec.decode(record.payload))
    except codec.DECODE_ERRORS as exc:
        raise JournalError(
            f"journal {reader.path}: the message at byte {record.offset} "
            f"(seq {record.seq}) is not an event this roboframe reads: {exc}"
        ) from None


def header_source(header: dict) -> str | None:
    """The robot file a journal's run was started from, for finding a strategy
    module kept beside it: where it was, when it is still there (a replay from
    any folder), else the path as the run named it (relative to this folder:
    journals copied with the robots to another host)."""
    where = header.get("source_path")
    if where and Path(where).is_file():
        return where
    return header.get("source")


def kernel_from_header(header: dict, registry=None) -> Kernel:
    """A fresh kernel for the robot a journal header describes."""
    from roboframe.config import spec_from_dict
    from roboframe.core.robot import make_strategy

    spec = spec_from_dict(header["config"], source=header_source(header), registry=registry)
    strategy, _, _ = make_strategy(spec, registry)
    return follow_rules(Kernel(spec, header["run_id"], strategy, registry), header)


def follow_rules(kernel: Kernel, header: dict) -> Kernel:
    """``kernel`` set to the rules the journal's run had: a journal written before a
    rule changed replays (and resumes) by the old one, or it would not verify."""
    kernel.risk.from_day_before = follows(header, "loss_from")
    kernel.flatten_pauses = follows(header, "flatten")
    kernel.reduce_cancels = follows(header, "reduce")
    kernel.timers_turn_day = follows(header, "day_turns")
    kernel.risk.exact_rate = follows(header, "rate")
    kernel.risk.by_trading_days = follows(header, "loss_days")
    kernel.risk.band_needs_price = follows(header, "band")
    kernel.quiet_after_stop = follows(header, "after_stop")
    kernel.risk.flatten_passes_checks = follows(header, "flatten_checks")
    kernel.fills_checked = follows(header, "fills")
    kernel.risk.stop_is_final = follows(header, "stop")
    kernel.fees_checked = follows(header, "fees")
    kernel.orders.replace_waits = follows(header, "replace")
    kernel.cancels_again = follows(header, "cancels")
    kernel.orders.rejected_removes = follows(header, "rejected")
    return kernel


def iter_events(
    reader: JournalReader, records: Iterator | None = None, *, notes: bool = False
) -> Iterator[tuple[int, Any, Any]]:
    """``(seq, event, record)`` for every journaled inbound event, and
    ``(seq, None, record)`` for every action record -- and with ``notes`` every
    NOTE record (of ``records``, by default all of ``reader``'s)."""
    for record in reader.records() if records is None else records:
        if record.kind == MESSAGE:
            events = message_events(reader, record)
            for offset, event in enumerate(events):
                yield record.seq + offset, event, record
        elif record.kind == ACTIONS or (notes and record.kind == NOTE):
            yield record.seq, None, record


def failed_on(exc: StrategyError, seq: int, event: Any) -> StrategyError:
    """``exc``, marked with the event it was raised on."""
    exc.seq = seq
    if exc.event is None:
        exc.event = event
    return exc


def closed_note(record: Any) -> bool:
    """Whether a NOTE says its run ended cleanly there."""
    return decode_note(record.payload).get("note") == CLOSED


def stopped_note(record: Any) -> tuple[int, str] | None:
    """``(seq, error)`` of a NOTE saying a strategy error stopped the run there."""
    note = decode_note(record.payload)
    if note.get("note") != STRATEGY_ERROR:
        return None
    return record.seq, str(note.get("error", ""))


def unraised(check: OutputCheck, seq: int, error: str) -> Divergence:
    """The run ended on a strategy error at ``seq`` that the replay did not raise:
    the strategy changed since (and the journal has nothing after that event)."""
    event, produced = check.pending.pop(seq, (check.event(seq), ([], [])))
    return Divergence(seq, event, ([], []), produced, stopped=error)


def stopped_there(
    records: Iterator, check: OutputCheck, failure: StrategyError
) -> Divergence | None:
    """After the strategy raised on event ``failure.seq``: None when ``records``
    (the journal after that event's message) end as a run stopped by that error
    ends -- the outputs of the message's earlier events and nothing more -- or
    the divergence: the run went on from there, so its strategy did not raise."""
    seq = failure.seq or 0
    for record in records:
        if record.kind == ACTIONS and record.seq < seq:
            divergence = check.journaled(record)
            if divergence is not None:
                return divergence
        elif record.kind in (ACTIONS, MESSAGE):
            expected: tuple[list, list] = ([], [])
            if record.kind == ACTIONS and record.seq == seq:
                actions, rejected = codec.decode_outputs(record.payload)
                expected = (list(actions), list(rejected))
            return Divergence(seq, failure.event, expected, ([], []), raised=str(failure))
    return None


_RUN_LOGGERS = ("roboframe.core.kernel", "roboframe.risk.limits", "roboframe.core.orders")


def quietly(replay: Callable) -> Callable:
    """Run ``replay`` with the kernel's warnings held back: they are the run's, said
    when it ran. A replay repeated them at its own time, by the hundred -- every
    outage of the order path, down and up. Errors still show."""

    @functools.wraps(replay)
    def run(*args: Any, **kwargs: Any) -> Any:
        loggers = [logging.getLogger(name) for name in _RUN_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            return replay(*args, **kwargs)
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

    return run


@quietly
def verify(path: str | Path, *, registry=None, keep_outputs: bool = False) -> ReplayResult:
    """Replay ``path`` and compare every event's outputs with the journal's."""
    reader = JournalReader(path)
    kernel = kernel_from_header(robot_header(reader), registry)
    result = ReplayResult(reader.header, kernel)
    check = OutputCheck()
    records = reader.records()
    stopped: tuple[int, str] | None = None  # the strategy error the run ended on, journaled
    receipt = receipt_clock(reader.header)
    for seq, event, record in iter_events(reader, records, notes=True):
        if event is None and record.kind == NOTE:
            stopped = stopped_note(record) or stopped
            if closed_note(record):
                result.divergence = check.closed()
                if result.divergence is not None:
                    break
            continue
        stopped = None  # records after the note: a run resumed with the strategy fixed
        if event is None:
            result.divergence = check.journaled(record)
        else:
            result.divergence = check.message(record.offset)
            if receipt:
                kernel.received(record.recv_ns)
            if result.divergence is None:
                try:
                    actions = kernel.handle(event)
                except StrategyError as exc:
                    result.failure = failed_on(exc, seq, event)
                    result.divergence = stopped_there(records, check, exc)
                    break
                produced = (list(actions), kernel.take_rejected())
                result.events += 1
                check.produced(seq, event, produced)
                if keep_outputs and (produced[0] or produced[1]):
                    result.outputs[seq] = produced
        if result.divergence is not None:
            break
    if stopped is not None and result.ok and result.failure is None:
        result.divergence = unraised(check, *stopped)
    result.compared = check.compared
    result.unjournaled = check.unjournaled
    result.torn_tail = reader.torn_tail
    return result


@quietly
def state_at(
    path: str | Path, until: int, *, registry=None
) -> tuple[Kernel, int, StrategyError | None]:
    """The kernel after every event up to sequence number ``until``; the last seq
    handled; and the strategy error the run stopped on, when that came first.

    The same error where the journal goes on (the strategy changed since) is raised.
    """
    reader = JournalReader(path)
    kernel = kernel_from_header(robot_header(reader), registry)
    last = 0
    records = reader.records()
    check = OutputCheck()  # only to tell the run's own failure from a changed strategy
    receipt = receipt_clock(reader.header)
    for seq, event, record in iter_events(reader, records):
        if event is None:
            check.journaled(record)
            continue
        if seq > until:
            break
        if receipt:
            kernel.received(record.recv_ns)
        check.message(record.offset)
        try:
            actions = kernel.handle(event)
        except StrategyError as exc:
            failed_on(exc, seq, event)
            if stopped_there(records, check, exc) is not None:
                raise
            return kernel, last, exc
        check.produced(seq, event, (list(actions), kernel.take_rejected()))
        last = seq
    return kernel, last, None


def strategy_changes(header: dict, registry=None) -> list[str]:
    """How the strategy, its risk checks or its config now differ from what wrote
    the journal."""
    from roboframe.config import spec_from_dict
    from roboframe.core.robot import check_sources, make_strategy, source_hash

    spec = spec_from_dict(header["config"], source=header_source(header), registry=registry)
    _, cls, _ = make_strategy(spec, registry)
    then = header.get("strategy", {})
    changes = []
    if str(cls.version) != then.get("version"):
        changes.append(f"strategy version {then.get('version')} -> {cls.version}")
    now_hash = source_hash(cls)
    if then.get("source_sha256") and now_hash and now_hash != then["source_sha256"]:
        changes.append(f"strategy source {cls.__module__} changed since the journal was written")
    checks_then = header.get("risk_checks") or {}  # journals before it: none recorded
    for name, now in check_sources(spec, registry).items():
        if checks_then.get(name) and now and now != checks_then[name]:
            changes.append(f"risk check {name}'s source changed since the journal was written")
    if spec.config_hash != header.get("config_hash"):
        changes.append("config hash differs (the robot definition or its defaults changed)")
    return changes
