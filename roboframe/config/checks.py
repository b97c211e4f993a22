"""Checks a schema cannot express: symbols that must exist, plugins that must
resolve, strategy params that must satisfy the strategy's own rules.

They run after the schema passed, so every section has the right shape.
Each returns ``(field path, message, hint)`` problems; the caller adds lines.
"""

from __future__ import annotations

import copy
from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from roboframe.builtin.feeds.timeparse import iso_to_ns
from roboframe.config.messages import Problem, describe, did_you_mean, unknown_plugin
from roboframe.config.schema import RobotValidator
from roboframe.config.spec import parse_duration_ms
from roboframe.errors import PluginError, described
from roboframe.risk.calendar import epoch_day

IMPORT_HINT = "check the import path package.module:Class and that the package is installed"


def check_all(
    data: dict, registry: Any, source: str | None = None
) -> tuple[list[Problem], type | None]:
    """Every cross-field problem of ``data`` (read from the robot file ``source``),
    and the strategy class when it resolved."""
    problems: list[Problem] = []
    symbols = list(data.get("symbols", {}))
    problems += _check_instruments(data)
    problems += _check_risk_symbols(data.get("risk", {}), symbols)
    problems += _check_dates(data.get("risk", {}).get("closed", ()), ("risk", "closed"))
    problems += _check_feed_symbols(data.get("feed", {}).get("params", {}), symbols)
    problems += _check_bar_opens(data)
    problems += _check_synthetic_start(data.get("feed", {}))
    problems += _check_addresses(data)
    problems += _check_timer(data.get("loop", {}))
    for section, kind in (("feed", "feeds"), ("gateway", "gateways")):
        name = data[section]["plugin"]
        if name not in getattr(registry, kind):
            problems.append(unknown_plugin(section, name, sorted(getattr(registry, kind))))
    problems += _check_on_error(data, registry)
    strategy_cls, problem = _resolve_strategy(data["strategy"]["plugin"], registry, source)
    if problem:
        problems.append(problem)
    if strategy_cls is not None:
        params = apply_defaults(strategy_cls, data["strategy"].get("params", {}))
        problems += check_strategy_params(strategy_cls, params)
    return problems, strategy_cls


def _resolve_strategy(
    name: str, registry: Any, source: str | None
) -> tuple[type | None, Problem | None]:
    from roboframe.plugins import resolve_strategy, strategy_search

    where = ("strategy", "plugin")
    if ":" not in name and name not in registry.strategies:
        return None, unknown_plugin("strategy", name, sorted(registry.strategies))
    try:
        cls, _ = resolve_strategy(name, registry, strategy_search(source))
    except PluginError as exc:
        return None, (where, str(exc), IMPORT_HINT)
    except Exception as exc:  # the user's module raised while being imported
        message = f"strategy {name!r}: importing it raised {type(exc).__name__}: {exc}"
        return None, (where, message, "fix the error in the strategy's module")
    return cls, None


