"""Orders with numbers the journal, a gateway or a store cannot hold are
normalized or refused in the kernel, before anything is sent or journaled."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from roboframe.core import codec
from roboframe.core.events import Cancel, NewOrder
from roboframe.core.wellformed import MAX_NUMBER
from roboframe.errors import StrategyError
from roboframe.testing.helpers import bar

from .test_kernel import SI, kernel_with


class Lots:
    """An integer-like number of a library's own type (what ``__index__`` means)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n


@pytest.mark.parametrize("qty", [np.int64(2), np.int32(2), np.uint8(2), Lots(2)])
def test_integer_like_quantities_become_plain_ints(qty):
    kernel, _ = kernel_with(lambda b, ctx: [ctx.buy(SI, qty), ctx.sell(SI, 1, np.int64(105))])
    out = kernel.handle(bar(SI, 1, 100))
    assert [(type(a.qty), a.qty, type(a.price), a.price) for a in out] == [
        (int, 2, int, 0),
        (int, 1, int, 105),
    ]
    # what the journal and a gateway get encodes and decodes to the same orders
    assert codec.decode_actions(codec.encode(out)) == out
    assert codec.encode_outputs(out, kernel.take_rejected())
    assert kernel.orders.orders[out[0].client_id].qty == 2


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ctx: ctx.buy(SI, 1.5), "quantity must be a whole number of lots, got 1.5 (float)"),
        (lambda ctx: ctx.buy(SI, 2.0), "quantity must be a whole number of lots, got 2.0 (float)"),
        (
            lambda ctx: ctx.buy(SI, np.float64(1)),
            "quantity must be a whole number of lots, got np.float64(1.0) (float64)",
        ),
        (
            lambda ctx: ctx.buy(SI, Decimal(3)),
            "quantity must be a whole number of lots, got Decimal('3') (Decimal)",
        ),
        (lambda ctx: ctx.buy(SI, True), "quantity must be a whole number of lots, got True (bool)"),
        (lambda ctx: ctx.buy(SI, "1"), "quantity must be a whole number of lots, got '1' (str)"),
        (lambda ctx: ctx.buy(SI, 0), "quantity must be positive, got 0"),
        (
            lambda ctx: ctx.buy(SI, 10**20),
            f"quantity {10**20} is out of range (at most {MAX_NUMBER} lots)",
        ),
        (
            lambda ctx: ctx.buy(SI, 1, 100.5),
            "price must be a whole number of ticks, got 100.5 (float)",
        ),
        (lambda ctx: ctx.buy(SI, 1, -5), "limit price must be positive, got -5"),
        (
            lambda ctx: ctx.buy(SI, 1, 2**63),
            f"limit price {2**63} is out of range (at most {MAX_NUMBER} ticks)",
        ),
        (
            lambda ctx: NewOrder(ctx._k.next_client_id(), SI, "buy", 1, "market", 100),
            "a market order takes no price, got 100",
        ),
        (
            lambda ctx: NewOrder(ctx._k.next_client_id(), SI, "BUY", 1),
            "side must be buy or sell, got 'BUY'",
        ),
        (
            lambda ctx: NewOrder(ctx._k.next_client_id(), SI, "buy", 1, "stop", 100),
            "order type must be market or limit, got 'stop'",
        ),
        (
            lambda ctx: NewOrder(ctx._k.next_client_id(), [SI], "buy", 1),
            "symbol must be a string, got ['Si-12.26'] (list)",
        ),
    ],
)
def test_malformed_orders_are_rejected_before_they_are_sent(make, reason):
    kernel, strat = kernel_with(lambda b, ctx: [make(ctx)] if b.close == 100 else None)
    assert kernel.handle(bar(SI, 1, 100)) == []
    rejected = kernel.take_rejected()
    assert [u.reason for u in rejected] == [f"risk: {reason}"]
    assert strat.updates == rejected  # the strategy hears of it at once
    assert codec.encode_outputs([], rejected)  # journaled like any rejection
    assert not kernel.orders.open
    # the robot goes on: a good order on the next bar passes
    kernel2, _ = kernel_with(lambda b, ctx: [make(ctx)] if b.close == 100 else [ctx.buy(SI, 1)])
    kernel2.handle(bar(SI, 1, 100))
    assert [a.qty for a in kernel2.handle(bar(SI, 2, 101))] == [1]


@pytest.mark.parametrize(
    "action",
    [NewOrder(7, SI, "buy", 1), NewOrder("", SI, "buy", 1), Cancel(None), Cancel(["x"])],
)
def test_an_action_without_a_client_id_is_a_strategy_error(action):
    kernel, _ = kernel_with(lambda b, ctx: [action])
    with pytest.raises(StrategyError, match="client id must be a non-empty string"):
        kernel.handle(bar(SI, 1, 100))
