"""Pre-trade risk: every action passes here before it leaves the kernel."""

from roboframe.risk.limits import ACTIVE, HALTED, PAUSED, REDUCING, STOPPED, RiskEngine

__all__ = ["ACTIVE", "HALTED", "PAUSED", "REDUCING", "STOPPED", "RiskEngine"]
