"""Hostile bytes against the codec: every decoder gives a valid message or raises one of
``codec.DECODE_ERRORS``, never anything else, and never hangs (hypothesis deadline).

The fast form runs a few hundred derandomized cases per property with every test
run; ``pytest -m long tests/faults`` runs the same properties with many more.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roboframe.core import codec
from roboframe.core.events import (
    Bar,
    Batch,
    Cancel,
    Control,
    Fill,
    NewOrder,
    OrderUpdate,
    Tick,
    Timer,
)

FAST = settings(
    max_examples=300,
    derandomize=True,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(FAST, max_examples=20_000, derandomize=False)

I64 = st.integers(-(2**63), 2**63 - 1)  # what an event's integers may hold (events.Int64)
U64 = st.integers(-(2**63), 2**64 - 1)  # everything msgpack can carry: args of a Control
TEXT = st.text(max_size=40)
JSONISH = st.recursive(
    st.none() | st.booleans() | U64 | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)

TICKS = st.builds(Tick, TEXT, I64, I64, I64, I64, I64)
BARS = st.builds(Bar, TEXT, I64, I64, I64, I64, I64, I64)
UPDATES = st.builds(
    OrderUpdate,
    TEXT,
    I64,
    st.sampled_from(["accepted", "rejected", "cancelled", "cancel_rejected"]),
    TEXT,
    TEXT,
)
FILLS = st.builds(Fill, TEXT, I64, TEXT, st.sampled_from(["buy", "sell"]), I64, I64, TEXT, TEXT)
CONTROLS = st.builds(Control, TEXT, I64, st.dictionaries(TEXT, JSONISH, max_size=4))
TIMERS = st.builds(Timer, TEXT, I64)
EVENTS = st.one_of(TICKS, BARS, UPDATES, FILLS, CONTROLS, TIMERS)
INBOUND = EVENTS | st.builds(Batch, st.lists(EVENTS, max_size=8))
ACTIONS = st.one_of(
    st.builds(
        NewOrder,
        TEXT,
        TEXT,
        st.sampled_from(["buy", "sell"]),
        I64,
        st.sampled_from(["market", "limit"]),
        I64,
    ),
    st.builds(Cancel, TEXT),
)

INBOUND_TYPES = (Tick, Bar, OrderUpdate, Fill, Control, Timer, Batch)
DECODERS = {
    "decode": (codec.decode, lambda m: isinstance(m, INBOUND_TYPES)),
    "decode_any": (codec.decode_any, lambda m: isinstance(m, (*INBOUND_TYPES, NewOrder, Cancel))),
    "decode_actions": (
        codec.decode_actions,
        lambda m: isinstance(m, list) and all(isinstance(a, (NewOrder, Cancel)) for a in m),
    ),
    "decode_outputs": (
        codec.decode_outputs,
        lambda m: isinstance(m, tuple) and len(m) == 2 and all(type(x) is list for x in m),
    ),
}


def assert_safe(raw: bytes) -> int:
    """Every decoder on ``raw``: a well-typed result or a decode error. How many accepted."""
    accepted = 0
    for name, (decode, valid) in DECODERS.items():
        try:
            msg = decode(raw)
        except codec.DECODE_ERRORS:
            continue
        assert valid(msg), f"{name} gave {msg!r}"
        assert decode(codec.encode(msg)) == msg  # what is accepted is a real message
        accepted += 1
    return accepted


# -- mutations of valid encodings ------------------------------------------------------


@st.composite
def mutated(draw, messages=INBOUND) -> bytes:
    raw = bytearray(codec.encode(draw(messages)))
    how = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "byte"]))
    if how == "flip" and raw:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del raw[draw(st.integers(0, len(raw))) :]
    elif how == "extend":
        raw += draw(st.binary(min_size=1, max_size=64))
    elif how == "splice" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw[i:i] = draw(st.binary(min_size=1, max_size=16))
    elif raw:
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


# arbitrary msgpack shaped like a message: a kind tag (valid or not) and wrong-typed fields
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | I64 | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
KINDS = st.sampled_from([100, 101, 102, 103, 104, 105, 106, 151, 152, 0, 99, 107, 199, 201]) | I64
SHAPED = st.builds(lambda kind, rest: [kind, *rest], KINDS | ANY_VALUE, st.lists(ANY_VALUE))
BATCH_OF_SHAPED = st.builds(lambda items: [100, items], st.lists(SHAPED | ANY_VALUE, max_size=6))


def _check_arbitrary(raw: bytes) -> None:
    assert_safe(raw)


def _check_roundtrip(msg) -> None:
    raw = codec.encode(msg)
    assert codec.decode(raw) == msg
    assert codec.decode_any(raw) == msg


def _check_action_roundtrip(actions, rejected) -> None:
    assert codec.decode_actions(codec.encode(actions)) == actions
    out = codec.decode_outputs(codec.encode_outputs(actions, rejected))
    assert out == (actions, rejected)


def _check_shaped(value) -> None:
    assert_safe(msgspec.msgpack.encode(value))


PROPERTIES = {
    "arbitrary bytes": (given(st.binary(max_size=512)), _check_arbitrary),
    "valid events round-trip": (given(INBOUND), _check_roundtrip),
    "actions and outputs round-trip": (
        given(st.lists(ACTIONS, max_size=6), st.lists(UPDATES, max_size=3)),
        _check_action_roundtrip,
    ),
    "mutated encodings": (given(mutated()), _check_arbitrary),
    "mutated action encodings": (
        given(mutated(st.lists(ACTIONS, min_size=1, max_size=4))),
        _check_arbitrary,
    ),
    "wrong types, unknown kinds": (given(SHAPED | BATCH_OF_SHAPED), _check_shaped),
}


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_fast(name):
    wrap, check = PROPERTIES[name]
    FAST(wrap(check))()


@pytest.mark.long
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_long(name):
    wrap, check = PROPERTIES[name]
    LONG(wrap(check))()


# -- hand-made extremes ----------------------------------------------------------------

U64_MAX = b"\xcf" + b"\xff" * 8
EXTREMES = {
    "uint64 max in every int field": b"\x97\x65\xa1x" + U64_MAX * 5,
    "int past uint64 (bad marker)": b"\x94\x65\xa1x\x01\xd4\xff\xff",
    "array claims 4G items": b"\xdd\xff\xff\xff\xff",
    "batch claims 4G events": b"\x92\x64\xdd\xff\xff\xff\xff",
    "str claims 4 GB": b"\x93\x6a\xdb\xff\xff\xff\xff",
    "nested arrays 200k deep": b"\x91" * 200_000 + b"\x00",
    "control args 100k deep maps": b"\x94\x69\xa1x\x01" + b"\x81\xa1a" * 100_000 + b"\xc0",
    "control args 100k deep lists": b"\x94\x69\xa1x\x01\x81\xa1a" + b"\x91" * 100_000 + b"\xc0",
    "batch of deep control": b"\x92\x64\x91\x94\x69\xa1x\x01\x81\xa1a" + b"\x91" * 5000 + b"\xc0",
    "10 MB symbol": b"\x94\x65\xdb" + (10 << 20).to_bytes(4, "big") + b"s" * (10 << 20) + b"\1\2",
    "10 MB of zeros": bytes(10 << 20),
    "float for int": b"\x93\x65\xa1x\xcb" + b"\x00" * 8,
    "nil for str": b"\x93\x66\xc0\x01",
    "ext type": b"\xd4\x01\x00",
    "map not array": b"\x81\xa4kind\x65",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_extremes_are_decoded_or_refused(name):
    assert_safe(EXTREMES[name])


def test_deep_control_args_are_refused_not_crashed():
    """msgspec raises RecursionError here, outside DecodeError: callers catch DECODE_ERRORS."""
    with pytest.raises(codec.DECODE_ERRORS):
        codec.decode(EXTREMES["control args 100k deep lists"])
    shallow = Control("set", 1, {"a": [[[[1]]]]})
    assert codec.decode(codec.encode(shallow)) == shallow


def test_huge_ints_round_trip_at_the_64_bit_limits_and_past_them_are_refused():
    tick = Tick("x", 2**63 - 1, -(2**63), 0, 2**63 - 1, 1)
    assert codec.decode(codec.encode(tick)) == tick
    with pytest.raises(codec.ValidationError):  # msgpack carries it; a journal, store or
        codec.decode(codec.encode(Tick("x", 2**63, 1)))  # analysis database could not
    with pytest.raises(OverflowError):  # the encoder refuses what the wire cannot carry
        codec.encode(Tick("x", 2**64, 1))
