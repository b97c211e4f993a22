"""Robot definitions: YAML with line numbers -> schema -> cross-field checks -> spec.

:func:`load_robot` reads a robot file and returns a frozen
:class:`RobotSpec`, or raises :class:`~roboframe.errors.ConfigError` listing
every problem with its file, line, field path, what is wrong and a hint.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from roboframe.config.checks import apply_defaults, check_all, check_strategy_params
from roboframe.config.messages import describe
from roboframe.config.schema import build_schema
from roboframe.config.spec import (
    ControlSpec,
    JournalSpec,
    LoopSpec,
    PluginRef,
    RiskSpec,
    RobotSpec,
    config_hash,
    frozen,
)
from roboframe.config.yamlload import line_of, load_yaml, render_path
from roboframe.core.instruments import instruments_from_config
from roboframe.errors import ConfigError, ConfigProblem

__all__ = [
    "ConfigError",
    "RobotSpec",
    "build_schema",
    "load_robot",
    "parse_duration_ms",
    "spec_from_dict",
]

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration_ms(value: int | str | None) -> int | None:
    """``500ms``, ``1s``, ``2m``, ``1h`` or an integer of milliseconds."""
    if value is None or isinstance(value, int):
        return value
    for unit in ("ms", "s", "m", "h"):
        if value.endswith(unit) and value[: -len(unit)].isdigit():
            return int(value[: -len(unit)]) * _UNITS_MS[unit]
    raise ValueError(f"not a duration: {value!r}")


def load_robot(
    path: str | Path, *, registry: Any = None, overrides: dict[str, Any] | None = None
) -> RobotSpec:
    """Load and validate a robot file."""
    path = Path(path)
    data, lines = load_yaml(path)
    return _validate(data, lines, str(path), registry, overrides)


def spec_from_dict(data: dict, *, source: str | None = None, registry: Any = None) -> RobotSpec:
    """Validate plain data (a journal header's config, a test's dict)."""
    return _validate(copy.deepcopy(data), {}, source, registry, None)


def _fail(problems: list[tuple], lines: dict, shown: str | None) -> ConfigError:
    seen = set()
    out = []
    for path, message, hint in problems:
        key = (path, message)
        if key in seen:
            continue
        seen.add(key)
        line = line_of(lines, path) if lines else None
        out.append(ConfigProblem(shown, line, render_path(path), message, hint))
    out.sort(key=lambda p: (p.line or 0, p.field))
    return ConfigError(out)


def _apply_overrides(data: dict, overrides: dict[str, Any]) -> None:
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value


def _validate(data: Any, lines: dict, shown: str | None, registry: Any, overrides) -> RobotSpec:
    if registry is None:
        from roboframe.plugins import get_registry

        registry = get_registry()
    if not isinstance(data, dict):
        raise _fail(
            [
                (
                    (),
                    f"the file must be a mapping of sections, got a {type(data).__name__}",
                    "start with 'name: my-robot' and see robots/si.yaml",
                )
            ],
            lines,
            shown,
        )
    if overrides:
        _apply_overrides(data, overrides)
    validator = Draft202012Validator(build_schema(registry))
    problems = [describe(e) for e in validator.iter_errors(data)]
    if problems:
        raise _fail(problems, lines, shown)
    problems, strategy_cls = check_all(data, registry)
    if problems:
        raise _fail(problems, lines, shown)
    raw = _with_defaults(data, registry, strategy_cls)
    problems = check_strategy_params(strategy_cls, raw["strategy"]["params"])
    if problems:
        raise _fail(problems, lines, shown)
    return _build_spec(raw, shown)


def _with_defaults(data: dict, registry: Any, strategy_cls: type) -> dict:
    raw = copy.deepcopy(data)
    raw.setdefault("description", "")
    for section, table in (("feed", registry.feeds), ("gateway", registry.gateways)):
        cls = table[raw[section]["plugin"]].obj
        raw[section]["params"] = apply_defaults(cls.params_schema, raw[section].get("params", {}))
    strategy = raw["strategy"]
    strategy["params"] = apply_defaults(strategy_cls.params_schema, strategy.get("params", {}))
    raw.setdefault("risk", {})
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


def _build_spec(raw: dict, shown: str | None) -> RobotSpec:
    symbols = instruments_from_config(raw["symbols"])
    risk = raw["risk"]
    limits = risk.get("max_position")
    if isinstance(limits, int):
        limits = dict.fromkeys(symbols, limits)
    from roboframe.config.schema import CORE_SECTIONS

    return RobotSpec(
        name=raw["name"],
        description=raw["description"],
        symbols=frozen(symbols),
        feed=PluginRef(raw["feed"]["plugin"], frozen(raw["feed"]["params"])),
        strategy=PluginRef(raw["strategy"]["plugin"], frozen(raw["strategy"]["params"])),
        gateway=PluginRef(raw["gateway"]["plugin"], frozen(raw["gateway"]["params"])),
        risk=RiskSpec(
            # absent: every symbol; an explicit empty list: none (a deliberate lock-out)
            allowed_symbols=tuple(
                sorted(symbols) if risk.get("allowed_symbols") is None else risk["allowed_symbols"]
            ),
            max_order_qty=risk.get("max_order_qty"),
            max_position=frozen(limits or {}),
            max_orders_per_second=risk.get("max_orders_per_second"),
            max_daily_loss=_decimal(risk.get("max_daily_loss")),
            price_band_pct=_decimal(risk.get("price_band_pct")),
        ),
        journal=JournalSpec(
            dir=raw["journal"]["dir"],
            fsync=raw["journal"]["fsync"],
            flush_ms=parse_duration_ms(raw["journal"]["flush_ms"]),
        ),
        loop=LoopSpec(
            address=raw["loop"]["address"],
            timer_ms=parse_duration_ms(raw["loop"]["timer_ms"]),
            drain_ms=parse_duration_ms(raw["loop"]["drain_ms"]),
        ),
        control=ControlSpec(address=raw["control"]["address"]),
        extra=frozen({k: v for k, v in raw.items() if k not in CORE_SECTIONS}),
        source=shown,
        raw=raw,
        config_hash=config_hash(raw),
    )
