"""The analysis database's tables, shared by every backend.

Each table is a name and its columns, in the order rows are written. Every
row of every table carries ``run``, the run's integer key (see
:func:`run_number`), so all of a run's rows can be found, replaced or
deleted together. ``docs/analyzer.md`` documents each column and the
indexes; a backend creates them with the types in :data:`TYPES`.

Times are nanoseconds since the Unix epoch (UTC); prices are in price units
(not ticks) and money in the instrument's currency, as floats: figures for
analysis, while the journal keeps the exact values.
"""

from __future__ import annotations

TABLES: dict[str, tuple[str, ...]] = {
    "runs": (
        "run",
        "journal_key",
        "journal",
        "robot",
        "run_id",
        "mode",
        "config_hash",
        "strategy",
        "strategy_version",
        "roboframe_version",
        "first_seq",
        "last_seq",
        "start_ts",
        "end_ts",
        "events",
        "complete",
        "verified",
        "stats",
    ),
    "events": ("run", "seq", "ts", "recv_ns", "kind", "symbol", "data"),
    "actions": (
        "run",
        "seq",
        "n",
        "kind",
        "client_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "price",
        "reason",
    ),
    "fills": ("run", "seq", "ts", "client_id", "symbol", "side", "qty", "price", "trade_id", "fee"),
    "orders": (
        "run",
        "client_id",
        "seq",
        "ts",
        "symbol",
        "side",
        "qty",
        "order_type",
        "price",
        "status",
        "filled",
        "done_seq",
        "done_ts",
        "reason",
    ),
    "trades": (
        "run",
        "n",
        "symbol",
        "side",
        "qty",
        "entry_ts",
        "entry_price",
        "exit_ts",
        "exit_price",
        "pnl",
        "open_at_end",
    ),
    "states": (
        "run",
        "seq",
        "ts",
        "equity",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "open_orders",
        "robot_state",
    ),
    "positions": (
        "run",
        "seq",
        "symbol",
        "position",
        "avg_price",
        "last_price",
        "realized_pnl",
        "unrealized_pnl",
    ),
    "strategy_states": ("run", "seq", "state"),
}

KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("run",),
    "events": ("run", "seq"),
    "actions": ("run", "seq", "n"),
    "fills": ("run", "seq"),
    "orders": ("run", "client_id"),
    "trades": ("run", "n"),
    "states": ("run", "seq"),
    "positions": ("run", "symbol", "seq"),  # "a symbol's position as of seq N" reads it
    "strategy_states": ("run", "seq"),
}
"""Each table's unique key (a primary key in SQL, a unique index in MongoDB)."""

INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "runs": (("journal_key",), ("robot", "start_ts")),
    "events": (("run", "ts"),),
    "fills": (("run", "trade_id"),),
    "trades": (("run", "pnl"),),
}
"""Further indexes: runs by journal and robot, events by time, fills by trade id."""

INTEGER, REAL, TEXT = "integer", "real", "text"
_INTEGERS = {
    "run",
    "seq",
    "n",
    "qty",
    "filled",
    "done_seq",
    "first_seq",
    "last_seq",
    "events",
    "complete",
    "verified",
    "open_orders",
    "position",
    "open_at_end",
}
_TIMES = {"ts", "recv_ns", "start_ts", "end_ts", "entry_ts", "exit_ts", "done_ts"}
_REALS = {
    "price",
    "fee",
    "equity",
    "realized_pnl",
    "unrealized_pnl",
    "fees",
    "avg_price",
    "last_price",
    "entry_price",
    "exit_price",
    "pnl",
}


def column_type(name: str) -> str:
    """``integer``, ``real`` or ``text``: what a column holds."""
    if name in _INTEGERS or name in _TIMES:
        return INTEGER
    if name in _REALS:
        return REAL
    return TEXT


def run_number(journal_key: str) -> int:
    """The integer ``run`` key of a journal: its key's first 60 bits (fits int64)."""
    return int(journal_key[:15], 16)
