"""Checks a schema cannot express: symbols that must exist, plugins that must
resolve, strategy params that must satisfy the strategy's own rules."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import Draft202012Validator

from roboframe.config.messages import describe, did_you_mean
from roboframe.errors import PluginError

Problem = tuple[tuple, str, str | None]  # (path, message, hint)


def check_all(data: dict, registry: Any) -> tuple[list[Problem], type | None]:
    """Every cross-field problem of ``data``, and the strategy class when it resolved."""
    problems: list[Problem] = []
    symbols = list(data.get("symbols", {}))
    problems += _check_instruments(data)
    problems += _check_risk_symbols(data.get("risk", {}), symbols)
    problems += _check_feed_symbols(data.get("feed", {}).get("params", {}), symbols)
    problems += _check_addresses(data)
    for section, kind in (("feed", "feeds"), ("gateway", "gateways")):
        name = data[section]["plugin"]
        if name not in getattr(registry, kind):
            problems.append(_unknown_plugin(section, kind, name, registry))
    strategy_cls = None
    try:
        from roboframe.plugins import resolve_strategy

        strategy_cls, _ = resolve_strategy(data["strategy"]["plugin"], registry)
    except PluginError as exc:
        name = data["strategy"]["plugin"]
        if ":" in name:
            problems.append(
                (
                    ("strategy", "plugin"),
                    str(exc),
                    "check the import path package.module:Class and that the package is installed",
                )
            )
        else:
            problems.append(_unknown_plugin("strategy", "strategies", name, registry))
    return problems, strategy_cls


def _unknown_plugin(section: str, kind: str, name: str, registry: Any) -> Problem:
    known = sorted(getattr(registry, kind))
    hint = did_you_mean(name, known) or f"registered: {', '.join(known) or 'none'}"
    if section == "strategy":
        hint += "; or name a class as package.module:Class"
    return (section, "plugin"), f"unknown {section} {name!r}", hint


def _positive_decimal(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except InvalidOperation:
        return False


def _check_instruments(data: dict) -> list[Problem]:
    out = []
    for symbol, spec in data.get("symbols", {}).items():
        for key in ("tick_size", "point_value"):
            if key in spec and not _positive_decimal(spec[key]):
                out.append(
                    (
                        ("symbols", symbol, key),
                        f"must be > 0, got {spec[key]!r}",
                        "a positive number such as 1, 10 or 0.01",
                    )
                )
    risk = data.get("risk", {})
    for key in ("max_daily_loss", "price_band_pct"):
        if key in risk and not _positive_decimal(risk[key]):
            out.append(
                (
                    ("risk", key),
                    f"must be > 0, got {risk[key]!r}",
                    "a positive number; leave the field out for no limit",
                )
            )
    return out


def _check_risk_symbols(risk: dict, symbols: list[str]) -> list[Problem]:
    out = []
    for i, symbol in enumerate(risk.get("allowed_symbols", [])):
        if symbol not in symbols:
            out.append(
                (
                    ("risk", "allowed_symbols", i),
                    f"{symbol!r} is not one of the robot's symbols",
                    did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                )
            )
    limits = risk.get("max_position")
    if isinstance(limits, dict):
        for symbol in limits:
            if symbol not in symbols:
                out.append(
                    (
                        ("risk", "max_position", symbol),
                        f"limit for {symbol!r}, which the robot does not trade",
                        did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                    )
                )
    return out


def _check_feed_symbols(params: dict, symbols: list[str]) -> list[Problem]:
    out = []
    prices = params.get("prices")
    if isinstance(prices, dict):
        for symbol in prices:
            if symbol not in symbols:
                out.append(
                    (
                        ("feed", "params", "prices", symbol),
                        f"price for {symbol!r}, which is not in symbols",
                        did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
                    )
                )
    symbol = params.get("symbol")
    if isinstance(symbol, str) and symbol not in symbols:
        out.append(
            (
                ("feed", "params", "symbol"),
                f"{symbol!r} is not in symbols",
                did_you_mean(symbol, symbols) or f"symbols: {', '.join(symbols)}",
            )
        )
    return out


def _check_addresses(data: dict) -> list[Problem]:
    loop = data.get("loop", {}).get("address", "inproc://robo")
    control = data.get("control", {}).get("address")
    if control and control == loop:
        return [
            (
                ("control", "address"),
                f"same address as loop.address ({loop})",
                "the control endpoint needs its own address, e.g. ipc://runs/NAME/control.sock",
            )
        ]
    return []


def check_strategy_params(cls: type, params: dict) -> list[Problem]:
    """The strategy's own schema and ``validate_params`` on ``params``."""
    schema = getattr(cls, "params_schema", None) or {"type": "object"}
    out: list[Problem] = []
    for error in Draft202012Validator(schema).iter_errors(params):
        path, message, hint = describe(error)
        out.append((("strategy", "params", *path), message, hint))
    if out:
        return out
    try:
        extra = cls.validate_params(params)
    except Exception as exc:
        return [(("strategy", "params"), f"{cls.__name__}.validate_params failed: {exc}", None)]
    for field, message in extra or []:
        out.append((("strategy", "params", *str(field).split(".")), message, None))
    return out


def apply_defaults(schema: dict, params: dict) -> dict:
    """``params`` with the schema's top-level property defaults filled in."""
    out = dict(params)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = prop["default"]
    return out
