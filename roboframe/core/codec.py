"""The one wire and journal codec: msgpack through msgspec, version 1.

Wire format (documented for non-Python peers)
---------------------------------------------

One ZeroMQ frame carries one message, a msgpack array whose first element is
the kind code of :mod:`roboframe.core.events` and whose other elements are the
type's fields in declaration order::

    Tick   [101, symbol, ts, price, qty, bid, ask]
    Bar    [102, symbol, ts, open, high, low, close, volume]
    OrderUpdate [103, client_id, ts, status, reason, ref]
    Fill   [104, client_id, ts, symbol, side, qty, price, trade_id, fee]
    Control [105, command, ts, args]
    Timer  [106, name, ts]
    NewOrder [151, client_id, symbol, side, qty, type, price]
    Cancel [152, client_id]
    Replace [153, client_id, qty, price]
    Batch  [100, [event, event, ...]]

Trailing fields with defaults may be omitted. A *batch* lets a feeder hand
the loop many events in one frame; :func:`encode_batch` builds one from
already-encoded events without decoding them. Kind codes 100-199 are codec
version 1; an incompatible change moves to 200-299, so an older reader
rejects the message as an unknown kind. Pickle is never used.

msgspec was chosen over plain ``msgpack`` and ``orjson`` after measuring the
three on this workload (``bench/codec.py``): it decodes straight into typed,
validated, immutable objects, which the others need a second Python step for.
"""

from __future__ import annotations

import msgspec

from roboframe.core.events import (
    Action,
    Bar,
    Batch,
    Cancel,
    Control,
    Fill,
    NewOrder,
    OrderUpdate,
    Replace,
    Tick,
    Timer,
)

CODEC = "msgpack-msgspec"
CODEC_VERSION = 1

DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
"""Everything decoding hostile bytes may raise: catch this, not ``DecodeError`` alone.

:class:`Control` ``args`` may nest; nesting deeper than the interpreter's recursion
limit (about a thousand levels, a 2 kB message) makes msgspec raise ``RecursionError``.
"""

_encoder = msgspec.msgpack.Encoder()
_inbound = msgspec.msgpack.Decoder(Tick | Bar | OrderUpdate | Fill | Control | Timer | Batch)
_actions = msgspec.msgpack.Decoder(list[NewOrder | Cancel | Replace])
_any = msgspec.msgpack.Decoder(
    Tick | Bar | OrderUpdate | Fill | Control | Timer | Batch | NewOrder | Cancel | Replace
)

encode = _encoder.encode
"""Encode any event, action, batch or list of them to bytes."""

decode = _inbound.decode
"""Decode one inbound wire message: an event or a :class:`Batch`.

Raises :class:`msgspec.DecodeError` (``ValidationError`` is a subclass) on
anything malformed: bad msgpack, unknown kind, wrong field types; and
``RecursionError`` on absurdly deep ``Control.args`` (catch :data:`DECODE_ERRORS`).
"""

_event = msgspec.msgpack.Decoder(Tick | Bar | OrderUpdate | Fill | Control | Timer)
_batch_parts = msgspec.msgpack.Decoder(tuple[int, list[msgspec.Raw]])

decode_event = _event.decode
"""Decode one inbound event (not a batch); raises as :func:`decode` does."""


def batch_parts(raw: bytes) -> list[bytes] | None:
    """The encoded events of a :class:`Batch` message whose frame is intact (its
    events may not be), or None: a message that a malformed event made
    undecodable as a whole still gives up its good events this way."""
    try:
        kind, parts = _batch_parts.decode(raw)
    except DECODE_ERRORS:
        return None
    return [bytes(part) for part in parts] if kind == BATCH_KIND else None


decode_actions = _actions.decode
"""Decode a list of actions (journal action records, gateway order frames)."""


EVENTS_PER_MESSAGE = 1024
"""The most events :func:`encode_events` puts in one message: a catch-up of a
long outage stays well under the loop's message size limit."""


def encode_events(events: list) -> list[bytes]:
    """``events`` as wire messages, in order: one alone as itself, more as
    :class:`Batch` messages of at most :data:`EVENTS_PER_MESSAGE` each."""
    if len(events) == 1:
        return [_encoder.encode(events[0])]
    step = EVENTS_PER_MESSAGE
    return [_encoder.encode(Batch(events[i : i + step])) for i in range(0, len(events), step)]


def events_in(msg: object) -> list | tuple:
    """The events of a decoded message: a :class:`Batch`'s, or the one event."""
    return msg.events if type(msg) is Batch else (msg,)


decode_any = _any.decode
"""Decode one message of any kind, actions included."""

_outputs = msgspec.msgpack.Decoder(tuple[list[NewOrder | Cancel | Replace], list[OrderUpdate]])


def encode_outputs(actions: list[Action], rejected: list[OrderUpdate]) -> bytes:
    """What one event made the robot do: ``[actions, risk rejections]``."""
    return _encoder.encode((actions, rejected))


decode_outputs = _outputs.decode
"""Decode :func:`encode_outputs` bytes to ``(actions, rejected)``."""


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


BATCH_KIND = 100
_BATCH_PREFIX = b"\x92\x64"  # fixarray(2), kind 100


def encode_batch(encoded_events: list[bytes]) -> bytes:
    """Join already-encoded events into one :class:`Batch` message."""
    return _BATCH_PREFIX + _array_header(len(encoded_events)) + b"".join(encoded_events)


def is_action(obj: object) -> bool:
    return isinstance(obj, (NewOrder, Cancel, Replace))


def action_to_dict(action: Action) -> dict:
    """A plain dict of an action, for JSON output and error messages."""
    out = {"kind": type(action).__name__}
    out.update(msgspec.structs.asdict(action))
    return out


def to_builtins(obj: object) -> object:
    """Plain Python values (dicts, lists, str, int) of any message."""
    return msgspec.to_builtins(obj)
