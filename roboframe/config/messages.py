"""Turning jsonschema's errors into messages for people, with hints."""

from __future__ import annotations

import difflib
from typing import Any

from jsonschema.exceptions import ValidationError

_TYPE_NAMES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


def type_name(value: Any) -> str:
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


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def describe(error: ValidationError) -> tuple[tuple, str, str | None]:
    """``(field path, message, hint)`` for one schema error."""
    path = tuple(error.absolute_path)
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("description")
    kind = error.validator
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted((schema.get("properties") or {}).keys())
        extra = sorted(k for k in value if k not in allowed)
        key = extra[0] if extra else "?"
        hint = did_you_mean(key, allowed) or (
            f"allowed fields: {', '.join(allowed)}" if allowed else None
        )
        return (*path, key), f"unknown field {key!r}", hint
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        sub = (schema.get("properties") or {}).get(missing, {})
        return path, f"missing required field {missing!r}", sub.get("description")
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        return path, f"expected {wanted}, got {value!r} ({type_name(value)})", hint
    if kind == "minimum":
        return path, f"must be >= {error.validator_value}, got {value!r}", hint
    if kind == "exclusiveMinimum":
        return path, f"must be > {error.validator_value}, got {value!r}", hint
    if kind == "maximum":
        return path, f"must be <= {error.validator_value}, got {value!r}", hint
    if kind == "exclusiveMaximum":
        return path, f"must be < {error.validator_value}, got {value!r}", hint
    if kind == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        return path, f"must be one of: {options}; got {value!r}", hint
    if kind == "const":
        return path, f"must be {error.validator_value!r}, got {value!r}", hint
    if kind == "pattern":
        return path, f"invalid value {value!r}", hint
    if kind in ("minProperties", "minItems", "minLength"):
        return path, "must not be empty", hint
    if kind in ("maxLength", "maxItems", "maxProperties"):
        return path, f"is too long (at most {error.validator_value})", hint
    if kind == "uniqueItems":
        return path, "has duplicate items", hint
    if kind == "propertyNames":
        return path, f"invalid name {value!r}", hint
    return path, error.message, hint
