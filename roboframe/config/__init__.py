"""Robot definitions: YAML with line numbers -> schema -> cross-field checks -> spec.

:func:`load_robot` reads a robot file and returns a frozen
:class:`RobotSpec`, or raises :class:`~roboframe.errors.ConfigError` listing
every problem with its file, line, field path, what is wrong and a hint.
"""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from roboframe.config.checks import apply_defaults, check_all, check_control, check_risk_checks
from roboframe.config.messages import Problem, describe, type_name
from roboframe.config.schema import CORE_SECTIONS, RobotValidator, build_schema
from roboframe.config.spec import (
    DEFAULT_MAX_AHEAD_MS,
    ControlSpec,
    CurveSpec,
    JournalSpec,
    LoopSpec,
    MetricsSpec,
    PluginRef,
    RiskSpec,
    RobotSpec,
    config_hash,
    default_control_address,
    frozen,
    parse_duration_ms,
)
from roboframe.config.yamlload import line_of, load_yaml, render_path
from roboframe.core.instruments import instruments_from_config
from roboframe.errors import ConfigError, ConfigProblem
from roboframe.risk.calendar import WEEKDAYS

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "ControlSpec",
    "CurveSpec",
    "JournalSpec",
    "LoopSpec",
    "MetricsSpec",
    "PluginRef",
    "RiskSpec",
    "RobotSpec",
    "build_schema",
    "load_robot",
    "parse_duration_ms",
    "spec_from_dict",
]

OVERRIDE_HINT = "the value comes from an override, not from the file"


def load_robot(
    path: str | Path, *, registry: Any = None, overrides: dict[str, Any] | None = None
) -> RobotSpec:
    """Load and validate a robot file.

    ``registry`` defaults to :func:`roboframe.plugins.get_registry`.
    ``overrides`` maps dotted field paths to values set before validation,
    e.g. ``{"journal.dir": "/tmp/run1"}``; values are used as given (parse
    command-line text before passing it). Raises :class:`ConfigError` with
    every problem found, sorted by line.
    """
    path = Path(path)
    data, lines = load_yaml(path)
    return _validate(data, lines, str(path), registry, overrides, startup=True)


def spec_from_dict(data: dict, *, source: str | None = None, registry: Any = None) -> RobotSpec:
    """Validate plain data (a journal header's ``raw``, a test's dict); no line numbers."""
    return _validate(copy.deepcopy(data), {}, source, registry, None)


def problems_at_start(spec: RobotSpec, problems: list[Problem]) -> ConfigError:
    """Problems only the machine a robot starts on can show (a data file that
    cannot be opened, a control socket path too long), with the robot file's
    lines when it is at hand."""
    lines: dict = {}
    if spec.source:
        try:
            _, lines = load_yaml(spec.source)
        except (OSError, ConfigError):
            lines = {}
    return _fail(problems, lines, spec.source)


def _fail(
    problems: list[Problem], lines: dict, shown: str | None, overridden: frozenset = frozenset()
) -> ConfigError:
    seen = set()
    out = []
    for path, message, hint in problems:
        if (path, message) in seen:
            continue
        seen.add((path, message))
        line = line_of(lines, path) if lines else None
        if any(path[: len(o)] == o for o in overridden):
            line, hint = None, f"{hint}; {OVERRIDE_HINT}" if hint else OVERRIDE_HINT
        out.append(ConfigProblem(shown, line, render_path(path), message, hint))
    out.sort(key=lambda p: (p.line or 0, p.field, p.message))
    return ConfigError(out)


def _apply_overrides(data: dict, overrides: dict[str, Any], shown: str | None) -> frozenset:
    """Set each dotted field; return the paths that were set."""
    done = set()
    for dotted, value in overrides.items():
        parts = tuple(str(dotted).split("."))
        if not all(parts):
            raise ConfigError([ConfigProblem(shown, None, str(dotted), "not a field path")])
        node = data
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                message = f"cannot set: {'.'.join(parts[: depth + 1])} is not a mapping"
                raise ConfigError([ConfigProblem(shown, None, str(dotted), message)])
        node[parts[-1]] = copy.deepcopy(value)
        done.add(parts)
    return frozenset(done)


def _validate(
    data: Any, lines: dict, shown: str | None, registry: Any, overrides, *, startup: bool = False
) -> RobotSpec:
    """``startup`` adds the checks of a robot about to run, which a journal need not pass."""
    if registry is None:
        from roboframe.plugins import get_registry

        registry = get_registry()
    if not isinstance(data, dict):
        message = f"the file must be a mapping of sections, got a {type_name(data)}"
        hint = "start with 'name: my-robot' and see robots/si.yaml"
        raise _fail([((), message, hint)], lines, shown)
    overridden = _apply_overrides(data, overrides, shown) if overrides else frozenset()
    validator = RobotValidator(build_schema(registry))
    problems = [p for error in validator.iter_errors(data) for p in describe(error)]
    if problems:
        raise _fail(_blame_broken(problems, registry), lines, shown, overridden)
    problems, strategy_cls = check_all(data, registry, shown)
    if problems:
        raise _fail(_blame_broken(problems, registry), lines, shown, overridden)
    spec = _build_spec(_with_defaults(data, registry, strategy_cls), shown, data.get("control"))
    problems = check_risk_checks(spec, registry)
    if problems:
        raise _fail(problems, lines, shown, overridden)
    if startup:
        control = data.get("control") or {}
        address, default = spec.control.address, spec.control.default
        problems = check_control(control, address, default=default, ipc_length=False)
        if problems:
            raise _fail(problems, lines, shown, overridden)
    return spec


