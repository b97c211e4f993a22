"""Turning jsonschema's errors into messages for people, with hints.

Every message names what was wrong and what was found; the hint comes from
the schema property's ``description`` unless a better one is known (a
"did you mean" for a misspelt field or plugin). The texts are stable: the
bad-config tests assert them exactly.
"""

from __future__ import annotations

import difflib
from typing import Any

from jsonschema.exceptions import ValidationError

from roboframe.builtin.feeds.timeparse import ZONE_PATTERN
from roboframe.config.schema import (
    ADDRESS_PATTERN,
    DATE_PATTERN,
    DAY_STARTS_PATTERN,
    DECIMAL_PATTERN,
    DURATION_PATTERN,
)

Problem = tuple[tuple, str, str | None]  # (field path, message, hint)

PLUGIN_SECTIONS = ("feed", "gateway", "strategy")
STRATEGY_CLASS_HINT = "or name a class as package.module:Class"

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}

_PATTERN_WANTS = {
    DECIMAL_PATTERN: "a number",
    DURATION_PATTERN: "a duration such as 500ms, 1s, 2m, 1h or a number of milliseconds",
    ADDRESS_PATTERN: "a ZeroMQ address inproc://..., ipc://... or tcp://HOST:PORT",
    DAY_STARTS_PATTERN: 'a time and a zone such as "19:00 MSK", "00:00 UTC" or "17:00 -05:00"',
    DATE_PATTERN: 'a date YYYY-MM-DD such as "2027-01-01"',
    ZONE_PATTERN: "a zone: UTC, MSK or an offset such as +03:00",
}


def type_name(value: Any) -> str:
    """The YAML-level name of a value's type, as people write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def show(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """``did you mean 'x'?`` for the closest choice, or None."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def unknown_plugin(section: str, name: str, known: list[str]) -> Problem:
    """The problem of a ``plugin`` naming nothing registered."""
    hint = did_you_mean(name, known)
    if hint is None:
        hint = f"registered: {', '.join(sorted(known)) or 'none'}"
        if section == "strategy":
            hint += f"; {STRATEGY_CLASS_HINT}"
    return (section, "plugin"), f"unknown {section} {name!r}", hint


def _wanted(names: list[str]) -> str:
    words = [_TYPE_NAMES.get(n, n) for n in names]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _plugin_names(error: ValidationError) -> list[str]:
    if error.validator == "enum":
        return list(error.validator_value)
    for branch in error.validator_value:
        if isinstance(branch, dict) and "enum" in branch:
            return list(branch["enum"])
    return []


def describe(error: ValidationError) -> list[Problem]:
    """The problems one schema error stands for (one per unknown field)."""
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_fields(path, error.instance, schema)
    if "propertyNames" in error.relative_schema_path:
        return [((*path, error.instance), f"invalid name {show(error.instance)}", _hint(schema))]
    if kind in ("enum", "anyOf") and path[1:] == ("plugin",) and path[0] in PLUGIN_SECTIONS:
        if not isinstance(error.instance, str):
            return []  # the type error says it
        return [unknown_plugin(path[0], error.instance, _plugin_names(error))]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        sub = (schema.get("properties") or {}).get(missing, {})
        return [(path, f"missing required field {missing!r}", _hint(sub))]
    hint = _hint(schema)
    if kind == "enum" and isinstance(error.instance, str):  # a misspelt choice
        hint = did_you_mean(error.instance, [str(v) for v in error.validator_value]) or hint
    return [(path, _message(error, schema), hint)]


def _hint(schema: Any) -> str | None:
    return schema.get("description") if isinstance(schema, dict) else None


def _unknown_fields(path: tuple, value: dict, schema: dict) -> list[Problem]:
    allowed = sorted((schema.get("properties") or {}).keys())
    out = []
    for key in value:
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed) or (
            f"allowed fields: {', '.join(allowed)}" if allowed else "no fields are allowed here"
        )
        out.append(((*path, key), f"unknown field {key!r}", hint))
    return out


def _message(error: ValidationError, schema: dict) -> str:
    """The message of one error at one field, without the field."""
    kind, value, limit = error.validator, error.instance, error.validator_value
    got = show(value)
    if kind == "type":
        names = [limit] if isinstance(limit, str) else list(limit)
        wanted = _PATTERN_WANTS.get(schema.get("pattern", ""), _wanted(names))
        if "integer" in names and isinstance(value, float) and value.is_integer():
            return f"expected {wanted}, got {got}: write {int(value)}, without the decimal point"
        return f"expected {wanted}, got {got} ({type_name(value)})"
    if kind == "pattern":
        wanted = _PATTERN_WANTS.get(limit)
        return f"expected {wanted}, got {got}" if wanted else f"invalid value {got}"
    simple = {
        "minimum": f"must be >= {limit}, got {got}",
        "exclusiveMinimum": f"must be > {limit}, got {got}",
        "maximum": f"must be <= {limit}, got {got}",
        "exclusiveMaximum": f"must be < {limit}, got {got}",
        "const": f"must be {limit!r}, got {got}",
        "minProperties": "must not be empty",
        "minItems": "must not be empty" if limit == 1 else f"must have at least {limit} items",
        "minLength": "must not be empty" if limit == 1 else f"must be at least {limit} characters",
        "maxLength": f"is too long (at most {limit} characters)",
        "maxItems": f"has too many items (at most {limit})",
        "maxProperties": f"has too many fields (at most {limit})",
        "uniqueItems": "has duplicate items",
        "multipleOf": f"must be a multiple of {limit}, got {got}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        options = ", ".join(str(v) for v in limit)
        return f"must be one of: {options}; got {got}"
    return error.message
