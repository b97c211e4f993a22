"""The frozen, validated form of a robot file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from roboframe.core.instruments import Instrument


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
    price_band_pct: Decimal | None = None


@dataclass(frozen=True)
class JournalSpec:
    dir: str
    fsync: str = "on_close"
    flush_ms: int = 200


@dataclass(frozen=True)
class LoopSpec:
    address: str = "inproc://robo"
    timer_ms: int | None = None
    drain_ms: int = 1000


@dataclass(frozen=True)
class ControlSpec:
    address: str | None = None


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


def config_hash(raw: dict) -> str:
    data = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))
