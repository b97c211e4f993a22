"""roboframe: deterministic, journaled trading robots on ZeroMQ, declared in YAML.

The public API: the plugin marker, the base classes plugins subclass, and
the event and action types strategies see and return.
"""

from __future__ import annotations

from roboframe.core.events import (
    Bar,
    Cancel,
    Control,
    Fill,
    NewOrder,
    OrderUpdate,
    Replace,
    Tick,
    Timer,
)
from roboframe.core.feed import Feed
from roboframe.core.gateway import Gateway, Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.riskcheck import RiskCheck, RiskView
from roboframe.core.strategy import INTERFACE_VERSION, Strategy
from roboframe.errors import (
    ConfigError,
    GatewayError,
    JournalError,
    PluginError,
    RoboframeError,
    StrategyError,
)
from roboframe.plugins import hookimpl

__version__ = "0.1.0"

__all__ = [
    "INTERFACE_VERSION",
    "Bar",
    "Cancel",
    "ConfigError",
    "Control",
    "Feed",
    "Fill",
    "Gateway",
    "GatewayError",
    "Instrument",
    "JournalError",
    "NewOrder",
    "OrderUpdate",
    "PluginError",
    "Replace",
    "RiskCheck",
    "RiskView",
    "RoboframeError",
    "Runtime",
    "Strategy",
    "StrategyError",
    "Tick",
    "Timer",
    "__version__",
    "hookimpl",
]
