"""Every roboframe hook, in one place. This file is the plugin contract.

Hooks are grouped by phase. Registration hooks receive a ``register``
callback rather than returning values, so the core sees every registration
and can reject a duplicate name with a message naming both plugins. All
hooks are called with keyword arguments; a hook may grow new arguments and
old implementations keep working, since pluggy passes each implementation
only the arguments it names.

The guide for plugin authors, with a complete example, is ``docs/plugins.md``.
A test fails when a hook here is missing from that guide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("roboframe")

# --- registration: called once per process, when the registry is built ------


@hookspec
def roboframe_register_feeds(register: Callable[[str, type], None]) -> None:
    """Register market-data feed classes.

    Call ``register(name, cls)`` once per feed; ``cls`` subclasses
    :class:`roboframe.Feed`. ``name`` is what a robot file writes under
    ``feed: plugin:``. A name registered twice fails, naming both plugins.
    Returns nothing; every implementation is called.
    """


@hookspec
def roboframe_register_gateways(register: Callable[[str, type], None]) -> None:
    """Register order gateway classes.

    Call ``register(name, cls)``; ``cls`` subclasses :class:`roboframe.Gateway`.
    ``name`` is what a robot file writes under ``gateway: plugin:``.
    Returns nothing; every implementation is called.
    """


@hookspec
def roboframe_register_strategies(register: Callable[[str, type], None]) -> None:
    """Register strategy classes under short names.

    Call ``register(name, cls)``; ``cls`` subclasses :class:`roboframe.Strategy`.
    A robot file names a strategy by this name or by an import path
    ``package.module:Class``. Returns nothing; every implementation is called.
    """


@hookspec
def roboframe_register_risk_checks(register: Callable[[str, type], None]) -> None:
    """Register pre-trade risk check classes.

    Call ``register(name, cls)`` once per check; ``cls`` subclasses
    :class:`roboframe.core.riskcheck.RiskCheck`. ``name`` is what a robot file
    writes under ``risk: checks: - plugin:``. Checks run after the built-in
    limits, in the file's order, on new orders only.
    """


@hookspec
def roboframe_register_commands(register: Callable[[str, Any], None]) -> None:
    """Register command-line commands.

    Call ``register(name, command)`` once per command; ``command`` is a
    ``click.Command`` (or group), run as ``roboframe NAME ...``. A name the
    core already uses (``run``, ``backtest``, ...) is refused.
    """


@hookspec
def roboframe_register_stores(register: Callable[[str, type], None]) -> None:
    """Register order-store backends by URL scheme.

    Call ``register(scheme, cls)``, e.g. ``register("postgresql", PgStore)``;
    ``roboframe exchange --store URL`` and store-backed gateways open
    ``cls(url)`` for URLs of that scheme. ``cls`` may be any callable taking
    the URL: a function that imports the backend and returns its store keeps
    the driver's import out of every command that opens no store. Returns
    nothing; every implementation is called.
    """


@hookspec
def roboframe_config_schema(register: Callable[[str, dict], None]) -> None:
    """Contribute JSON Schema fragments to the robot-file schema.

    Call ``register(section, schema)`` to allow a new top-level section
    ``section`` in robot files, validated by ``schema`` (a JSON Schema
    object). Core sections cannot be replaced. Params of registered feeds,
    gateways and strategies need no fragment: their classes' ``params_schema``
    is added automatically. Returns nothing; every implementation is called.
    """


@hookspec
def roboframe_register_analysis_stores(register: Callable[[str, type], None]) -> None:
    """Register analysis-database backends by URL scheme.

    Call ``register(scheme, cls)``, e.g. ``register("postgresql", PgAnalysisStore)``;
    ``roboframe analyze --db URL`` opens ``cls(url)`` for URLs of that scheme.
    What ``cls(url)`` returns follows :class:`roboframe.analyze.store.AnalysisStore`
    (``cls`` may be a function importing it when called, as for order stores);
    SQLite is built in. Returns nothing; every implementation is called.
    """


@hookspec
def roboframe_register_statistics(register: Callable[[str, type], None]) -> None:
    """Register statistics the analyzer adds to every run's table.

    Call ``register(name, cls)``. For each run the analyzer makes ``cls()``,
    calls ``on_event(event, kernel)`` after the kernel handled each event
    (read-only: never change the kernel), and stores ``result()`` (a JSON-able
    value) under ``name`` in the run's statistics. Returns nothing.
    """


@hookspec
def roboframe_register_report_sections(register: Callable[[str, Callable], None]) -> None:
    """Register sections of the analyzer's HTML report.

    Call ``register(title, render)``; ``render(runs)`` gets the list of
    :class:`roboframe.analyze.model.RunReport` and returns an HTML fragment
    (escape what you did not write). A section that raises is replaced by an
    error note; the report is still written. Returns nothing.
    """


# --- lifecycle: called around each robot run ---------------------------------


@hookspec
def roboframe_robot_start(robot: Any, run_id: str, journal_path: str) -> None:
    """Called once when a robot run starts, before the first event.

    ``robot`` is the validated :class:`roboframe.config.RobotSpec`. Must not
    block; must not touch the robot's state. Every implementation is called.
    """


@hookspec
def roboframe_robot_stop(robot: Any, run_id: str, summary: dict) -> None:
    """Called once when a robot run has stopped and its journal is closed.

    ``summary`` is the same dict ``roboframe run --json`` prints (events,
    orders, fills, positions, PnL, journal path). Every implementation is
    called; an exception is logged and does not change the exit code.
    """
