"""Events grouped into wire messages (codec.encode_events): in order, one event
as itself, many as Batches bounded in size."""

from __future__ import annotations

from roboframe.core import codec
from roboframe.core.events import Batch, Fill


def fills(n: int) -> list[Fill]:
    return [Fill(f"a-r1-{i}", i, "Si-12.26", "buy", 1, 100, str(i), "0") for i in range(n)]


def test_one_event_goes_as_itself():
    (raw,) = codec.encode_events(fills(1))
    assert codec.decode(raw) == fills(1)[0]


def test_many_events_go_as_bounded_batches_in_order():
    n = 2 * codec.EVENTS_PER_MESSAGE + 3
    messages = [codec.decode(raw) for raw in codec.encode_events(fills(n))]
    assert all(type(m) is Batch for m in messages)
    assert [len(m.events) for m in messages] == [codec.EVENTS_PER_MESSAGE] * 2 + [3]
    assert [e for m in messages for e in codec.events_in(m)] == fills(n)
