"""Built-in risk checks, registered like any plugin's: ``trading-hours``."""

from __future__ import annotations

from roboframe.plugins import hookimpl
from roboframe.risk.hours import TradingHours


@hookimpl
def roboframe_register_risk_checks(register):
    register("trading-hours", TradingHours)
