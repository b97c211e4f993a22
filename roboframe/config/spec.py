"""The frozen, validated form of a robot file.

A :class:`RobotSpec` is what every part of roboframe reads: the kernel its
risk limits and symbols, the loop its addresses and timers, the journal its
folder. ``raw`` keeps the validated file as plain JSON-able data with the
defaults filled in; a journal header stores it, and ``config_hash`` (the
SHA-256 of its canonical JSON) tells whether two runs had the same robot.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from roboframe.core.instruments import Instrument
from roboframe.risk.calendar import WEEKDAYS


@dataclass(frozen=True)
class PluginRef:
    plugin: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskSpec:
    allowed_symbols: tuple[str, ...]
    max_order_qty: int | None = None
    max_position: Mapping[str, int] = field(default_factory=dict)
    max_orders_per_second: float | None = None
    max_daily_loss: Decimal | None = None
    day_starts: str = "00:00 UTC"
    trading_days: tuple[str, ...] = WEEKDAYS
    closed: tuple[str, ...] = ()
    halt_lasts: str = "resume"
    price_band_pct: Decimal | None = None
    checks: tuple[PluginRef, ...] = ()


@dataclass(frozen=True)
class JournalSpec:
    dir: str
    fsync: str = "on_close"
    flush_ms: int = 200


DEFAULT_MAX_AHEAD_MS = 24 * 3600 * 1000
"""``loop.max_ahead`` when a robot file does not say."""


@dataclass(frozen=True)
class LoopSpec:
    address: str = "inproc://robo"
    timer_ms: int | None = None
    drain_ms: int = 1000
    open_orders_on_stop: str = "leave"  # or "cancel"
    open_orders_on_error: str = "leave"  # or "cancel": a strategy error's (store gateways)
    max_ahead_ms: int | None = DEFAULT_MAX_AHEAD_MS  # live market data further ahead: dropped


@dataclass(frozen=True)
class CurveSpec:
    """CURVE key files of a ZeroMQ endpoint, as absolute paths (see :mod:`roboframe.curve`).

    A server (the binding side) has ``secret_key`` and ``clients``, a folder
    of allowed public keys; a client has ``secret_key`` and ``server_key``.
    """

    secret_key: str
    clients: str | None = None
    server_key: str | None = None


@dataclass(frozen=True)
class ControlSpec:
    """The control endpoint. ``address`` None is none.

    ``default`` says the file left ``address`` out, so it is
    ``ipc://<journal.dir>/control.sock`` made absolute when the file was loaded;
    it is not written into ``raw`` (the config hash stays what it was), and a
    run with another journal folder moves it there.
    """

    address: str | None = None
    curve: CurveSpec | None = None
    default: bool = False


@dataclass(frozen=True)
class MetricsSpec:
    """Where the robot serves Prometheus metrics; ``port`` None is off.

    The default is filled here, not into ``raw``: a file without a
    ``metrics`` section keeps the config hash it had before the section existed.
    """

    port: int | None = None
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class RobotSpec:
    name: str
    description: str
    symbols: Mapping[str, Instrument]
    feed: PluginRef
    strategy: PluginRef
    gateway: PluginRef
    risk: RiskSpec
    journal: JournalSpec
    loop: LoopSpec
    control: ControlSpec
    extra: Mapping[str, Any]
    source: str | None
    raw: dict
    config_hash: str
    metrics: MetricsSpec = field(default_factory=MetricsSpec)


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(value: int | str | None) -> int | None:
    """``500ms``, ``1s``, ``2m``, ``1h`` or an integer (or digit string) of milliseconds."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        for unit in ("ms", "s", "m", "h"):  # "ms" before "m" and "s"
            number = value[: -len(unit)]
            if value.endswith(unit) and number.isdigit():
                return int(number) * _UNITS_MS[unit]
    raise ValueError(f"not a duration: {value!r}")


def config_hash(raw: dict) -> str:
    """SHA-256 hex of the canonical JSON of ``raw`` (sorted keys, no spaces)."""
    data = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def config_changes(old: Mapping, new: Mapping, path: str = "") -> list[tuple[str, Any, Any]]:
    """What differs between two robot files' ``raw`` forms: ``(dotted key, old,
    new)`` in key order, nested mappings compared key by key; a key one side
    lacks has :data:`ABSENT` there."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        where = f"{path}.{key}" if path else str(key)
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes.extend(config_changes(a, b, where))
        elif a is ABSENT or b is ABSENT or _canonical(a) != _canonical(b):
            changes.append((where, a, b))
    return changes


ABSENT = type("Absent", (), {"__repr__": lambda self: "(absent)"})()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def default_control_address(journal_dir: str | Path) -> str:
    """``ipc://`` + the absolute path of ``control.sock`` in ``journal_dir`` (relative to cwd)."""
    return f"ipc://{os.path.abspath(Path(journal_dir) / 'control.sock')}"


def frozen(mapping: Mapping) -> Mapping:
    """A read-only view of a copy of ``mapping``."""
    return MappingProxyType(dict(mapping))
