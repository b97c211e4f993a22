"""The journal's on-disk format, version 1 -- enough to parse it in any language.

A journal is one append-only file per run. All integers are little-endian;
CRC-32 is the zlib/PNG/Ethernet one (``zlib.crc32``, polynomial 0xEDB88320,
initial value and final xor 0xFFFFFFFF).

File header: 18 fixed bytes, then the JSON header::

    offset  size    field
    0       8       magic     b"RFJOURNL"
    8       2       version   u16, format version (1)
    10      4       length    u32, length of the JSON header
    14      4       crc       u32, CRC-32 of the JSON header bytes
    18      length  header    the JSON header; the first frame starts at 18 + length

The JSON header is UTF-8 (in practice ASCII: non-ASCII is ``\\u`` escaped),
one object, keys sorted, no whitespace, so identical input gives identical
bytes. It is whatever the caller described (robot, run id, config, strategy,
codec ...) plus ``"format_version"``. The journal adds no clock of its own.

Then frames, back to back until the end of the file; each is a 25-byte head
and a payload::

    offset  size    field
    0       4       length    u32, payload length in bytes
    4       4       crc       u32, CRC-32 of head bytes 8-24 (kind, seq, recv_ns) + payload
    8       1       kind      u8, record kind (below)
    9       8       seq       u64, sequence number
    17      8       recv_ns   i64, receive time, ns since the Unix epoch (0 if none)
    25      length  payload   opaque bytes

Record kinds:

- ``MESSAGE`` (1): one inbound wire message exactly as the loop received it,
  holding one event or a batch of ``n`` events numbered ``seq .. seq+n-1``.
  ``seq`` strictly increases from one MESSAGE frame to the next.
- ``ACTIONS`` (2): what event ``seq`` made the robot do (the encoded
  outputs, :func:`roboframe.core.codec.encode_outputs`); ``recv_ns`` is 0.
- ``NOTE`` (3): an annotation, a JSON object with a ``note`` key. Written
  now: ``{"note": "strategy_error", "error": TEXT}`` at the seq of the event
  a strategy raised on, when that stopped the run (``replay --verify`` then
  expects the replay to raise there too, unless the journal goes on: a run
  resumed with the fixed strategy). Other notes are reserved.

Readers skip kinds they do not know, so new kinds need no new version.

A bad frame is one whose length exceeds :data:`MAX_PAYLOAD`, whose bytes run
past the end of the file, or whose checksum fails. It is a *torn tail* -- the
trace of a crash mid-write, to be ignored and cut -- when no valid frame
starts at any byte offset after its start (a valid frame: whole head and
payload inside the file, length within limits, checksum good; an all-zero
head never is one). Otherwise the file is corrupt, and readers refuse it.
A reader may bound the work of that search and, past the bound, refuse the
file as undecided rather than guess.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"RFJOURNL"
FORMAT_VERSION = 1

FILE_HEAD = struct.Struct("<8sHII")  # magic, version, JSON length, JSON crc (18 bytes)
FRAME_HEAD = struct.Struct("<IIBQq")  # payload length, crc, kind, seq, recv_ns (25 bytes)
LEN_CRC = struct.Struct("<II")  # the first two fields of FRAME_HEAD
CRC_PART = struct.Struct("<BQq")  # kind, seq, recv_ns: what the crc covers before the payload
CRC_FROM = LEN_CRC.size  # the crc covers FRAME_HEAD bytes CRC_FROM.. and the payload

MESSAGE = 1
ACTIONS = 2
NOTE = 3

KIND_NAMES = {MESSAGE: "message", ACTIONS: "actions", NOTE: "note"}
KNOWN_KINDS = frozenset(KIND_NAMES)

MAX_PAYLOAD = 256 * 1024 * 1024  # a larger length field is corruption, not data
FSYNC_POLICIES = ("never", "on_close", "always")


RECEIPT_CLOCK = "receipt"
"""``clock`` in the header of a run on a real-time feed: every message's receipt
time (its MESSAGE frame's ``recv_ns``) moves robot time too
(:meth:`roboframe.core.kernel.Kernel.received`), in the run and its replays."""


def receipt_clock(header: dict[str, Any]) -> bool:
    """Whether a journal's replay moves robot time to each message's receipt time."""
    return header.get("clock") == RECEIPT_CLOCK


RULES: dict[str, str] = {
    # the daily loss counts from the day before's last prices (the gap at a day's
    # open included), by robot time; before, the day started at its first price
    "loss_from": "day_before",
    # a flatten leaves the robot paused until resume; before, the strategy traded
    # on and re-entered at its next signal
    "flatten": "pauses",
    # reduce and halt cancel the open orders that would add to a position, as the
    # kill switch does; before, the resting kind went on filling
    "reduce": "cancels_adding",
    # a timer after the trading day's end starts the new day (a halt for the day
    # ends), as a market event does; before, only the next market event did
    "day_turns": "on_timers",
    # a fractional max_orders_per_second counts as it says (0.5: one order per
    # 2 s); before, it was cut to a whole number
    "rate": "exact",
    # the daily loss counts by trading days: a weekend or holiday (risk.trading_days,
    # risk.closed) joins the next trading day, and a day begun in the evening is the
    # next date's; before, every date was a day of its own
    "loss_days": "trading_days",
    # a price band refuses a limit order for a symbol with no price yet; before,
    # any limit price passed until the first one
    "band": "needs_price",
    # after the stop the strategy sees no market data and no timers; before, its
    # handlers ran on through the drain and their orders were refused
    "after_stop": "quiet",
    # a flatten's closing orders skip the plugins' risk checks (a check refusing
    # them, or raising, kept a position the trader had ordered closed)
    "flatten_checks": "skipped",
    # a fill of no lots, or of another side or symbol than its order's, is ignored
    # as an order anomaly; before, it was booked
    "fills": "checked",
    # the kill switch leaves a stopped robot stopped; before, a loss on a fill in
    # the stop's drain halted it, and a resume then made it trade again
    "stop": "final",
    # a fill whose fee is no finite number is booked without it, an order anomaly;
    # before, it raised (half booked) or made the PnL NaN
    "fees": "checked",
    # fills up to an order's quantity while a replace to more is unanswered leave
    # it open until the answer; before, they filled it, and the lots the replace
    # added (the exchange having taken it first) worked on unseen
    "replace": "waits",
    # a cancel refused before its order was acknowledged goes again once it is, when
    # a flatten waits for the order, the stop cancelled it, or it adds in a
    # reduce-only state; before, the flatten waited for good, the order outlived
    # the stop, the adding order rested
    "cancels": "again",
    # an accepted order rejected with no cancel or replace pending is finished (the
    # exchange removed it); before, it was taken for a refused cancel and stayed open
    "rejected": "removes",
}
"""The kernel's rules that changed between roboframe versions, each as the header
key and value a run following it writes (all of them: :func:`journal_header`).
A journal without one was written before that rule: its replays and resumes
follow the rule of then (:func:`roboframe.replay.follow_rules`), or they would
not do what its run did."""


def follows(header: dict[str, Any], rule: str) -> bool:
    """Whether a journal's run followed ``rule`` (a key of :data:`RULES`)."""
    return header.get(rule) == RULES[rule]


STRATEGY_ERROR = "strategy_error"
CLOSED = "closed"
"""The NOTE a run that ended cleanly (its stop handled, or its data ended) closes
its journal with: every event before it had its actions journaled, so a replay
that produces actions the journal lacks there diverges. A journal without it
stopped between a message and its actions (a crash): those were never sent."""


def encode_note(note: str, **fields: Any) -> bytes:
    """A NOTE record's payload."""
    return json.dumps({"note": note, **fields}, sort_keys=True).encode()


def decode_note(payload: bytes) -> dict[str, Any]:
    """A NOTE record's payload as a dict (``{}`` when it is not one we wrote)."""
    try:
        note = json.loads(payload)
    except ValueError:
        return {}
    return note if isinstance(note, dict) else {}


def _json_default(value: Any) -> Any:
    """Values JSON lacks: sets sorted (never in hash order), anything else as ``str``."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def encode_header(header: dict[str, Any]) -> bytes:
    """The file header bytes for ``header``: byte-stable, ``format_version`` added.

    Raises ``TypeError``/``ValueError`` for what cannot be stored stably
    (non-string keys, NaN or infinite floats); the writer reports them.
    """
    body = dict(header)
    body["format_version"] = FORMAT_VERSION
    data = json.dumps(
        body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default
    ).encode()
    return FILE_HEAD.pack(MAGIC, FORMAT_VERSION, len(data), zlib.crc32(data)) + data
