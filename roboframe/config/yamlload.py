"""YAML loading that remembers where every value came from.

:func:`load_yaml` returns plain data (dicts, lists, scalars) and a map from
each field path -- a tuple of keys and list indices -- to its 1-based line,
so every later error can name the line. Duplicate keys, which plain PyYAML
silently resolves to the last one, are errors here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from roboframe.errors import ConfigError, ConfigProblem

Lines = dict[tuple, int]


def _problem(path: str, line: int | None, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError([ConfigProblem(path, line, "", message, hint)])


def read_text(path: Path) -> str:
    shown = str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _problem(shown, None, "no such file") from None
    except IsADirectoryError:
        raise _problem(shown, None, "is a directory, not a robot file") from None
    except UnicodeDecodeError as exc:
        raise _problem(shown, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise _problem(shown, None, f"cannot read: {exc.strerror}") from None


def load_yaml(path: Path, text: str | None = None) -> tuple[Any, Lines]:
    """Parse ``path`` (or ``text``); return ``(data, lines)``."""
    shown = str(path)
    if text is None:
        text = read_text(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _problem(
                shown,
                None,
                "empty file",
                "a robot file is a YAML mapping; see robots/si.yaml for an example",
            )
        lines: Lines = {(): node.start_mark.line + 1}
        data = _build(node, (), lines, loader, shown)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(shown, exc, text) from None
    except yaml.YAMLError as exc:
        raise _problem(shown, None, f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def _syntax_error(shown: str, exc: yaml.MarkedYAMLError, text: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = exc.problem or "syntax error"
    hint = "check indentation and that every 'key: value' has a space after the colon"
    rows = text.splitlines()
    row = rows[mark.line] if mark and mark.line < len(rows) else ""
    if "\t" in row or "'\\t'" in problem:
        hint = "YAML does not allow tabs for indentation; use spaces"
    context = f" {exc.context}" if exc.context else ""
    return _problem(shown, line, f"invalid YAML: {problem}{context}", hint)


def _build(node: yaml.Node, path: tuple, lines: Lines, loader: yaml.SafeLoader, shown: str):
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise _problem(
                    shown, key_node.start_mark.line + 1, f"unsupported mapping key {key!r}"
                )
            if isinstance(key, (int, float, bool)) or key is None:
                key = str(key) if key is not None else "null"
            if key in out:
                first = lines[(*path, key)]
                raise _problem(
                    shown,
                    key_node.start_mark.line + 1,
                    f"duplicate key {key!r} (first defined on line {first})",
                    "each key may appear once in a mapping",
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines, loader, shown)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), lines, loader, shown))
        return items
    return loader.construct_object(node, deep=True)


def line_of(lines: Lines, path: tuple) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def render_path(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
