"""The order store: one source of truth for every order of every robot.

A store backend (PostgreSQL, MongoDB, ... each a plugin registered with
``roboframe_register_stores``) keeps three collections:

- **orders**: one row per order, unique by ``client_id`` (the deterministic
  ``<robot>-<run>-<n>``), so a retried or replayed insert is a no-op and an
  order can never exist twice; it holds the order as it stands (a replace
  that took effect changes its ``qty`` and ``price``);
- **order events**: the order's history -- requests written by the robot
  (``cancel_request``; ``replace_request`` with the new qty and price);
  ``accepted``, ``rejected``, ``cancelled``, ``replaced``,
  ``replace_rejected`` written by the exchange side -- each with an
  increasing id;
- **trades**: every fill, with an increasing id that is also the fill's
  ``trade_id``.

Robots write orders and requests and learn of updates and fills through the
store's change feed, filtered by robot name; the exchange side (``roboframe
exchange`` or a broker bridge) watches new orders and requests and writes
updates, trades and replaced orders back. Positions in the feeds are the
increasing ids, so a listener that was away catches up with "everything
after id N" and never sees a gap or a repeat.
"""

from __future__ import annotations

from roboframe.store.base import OrderStore, StoredOrder, StoreUnavailable, open_store

__all__ = ["OrderStore", "StoreUnavailable", "StoredOrder", "open_store"]