def _blame_broken(problems: list, registry: Any) -> list:
    """An unknown plugin name may be one a plugin that failed to load would give:
    its hint says so."""
    note = registry.broken_note() if hasattr(registry, "broken_note") else ""
    if not note:
        return problems
    return [
        (where, message, f"{hint}; {note}" if hint else note)
        if message.startswith("unknown ") and where[-1:] == ("plugin",)
        else (where, message, hint)
        for where, message, hint in problems
    ]


def _with_defaults(data: dict, registry: Any, strategy_cls: type) -> dict:
    raw = copy.deepcopy(data)
    raw.setdefault("description", "")
    for section, table in (("feed", registry.feeds), ("gateway", registry.gateways)):
        cls = table[raw[section]["plugin"]].obj
        raw[section]["params"] = apply_defaults(cls, raw[section].get("params", {}))
    strategy = raw["strategy"]
    strategy["params"] = apply_defaults(strategy_cls, strategy.get("params", {}))
    for check in raw.setdefault("risk", {}).get("checks", ()):
        cls = registry.risk_checks[check["plugin"]].obj
        check["params"] = apply_defaults(cls, check.get("params", {}))
    journal = raw.setdefault("journal", {})
    journal.setdefault("dir", f"runs/{raw['name']}")
    journal.setdefault("fsync", "on_close")
    journal.setdefault("flush_ms", 200)
    loop = raw.setdefault("loop", {})
    loop.setdefault("address", "inproc://robo")
    loop.setdefault("timer_ms", None)
    loop.setdefault("drain_ms", 1000)
    raw.setdefault("control", {}).setdefault("address", None)
    return raw


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _risk_spec(risk: dict, symbols: list[str]) -> RiskSpec:
    limits = risk.get("max_position")
    if isinstance(limits, int):
        limits = dict.fromkeys(symbols, limits)
    rate = risk.get("max_orders_per_second")
    allowed = risk.get("allowed_symbols", symbols)  # an empty list allows nothing
    return RiskSpec(
        allowed_symbols=tuple(allowed),
        max_order_qty=risk.get("max_order_qty"),
        max_position=frozen(limits or {}),
        max_orders_per_second=None if rate is None else float(rate),
        max_daily_loss=_decimal(risk.get("max_daily_loss")),
        day_starts=risk.get("day_starts", "00:00 UTC"),
        trading_days=tuple(risk.get("trading_days", WEEKDAYS)),
        closed=tuple(risk.get("closed", ())),
        halt_lasts=risk.get("halt_lasts", "resume"),
        price_band_pct=_decimal(risk.get("price_band_pct")),
        checks=tuple(
            PluginRef(c["plugin"], frozen(c.get("params", {}))) for c in risk.get("checks", ())
        ),
    )


def _control_spec(raw: dict, given: dict | None, shown: str | None) -> ControlSpec:
    """The control endpoint; a left-out address is the default ipc socket (not in ``raw``)."""
    curve = raw["control"].get("curve")
    if curve is not None:
        base = Path(shown).parent if shown else Path.cwd()
        curve = CurveSpec(
            secret_key=os.path.abspath(base / curve["secret_key"]),
            clients=os.path.abspath(base / curve["clients"]),
        )
    if given is None or "address" not in given:
        address = default_control_address(raw["journal"]["dir"])
        return ControlSpec(address, curve=curve, default=True)
    return ControlSpec(address=raw["control"]["address"], curve=curve)


def _build_spec(raw: dict, shown: str | None, control: dict | None) -> RobotSpec:
    symbols = instruments_from_config(raw["symbols"])
    loop = raw["loop"]
    return RobotSpec(
        name=raw["name"],
        description=raw["description"],
        symbols=frozen(symbols),
        feed=PluginRef(raw["feed"]["plugin"], frozen(raw["feed"]["params"])),
        strategy=PluginRef(raw["strategy"]["plugin"], frozen(raw["strategy"]["params"])),
        gateway=PluginRef(raw["gateway"]["plugin"], frozen(raw["gateway"]["params"])),
        risk=_risk_spec(raw["risk"], sorted(symbols)),
        journal=JournalSpec(
            dir=raw["journal"]["dir"],
            fsync=raw["journal"]["fsync"],
            flush_ms=parse_duration_ms(raw["journal"]["flush_ms"]),
        ),
        loop=LoopSpec(
            address=loop["address"],
            timer_ms=parse_duration_ms(loop["timer_ms"]),
            drain_ms=parse_duration_ms(loop["drain_ms"]),
            # absent keys stay out of raw: config hashes of older files do not change
            open_orders_on_stop=loop.get("open_orders_on_stop", "leave"),
            open_orders_on_error=loop.get("open_orders_on_error", "leave"),
            max_ahead_ms=parse_duration_ms(loop.get("max_ahead", DEFAULT_MAX_AHEAD_MS)),
        ),
        control=_control_spec(raw, control, shown),
        extra=frozen({k: v for k, v in raw.items() if k not in CORE_SECTIONS}),
        source=shown,
        raw=raw,
        config_hash=config_hash(raw),
        metrics=MetricsSpec(**raw.get("metrics", {})),  # not defaulted into raw: same hash
    )
