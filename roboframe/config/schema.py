"""The JSON Schema of a robot file: core sections plus what plugins add.

:func:`build_schema` is deterministic, so its output can be committed as
``schemas/robot.schema.json`` for editors; a test fails when that copy is
stale. Each feed, gateway and strategy class's ``params_schema`` is applied
to ``params`` when ``plugin`` names it.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError

from roboframe.builtin.feeds.timeparse import ZONE, ZONE_PATTERN
from roboframe.core.sockets import ADDRESS_PATTERN
from roboframe.errors import PluginError
from roboframe.plugins import SINGULAR
from roboframe.risk.calendar import DAYS

SCHEMA_ID = "https://roboframe.dev/schemas/robot.schema.json"

DECIMAL_PATTERN = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)?$"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CLASS_PATTERN = rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*$"
"""``package.module:Class``, a strategy named by its import path."""

DECIMAL = {"type": ["number", "string"], "pattern": DECIMAL_PATTERN}
"""Money and prices: a number, or a numeric string kept exact (``"0.01"``)."""
# "HH:MM" and an optional zone, as the trading-hours check writes them
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DAY_STARTS_PATTERN = rf"^([01][0-9]|2[0-3]):[0-5][0-9]( {ZONE})?$"
DURATION = {"type": ["integer", "string"], "pattern": DURATION_PATTERN, "minimum": 0}
"""``500ms``, ``1s``, ``2m``, ``1h`` or an integer of milliseconds."""


def _d(base: dict, description: str, **extra: Any) -> dict:
    return {**copy.deepcopy(base), "description": description, **extra}


INSTRUMENT = {
    "type": "object",
    "description": "one traded instrument: how its prices map to ticks and money",
    "additionalProperties": False,
    "required": ["tick_size"],
    "properties": {
        "tick_size": _d(DECIMAL, "minimum price step, e.g. 1 for Si, 10 for RTS"),
        "lot": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "contracts (units) per lot",
        },
        "point_value": _d(
            DECIMAL,
            "money per one whole point of price per contract (Si: 1; RTS: about 1.3 RUB)",
            default=1,
        ),
        "currency": {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "default": "RUB",
            "description": "currency of PnL, a 3-letter code such as RUB or USD",
        },
    },
}


SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,31}$"


def plugin_ref(kind: str, example: str) -> dict:
    return {
        "type": "object",
        "description": f"the {kind} plugin and its params",
        "additionalProperties": False,
        "required": ["plugin"],
        "properties": {
            "plugin": {
                "type": "string",
                "minLength": 1,
                "description": f"registered {kind} name (see 'roboframe plugins'), e.g. {example}",
            },
            "params": {
                "type": "object",
                "default": {},
                "description": f"settings of the {kind}, checked by its own schema",
            },
        },
    }


RISK = {
    "type": "object",
    "description": "pre-trade limits; every order is checked against them",
    "additionalProperties": False,
    "properties": {
        "allowed_symbols": {
            "type": "array",
            "items": {"type": "string"},
            "uniqueItems": True,
            "description": "symbols orders may be sent for (default: all symbols)",
        },
        "max_order_qty": {"type": "integer", "minimum": 1, "description": "largest order, in lots"},
        "max_position": {
            "type": ["integer", "object"],
            "minimum": 0,
            "additionalProperties": {"type": "integer", "minimum": 0},
            "description": "largest absolute position in lots: one number for every "
            "symbol, or a mapping symbol -> lots",
        },
        "max_orders_per_second": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "orders per second, measured in event time (a fraction "
            "too: 0.5 is one order per 2 s)",
        },
        "max_daily_loss": _d(
            DECIMAL,
            "money lost in a day (see day_starts) after which the robot halts until "
            "resumed (only reducing orders pass)",
        ),
        "day_starts": {
            "type": "string",
            "pattern": DAY_STARTS_PATTERN,
            "description": 'when the day of max_daily_loss begins: "HH:MM" and a zone (UTC, '
            'MSK, +03:00); default "00:00 UTC". MOEX futures: "19:00 MSK", the evening '
            "session opens the next trading day (a day begun at 12:00 or later is the next "
            "date's trading day)",
        },
        # no "default" in the schema: it would enter the config hash of files without it
        "trading_days": {
            "type": "array",
            "items": {"enum": list(DAYS)},
            "uniqueItems": True,
            "minItems": 1,
            "description": "the weekdays that are trading days (default mon-fri): a "
            "weekend's hours count in the next trading day's loss (see day_starts)",
        },
        "closed": {
            "type": "array",
            "items": {"type": "string", "pattern": DATE_PATTERN, "description": "YYYY-MM-DD"},
            "uniqueItems": True,
            "description": "holidays: dates that are no trading day; their hours count in "
            "the next trading day's loss",
        },
        "halt_lasts": {
            "enum": ["resume", "day"],
            "description": "how long a max_daily_loss halt lasts: until a resume command "
            "(the default), or to the end of its day (see day_starts) -- what a backtest "
            "of many days needs, with no one to resume it",
        },
        "price_band_pct": _d(DECIMAL, "limit prices must be within this percent of the last price"),
        "checks": {
            "type": "array",
            "description": "risk checks from plugins, run in this order after the limits above",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["plugin"],
                "properties": {
                    "plugin": {"type": "string", "description": "registered risk check name"},
                    "params": {"type": "object", "description": "the check's own settings"},
                },
            },
        },
    },
}

JOURNAL = {
    "type": "object",
    "description": "where and how the run's journal is written",
    "additionalProperties": False,
    "properties": {
        "dir": {
            "type": "string",
            "minLength": 1,
            "description": "folder of the journal files (default runs/<name>)",
        },
        "fsync": {
            "enum": ["never", "on_close", "always"],
            "default": "on_close",
            "description": "when to fsync: never, on_close, or always (every flush)",
        },
        "flush_ms": _d(
            DURATION,
            "longest time buffered events wait before reaching the OS; "
            "write 500ms, 1s or a number of milliseconds",
            default=200,
        ),
    },
}

LOOP = {
    "type": "object",
    "description": "the robot loop's socket and timers",
    "additionalProperties": False,
    "properties": {
        "address": {
            "type": "string",
            "pattern": ADDRESS_PATTERN,
            "default": "inproc://robo",
            "description": "ZeroMQ address the loop binds: inproc://, ipc:// or tcp://",
        },
        "timer_ms": _d(
            {"type": ["integer", "string", "null"], "pattern": DURATION_PATTERN, "minimum": 1},
            "heartbeat timer period (write 1s, 500ms ...), null for none",
            default=None,
        ),
        "drain_ms": _d(
            DURATION, "after stop, how long to wait for unacknowledged orders", default=1000
        ),
        "open_orders_on_stop": {
            "enum": ["leave", "cancel"],
            "default": "leave",
            "description": "what a stop (roboframe down, ctl stop, the end of the feed) does "
            "with the robot's open orders: leave them working, or cancel them",
        },
        # no "default" in the schema: a default enters the robot file's config hash,
        # and a run begun before the key existed could no longer be resumed
        "max_ahead": {
            "type": ["integer", "string", "null"],
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "description": "with a live feed (zmq), drop and count market data stamped "
            "further ahead of this host's clock than this (default 24h; null: never): one "
            "bar from years ahead would leave the robot deaf to every later bar",
        },
        "open_orders_on_error": {
            "enum": ["leave", "cancel"],
            "default": "leave",
            "description": "what a strategy error, which stops the robot at once, does with "
            "this run's open orders in an order store (postgres, mongo, zmq gateways): leave "
            "them working (a protective stop keeps protecting), or write a cancel request "
            "for each and wait up to drain_ms for the exchange side to answer",
        },
    },
}

CONTROL = {
    "type": "object",
    "description": "the control endpoint 'roboframe ctl' talks to",
    "additionalProperties": False,
    "properties": {
        "address": {
            "type": ["string", "null"],
            "pattern": ADDRESS_PATTERN,
            "description": "ZeroMQ address of the control endpoint (ipc:// or tcp://), null"
            " for none; left out: ipc://<journal.dir>/control.sock (mode 0600)",
        },
        "curve": {
            "type": "object",
            "description": "CURVE keys of the endpoint (required for tcp://);"
            " make them with 'roboframe keys generate'",
            "additionalProperties": False,
            "required": ["secret_key", "clients"],
            "properties": {
                "secret_key": {
                    "type": "string",
                    "minLength": 1,
                    "description": "the robot's NAME.key_secret file (relative to the robot file)",
                },
                "clients": {
                    "type": "string",
                    "minLength": 1,
                    "description": "folder of the allowed clients' public NAME.key files"
                    " (relative to the robot file); every other key is refused",
                },
            },
        },
    },
}

METRICS = {
    "type": "object",
    "description": "Prometheus metrics of the running robot over HTTP (off unless port is set)",
    "additionalProperties": False,
    "properties": {
        "port": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": 65535,
            "default": None,
            "description": "TCP port serving the text format at /metrics, null for none"
            " (0: any free port, logged)",
        },
        "address": {
            "type": "string",
            "minLength": 1,
            "default": "127.0.0.1",
            "description": "host or IP address to listen on; 0.0.0.0 for every interface",
        },
    },
}

BACKTEST = {
    "type": "object",
    "description": "defaults for 'roboframe backtest' (flags override them)",
    "additionalProperties": False,
    "properties": {
        "cash": _d(DECIMAL, "initial cash for equity and return figures", default=1000000),
        "fill_at": {
            "enum": ["next", "close"],
            "default": "next",
            "description": "market orders fill at the next price (next bar's open, "
            "next tick) or at the current bar's close",
        },
        "kind": {
            "enum": ["bar", "tick"],
            "default": "bar",
            "description": "what --data files hold",
        },
        "tz": {
            "type": "string",
            "pattern": ZONE_PATTERN,
            "default": "UTC",
            "description": "zone of --data times without an offset: UTC, MSK, +03:00",
        },
    },
}


READING = ("kind", "tz", "columns", "time_is", "interval", "encoding", "delimiter", "decimal")
"""How a file feed reads its file: what ``--data`` files take from it, and from
``backtest:``."""


def _data_reading() -> dict:
    """How ``--data`` files are read, as the csv feed's params say it (so a robot
    whose own feed is live can backtest a cp1251 Finam export stamped at bar
    opens): no defaults, so an unset key leaves the robot's file feed's say."""
    from roboframe.builtin.feeds.csvfile import CsvFeed

    out = {}
    for key in (k for k in READING if k not in BACKTEST["properties"]):  # kind, tz: its own
        prop = copy.deepcopy(CsvFeed.params_schema["properties"][key])
        prop.pop("default", None)
        prop["description"] = f"--data files: {prop['description']}"
        out[key] = prop
    return out


BACKTEST["properties"].update(_data_reading())

CORE_SECTIONS = (
    "name",
    "description",
    "symbols",
    "feed",
    "strategy",
    "gateway",
    "risk",
    "journal",
    "loop",
    "control",
    "metrics",
)


def core_schema() -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "roboframe robot",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "symbols", "feed", "strategy", "gateway"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                "description": "robot name: letters, digits, '.', '_' and '-' "
                "(it is part of every client order id and journal path)",
            },
            "description": {"type": "string", "description": "free text for people"},
            "symbols": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {
                    "pattern": SYMBOL_PATTERN,
                    "description": "a symbol: up to 32 letters, digits and . _ : / @ -, "
                    "starting with a letter or digit",
                },
                "additionalProperties": INSTRUMENT,
                "description": "the instruments the robot trades, by symbol",
            },
            "feed": plugin_ref("feed", "synthetic, csv, zmq"),
            "strategy": plugin_ref("strategy", "sma-crossover, or package.module:Class"),
            "gateway": plugin_ref("gateway", "paper"),
            "risk": copy.deepcopy(RISK),  # build_schema fills in its checks' plugins
            "journal": JOURNAL,
            "loop": LOOP,
            "control": CONTROL,
            "metrics": METRICS,
            "backtest": BACKTEST,
        },
    }


def _whole_number(_checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


RobotValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _whole_number),
)
"""JSON Schema 2020-12, but ``2.0`` is no integer: YAML reads it as a float, and a
strategy handing it on as a quantity gets every order refused (not a whole
number of lots) after ``validate`` said the file was fine."""


def checked_params_schema(entry: Any) -> dict:
    """A plugin class's ``params_schema``; a broken one is the plugin's error."""
    schema = getattr(entry.obj, "params_schema", None) or {"type": "object"}
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        kind = SINGULAR.get(entry.kind, entry.kind)
        raise PluginError(
            f"{kind} {entry.name!r} of plugin {entry.plugin!r} has an invalid params_schema: "
            f"{exc.message}"
        ) from None
    return copy.deepcopy(schema)


def _params_rules(table: dict) -> list[dict]:
    rules = []
    for name in sorted(table):
        rules.append(
            {
                "if": {"properties": {"plugin": {"const": name}}, "required": ["plugin"]},
                "then": {"properties": {"params": checked_params_schema(table[name])}},
            }
        )
    return rules


def _constrain_plugin(section: str, prop: dict, names: list[str], open_names: bool) -> None:
    """``plugin`` must be a registered name (a strategy may also be ``module:Class``).

    With ``open_names`` (the published schema, read by editors on machines with
    other plugins installed) the names are only offered as examples.
    """
    if not names:
        return  # nothing registered: the cross-field checks report the name
    if open_names:
        prop["examples"] = names
        return
    if section == "strategy":
        prop["anyOf"] = [{"enum": names}, {"pattern": CLASS_PATTERN}]
    else:
        prop["enum"] = names


def build_schema(registry: Any, *, open_names: bool = False) -> dict:
    """The full schema: core sections, plugin params, plugin-contributed sections.

    ``open_names`` leaves plugin names open (see :func:`_constrain_plugin`).

    Deterministic for a given registry (plugins in name order), so
    ``json.dumps(..., sort_keys=True)`` of it can be committed.
    """
    schema = core_schema()
    props = schema["properties"]
    for section, table in (
        ("feed", registry.feeds),
        ("gateway", registry.gateways),
        ("strategy", registry.strategies),
    ):
        rules = _params_rules(table)
        if rules:
            props[section]["allOf"] = rules
        plugin = props[section]["properties"]["plugin"]
        _constrain_plugin(section, plugin, sorted(table), open_names)
    check = props["risk"]["properties"]["checks"]["items"]
    rules = _params_rules(registry.risk_checks)
    if rules:
        check["allOf"] = rules
    _constrain_plugin("risk check", check["properties"]["plugin"], sorted(registry.risk_checks),
                      open_names)  # fmt: skip
    for section in sorted(registry.schema_fragments):
        if section in props:
            continue  # a plugin cannot redefine a core section
        props[section] = copy.deepcopy(registry.schema_fragments[section].obj)
    return schema
