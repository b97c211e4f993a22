"""Store against journal: the fills a robot's journal holds and the order
store's, run by run, and every difference between them.

The store is the source of truth for what the exchange did; the journal is
what the robot saw. After a bad day they must agree: every fill of the run
in both, with the same order, symbol, side, quantity, price and fee.
"""

from __future__ import annotations

from typing import Any

from roboframe.core.events import Fill

FIELDS = ("client_id", "symbol", "side", "qty", "price", "fee")


def fill_key(fill: Fill) -> tuple:
    return (fill.client_id, fill.symbol, fill.side, fill.qty, fill.price, _fee(fill.fee))


def _fee(fee: str) -> str:
    """``fee`` in one spelling (``1.50`` is ``1.5``); as it is when it is no
    number (``1,5`` from a bridge's locale), which raised here."""
    from decimal import Decimal, InvalidOperation

    try:
        return str(Decimal(fee).normalize()) if fee else "0"
    except InvalidOperation:
        return fee


def reconcile(
    store: Any,
    robot: str,
    run_id: str,
    journal_fills: list[Fill],
    instruments: dict,
    order_qty: dict[str, int] | None = None,
) -> list[dict]:
    """Differences between ``journal_fills`` and the store's fills of one run.

    Each is ``{"kind", "trade_id", "client_id", "detail"}`` with kind
    ``missing_in_journal`` (the store has a fill the robot never saw),
    ``missing_in_store`` (the robot saw a fill the store does not hold) or
    ``different``; sorted by trade id; then ``overfilled``, an order the
    store filled for more than the robot asked (``order_qty``: client id ->
    the most it asked, from the journal) -- journal and store may agree on
    such fills, both wrong. Empty: all is well.
    """
    prefix = f"{robot}-{run_id}-"
    stored, _updates = store.changes_after(robot, prefix, 0, 0)
    theirs = {fill.trade_id: fill for _id, fill in stored}
    ours: dict[str, Fill] = {}
    out = []
    for fill in journal_fills:
        if fill.trade_id in ours:
            continue  # a duplicate the kernel ignored; the journal keeps it
        ours[fill.trade_id] = fill
    for trade_id in sorted(set(ours) | set(theirs), key=_natural):
        mine, store_fill = ours.get(trade_id), theirs.get(trade_id)
        if store_fill is None:
            out.append(_diff("missing_in_store", mine, f"journal: {_show(mine, instruments)}"))
        elif mine is None:
            shown = _show(store_fill, instruments)
            out.append(_diff("missing_in_journal", store_fill, f"store: {shown}"))
        elif fill_key(mine) != fill_key(store_fill):
            fields = [
                f"{name} {_value(mine, name, instruments)} in the journal, "
                f"{_value(store_fill, name, instruments)} in the store"
                for name in FIELDS
                if _value(mine, name, instruments) != _value(store_fill, name, instruments)
            ]
            out.append(_diff("different", mine, "; ".join(fields)))
    filled: dict[str, list[Fill]] = {}
    for fill in theirs.values():
        filled.setdefault(fill.client_id, []).append(fill)
    for cid, fills in sorted(filled.items()):
        asked = (order_qty or {}).get(cid)
        total = sum(f.qty for f in fills)
        if asked is not None and total > asked:
            last = max(fills, key=lambda f: _natural(f.trade_id))
            detail = f"the store has {total} filled of an order of {asked}"
            out.append(_diff("overfilled", last, f"{detail} (trades {_trades(fills)})"))
    return out


def _trades(fills: list[Fill]) -> str:
    return ", ".join(sorted((f.trade_id for f in fills), key=_natural))


def _value(fill: Fill, name: str, instruments: dict) -> Any:
    value = getattr(fill, name)
    if name == "price":
        return _price(fill, instruments)
    return _fee(value) if name == "fee" else value


def _price(fill: Fill, instruments: dict) -> Any:
    inst = instruments.get(fill.symbol)
    return inst.to_price(fill.price) if inst is not None else f"{fill.price} ticks"


def _natural(text: str) -> tuple:
    digits = "".join(ch for ch in text if ch.isdigit())
    return (text.rstrip("0123456789"), int(digits) if digits else -1, text)


def _show(fill: Fill, instruments: dict) -> str:
    price = _price(fill, instruments)
    return f"{fill.client_id} {fill.side} {fill.qty} {fill.symbol} @ {price} fee {fill.fee}"


def _diff(kind: str, fill: Fill, detail: str) -> dict:
    return {"kind": kind, "trade_id": fill.trade_id, "client_id": fill.client_id, "detail": detail}
