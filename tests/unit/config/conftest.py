"""A small registry of test plugins, and helpers that write and load robot files.

The config tests use this registry, not the process-wide one, so they do not
depend on the built-in plugins' params or on what is installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roboframe.config import load_robot
from roboframe.core.feed import Feed
from roboframe.core.gateway import Gateway
from roboframe.core.strategy import Strategy
from roboframe.errors import ConfigError
from roboframe.plugins import Registered, Registry


class TickFeed(Feed):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["seed"],
        "properties": {
            "seed": {"type": "integer", "description": "random seed"},
            "prices": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "first price per symbol",
            },
            "bars": {"type": "integer", "minimum": 1, "default": 100, "description": "bar count"},
        },
    }


class FileFeed(Feed):
    params_schema = {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "description": "the data file"},
            "symbols": {"type": "array", "items": {"type": "string"}, "description": "symbols"},
        },
    }


class PaperGateway(Gateway):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "commission": {
                "type": "number",
                "minimum": 0,
                "default": 0,
                "description": "fee per lot per fill",
            },
        },
    }


class Crossover(Strategy):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "fast": {"type": "integer", "minimum": 1, "default": 10, "description": "fast bars"},
            "slow": {"type": "integer", "minimum": 2, "default": 30, "description": "slow bars"},
            "qty": {"type": "integer", "minimum": 1, "default": 1, "description": "lots"},
            "levels": {"type": "array", "default": [], "description": "price levels"},
        },
    }

    @classmethod
    def validate_params(cls, params):
        if params["fast"] >= params["slow"]:
            return [("fast", f"must be less than slow ({params['slow']})")]
        return []


class Momentum(Strategy):
    """No params schema of its own, no cross-field rules."""


class Imported(Strategy):
    """Named in tests as ``tests.unit.config.conftest:Imported``."""

    params_schema = {
        "type": "object",
        "properties": {
            "window": {"type": "integer", "minimum": 2, "default": 5, "description": "bars"},
            "band": {"type": "number", "default": 1.5, "description": "band width"},
        },
    }

    @classmethod
    def validate_params(cls, params):
        if params["window"] > 100 and params["band"] < 1:
            return [("band", "must be >= 1 when window > 100")]
        return []


class Exploding(Strategy):
    """``validate_params`` itself is broken."""

    @classmethod
    def validate_params(cls, params):
        raise KeyError("slow")


class BadSchema(Strategy):
    params_schema = {"type": "objekt"}


NotAStrategy = object

ALERTS = {
    "type": "object",
    "description": "where to send alerts",
    "additionalProperties": False,
    "properties": {"email": {"type": "string", "description": "address to mail"}},
}


def make_registry(**extra_strategies: type) -> Registry:
    """The test registry; ``extra_strategies`` adds name=class entries."""
    strategies = {"crossover": Crossover, "momentum": Momentum, **extra_strategies}
    return Registry(
        feeds={
            "ticks": Registered("feeds", "ticks", TickFeed, "test-plugin"),
            "file": Registered("feeds", "file", FileFeed, "test-plugin"),
        },
        gateways={"paper": Registered("gateways", "paper", PaperGateway, "test-plugin")},
        strategies={
            name: Registered("strategies", name, cls, "test-plugin")
            for name, cls in strategies.items()
        },
        schema_fragments={
            "alerts": Registered("schema_fragments", "alerts", ALERTS, "test-alerts"),
        },
    )


GOOD = """\
name: test-bot
symbols:
  Si-12.26: {tick_size: 1, lot: 1, point_value: 1, currency: RUB}
  RTS-12.26: {tick_size: 10, point_value: 1.3}
feed:
  plugin: ticks
  params: {seed: 1, prices: {Si-12.26: 92000}}
strategy:
  plugin: crossover
  params: {fast: 3, slow: 8}
gateway:
  plugin: paper
risk:
  max_order_qty: 5
journal:
  fsync: on_close
"""
"""A valid robot file for the test registry; the bad cases edit it line by line."""

MINIMAL = """\
name: tiny
symbols:
  Si-12.26: {tick_size: 1}
feed: {plugin: ticks, params: {seed: 1}}
strategy: {plugin: crossover}
gateway: {plugin: paper}
"""
"""The smallest valid robot file: every optional section left to its default."""


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def write_robot(tmp_path):
    """Write text to ``robot.yaml`` in ``tmp_path``; return its path."""

    def write(text: str, name: str = "robot.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_robot, registry):
    """Write text and load it with the test registry."""

    def load_text(text: str, **kw):
        return load_robot(write_robot(text), registry=registry, **kw)

    return load_text


@pytest.fixture
def error_of(load):
    """The rendered ConfigError of a robot text (fails the test when it loads)."""

    def render(text: str, **kw) -> str:
        with pytest.raises(ConfigError) as info:
            load(text, **kw)
        return str(info.value)

    return render