def _positive_decimal(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _check_instruments(data: dict) -> list[Problem]:
    out = []
    for symbol, spec in data.get("symbols", {}).items():
        for key in ("tick_size", "point_value"):
            if key in spec and not _positive_decimal(spec[key]):
                out.append(
                    (
                        ("symbols", symbol, key),
                        f"must be > 0, got {spec[key]!r}",
                        "a positive number such as 1, 10 or 0.01",
                    )
                )
    risk = data.get("risk", {})
    for key in ("max_daily_loss", "price_band_pct"):
        if key in risk and not _positive_decimal(risk[key]):
            out.append(
                (
                    ("risk", key),
                    f"must be > 0, got {risk[key]!r}",
                    "a positive number; leave the field out for no limit",
                )
            )
    cash = data.get("backtest", {}).get("cash")
    if cash is not None and not _positive_decimal(cash):
        out.append(
            (
                ("backtest", "cash"),
                f"must be > 0, got {cash!r}",
                "the starting capital of a backtest, e.g. 1000000",
            )
        )
    return out


def check_risk_checks(spec: Any, registry: Any) -> list[Problem]:
    """Each risk check made from its params (defaults filled in): one refusing
    them -- a value its schema let through -- is named here, not in a traceback
    at the start of a run."""
    out = []
    instruments = dict(spec.symbols)
    for i, ref in enumerate(spec.risk.checks):
        cls = registry.risk_checks[ref.plugin].obj
        try:
            cls(dict(ref.params), instruments)
        except Exception as exc:
            out.append(
                (
                    ("risk", "checks", i, "params"),
                    f"risk check {ref.plugin!r} refused its params: {described(exc)}",
                    "see the check's params in 'roboframe schema' or its documentation",
                )
            )
    return out


def _check_dates(dates: list[str], where: tuple) -> list[Problem]:
    """Dates the pattern let through that no calendar has ("2027-02-30")."""
    out = []
    for i, date in enumerate(dates):
        try:
            epoch_day(date)
        except ValueError:
            out.append(((*where, i), f"{date!r} is not a date", "write a real date YYYY-MM-DD"))
    return out


def _check_risk_symbols(risk: dict, symbols: list[str]) -> list[Problem]:
    out = []
    for i, symbol in enumerate(risk.get("allowed_symbols", [])):
        if symbol not in symbols:
            out.append(
                (
                    ("risk", "allowed_symbols", i),
                    f"{symbol!r} is not one of the robot's symbols",
                    did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                )
            )
    limits = risk.get("max_position")
    if isinstance(limits, dict):
        for symbol in limits:
            if symbol not in symbols:
                out.append(
                    (
                        ("risk", "max_position", symbol),
                        f"limit for {symbol!r}, which the robot does not trade",
                        did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                    )
                )
    return out


def unlimited_positions(spec: Any) -> str | None:
    """A warning when ``risk.max_position`` is a mapping that leaves symbols out:
    those have no position limit (limits are optional), which a trader who listed
    the others rarely means. None otherwise."""
    limits = (spec.raw.get("risk") or {}).get("max_position")
    if not isinstance(limits, dict):
        return None
    left = [symbol for symbol in spec.symbols if symbol not in limits]
    if not left:
        return None
    return (
        f"risk.max_position sets no limit for {', '.join(left)}: the robot may hold any "
        "position there (give every symbol a limit, or one number for all)"
    )


def _check_feed_symbols(params: dict, symbols: list[str]) -> list[Problem]:
    out = []
    prices = params.get("prices")
    if isinstance(prices, dict):
        for symbol in prices:
            if symbol not in symbols:
                out.append(
                    (
                        ("feed", "params", "prices", symbol),
                        f"price for {symbol!r}, which is not in symbols",
                        did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                    )
                )
    listed = params.get("symbols")
    if isinstance(listed, list):
        for i, symbol in enumerate(listed):
            if isinstance(symbol, str) and symbol not in symbols:
                out.append(
                    (
                        ("feed", "params", "symbols", i),
                        f"{symbol!r} is not in symbols",
                        did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                    )
                )
    symbol = params.get("symbol")
    if isinstance(symbol, str) and symbol not in symbols:
        out.append(
            (
                ("feed", "params", "symbol"),
                f"{symbol!r} is not in symbols",
                did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
            )
        )
    return out


def _check_bar_opens(data: dict) -> list[Problem]:
    """``time_is: open`` without ``interval``: a file's bars cannot be moved to
    their close. Found only as the feed started, it made a run that wrote a
    journal, failed with exit 1 and was left unfinished -- a run no ``--resume``
    can finish, since adding ``interval`` moves the data's times -- and a
    backtest that validate had passed."""
    out = []
    feed = data.get("feed", {})
    own = feed.get("params", {}) if feed.get("plugin") in ("csv", "parquet") else {}
    hint = "the bars' length, as the file's are: interval: 1m (5m, 1h, 1d)"
    if own.get("time_is") == "open" and "interval" not in own:
        out.append((("feed", "params", "time_is"), "time_is: open needs interval", hint))
    settings = data.get("backtest") or {}
    reading = {**own, **settings}  # how --data files are read (backtest.data_params)
    if "time_is" in settings and reading.get("time_is") == "open" and "interval" not in reading:
        out.append((("backtest", "time_is"), "time_is: open needs interval", hint))
    return out


def _check_synthetic_start(feed: dict) -> list[Problem]:
    """The synthetic feed's ``start``, which the schema takes as any string: a
    date that is no date failed as the feed started, leaving a run unfinished
    that no ``--resume`` can finish (``start`` moves the data's times)."""
    start = feed.get("params", {}).get("start") if feed.get("plugin") == "synthetic" else None
    if not isinstance(start, str):
        return []
    try:
        iso_to_ns(start)
    except ValueError as exc:
        hint = "an ISO-8601 time such as 2026-01-05T07:00:00Z"
        return [(("feed", "params", "start"), f"{start!r} is not a time: {exc}", hint)]
    return []


def _check_on_error(data: dict, registry: Any) -> list[Problem]:
    """``open_orders_on_error: cancel`` needs a gateway that can cancel without
    the loop (:meth:`Gateway.cancel_left`)."""
    from roboframe.core.gateway import Gateway

    entry = registry.gateways.get(data["gateway"]["plugin"])
    if data.get("loop", {}).get("open_orders_on_error") != "cancel" or entry is None:
        return []
    if getattr(entry.obj, "cancel_left", None) is not Gateway.cancel_left:
        return []
    return [
        (
            ("loop", "open_orders_on_error"),
            f"gateway {data['gateway']['plugin']!r} cannot cancel a stopped robot's orders",
            "use an order-store gateway (postgres, mongo, zmq), or leave the key out",
        )
    ]


def _check_timer(loop: dict) -> list[Problem]:
    value = loop.get("timer_ms")
    if value is not None and parse_duration_ms(value) == 0:
        return [
            (
                ("loop", "timer_ms"),
                f"must be at least 1ms, got {value!r}",
                "leave timer_ms out (or null) for no heartbeat timer",
            )
        ]
    return []


def _check_addresses(data: dict) -> list[Problem]:
    loop = data.get("loop", {}).get("address", "inproc://robo")
    control = data.get("control", {}).get("address")
    if control and control == loop:
        return [
            (
                ("control", "address"),
                f"same address as loop.address ({loop})",
                "the control endpoint needs its own address, e.g. ipc://runs/NAME/control.sock",
            )
        ]
    return []


CURVE_HINT = (
    "add control: {curve: {secret_key: keys/robot.key_secret, clients: keys/clients}}"
    " (paths relative to the robot file); run 'roboframe keys generate --dir keys --name robot'"
    " for the robot's pair, and put each client's public NAME.key in keys/clients"
)


def check_control(
    control: dict, address: str | None, *, default: bool, ipc_length: bool = True
) -> list[Problem]:
    """What a robot about to run needs of its control endpoint (not checked for journals).

    ``address`` is the effective address, the default one when ``default``.
    ``ipc_length`` checks the socket path's length, which depends on where
    the robot runs (so a backtest or ``validate`` elsewhere skips it).
    """
    from roboframe.curve import ipc_too_long

    if not address:
        return []
    if address.startswith("tcp://") and not control.get("curve"):
        message = (
            "a tcp:// control endpoint needs CURVE keys: without them anyone who reaches "
            "the port could stop or flatten the robot"
        )
        return [(("control", "address"), message, CURVE_HINT)]
    too_long = ipc_too_long(address) if ipc_length else None
    if too_long:
        where = ("journal", "dir") if default else ("control", "address")
        what = "the default control endpoint (journal.dir/control.sock): " if default else ""
        hint = "set a shorter journal.dir, or control.address: ipc:///tmp/NAME.ctl (null: none)"
        return [(where, what + too_long, hint)]
    return []


def check_strategy_params(cls: type, params: dict) -> list[Problem]:
    """The strategy's own schema, then its ``validate_params``, on ``params``."""
    schema = getattr(cls, "params_schema", None) or {"type": "object"}
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        message = f"strategy {cls.__name__} has an invalid params_schema: {exc.message}"
        return [(("strategy", "plugin"), message, "fix params_schema in the strategy class")]
    out: list[Problem] = []
    for error in RobotValidator(schema).iter_errors(params):
        out += [(("strategy", "params", *path), m, h) for path, m, h in describe(error)]
    validate = getattr(cls, "validate_params", None)
    if out or validate is None:
        return out
    try:
        extra = validate(params)
    except Exception as exc:
        message = f"{cls.__name__}.validate_params raised {type(exc).__name__}: {exc}"
        return [(("strategy", "params"), message, None)]
    for field, message in extra or []:
        parts = [p for p in str(field or "").split(".") if p]
        out.append((("strategy", "params", *parts), message, None))
    return out


def apply_defaults(cls: type, params: dict) -> dict:
    """``params`` with the top-level ``default`` values of ``cls.params_schema`` filled in."""
    schema = getattr(cls, "params_schema", None) or {}
    out = dict(params)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out
