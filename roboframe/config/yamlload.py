"""YAML loading that remembers where every value came from.

:func:`load_yaml` returns plain data (dicts, lists, scalars) and a map from
each field path -- a tuple of keys and list indices -- to its 1-based line,
so every later error can name the line. Duplicate keys, which plain PyYAML
silently resolves to the last one, are errors here.

Only JSON-able data comes out: mapping keys are always strings (a key such
as ``ON`` or ``1.0`` keeps its text as written, not YAML 1.1's ``True`` or
``1.0``), and an unquoted timestamp stays the text it was written as. Merge
keys (``<<: *defaults``) work; a key written after a merge overrides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from roboframe.errors import ConfigError, ConfigProblem

Lines = dict[tuple, int]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "merge")
)
TAG_HINT = "only plain data is allowed: no tags such as !!python/..."
EMPTY_HINT = "a robot file is a YAML mapping; see robots/si.yaml for an example"


def _problem(path: str, line: int | None, message: str, hint: str | None = None) -> ConfigError:
    return ConfigError([ConfigProblem(path, line, "", message, hint)])


def read_text(path: Path) -> str:
    """The file's text, or a :class:`ConfigError` saying why it cannot be read."""
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


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Any, Lines]:
    """Parse ``path`` (or ``text``, shown as ``path``); return ``(data, lines)``."""
    path = Path(path)
    shown = str(path)
    if text is None:
        text = read_text(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _problem(shown, None, "empty file", EMPTY_HINT)
        lines: Lines = {(): node.start_mark.line + 1}
        data = _build(node, (), lines, loader, shown)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(shown, exc, text) from None
    except yaml.YAMLError as exc:
        raise _problem(shown, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def raw_mapping(path: str | Path) -> dict | None:
    """The top-level mapping of a YAML file, not validated; None when the file
    cannot be read or parsed or holds no mapping. For the few fields a command
    needs from a robot file that does not validate -- its trader is editing it
    -- when the file as a whole is refused."""
    try:
        data, _ = load_yaml(path)
    except (OSError, ConfigError):
        return None
    return data if isinstance(data, dict) else None


def _syntax_error(shown: str, exc: yaml.MarkedYAMLError, text: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = exc.problem or "syntax error"
    if exc.context and problem.startswith("but "):
        message = f"{exc.context}, {problem}"  # "expected a single document ..., but found ..."
    else:
        message = f"{problem} {exc.context}" if exc.context else problem
    rows = text.splitlines()
    row = rows[mark.line] if mark and mark.line < len(rows) else ""
    if "\t" in row or "'\\t'" in problem:
        hint = "YAML does not allow tabs for indentation; use spaces"
    elif isinstance(exc, yaml.constructor.ConstructorError):
        hint = TAG_HINT
    elif "single document" in message:
        hint = "a robot file is one YAML document; remove the '---' separator"
    else:
        hint = "check indentation and that every 'key: value' has a space after the colon"
    return _problem(shown, line, f"invalid YAML: {message}", hint)


def _build(node: yaml.Node, path: tuple, lines: Lines, loader: yaml.SafeLoader, shown: str):
    if node.tag not in _PLAIN_TAGS:
        line = node.start_mark.line + 1
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _problem(shown, line, f"invalid YAML: unsupported tag {tag!r}", TAG_HINT)
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, lines, loader, shown)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), lines, loader, shown))
        return items
    if node.tag == _TIMESTAMP:
        return node.value  # the text as written: JSON-able, and the feed parses it
    return loader.construct_object(node, deep=True)


def _build_mapping(
    node: yaml.MappingNode, path: tuple, lines: Lines, loader: yaml.SafeLoader, shown: str
) -> dict:
    explicit = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
    loader.flatten_mapping(node)  # merged entries come first, then the explicit ones
    first_explicit = len(node.value) - explicit
    out: dict = {}
    explicit_keys: set[str] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = _key(key_node, loader, shown)
        line = key_node.start_mark.line + 1
        if index >= first_explicit:
            if key in explicit_keys:
                first = lines[(*path, key)]
                raise _problem(
                    shown,
                    line,
                    f"duplicate key {key!r} (first defined on line {first})",
                    "each key may appear once in a mapping",
                )
            explicit_keys.add(key)
        lines[(*path, key)] = line
        out[key] = _build(value_node, (*path, key), lines, loader, shown)
    return out


def _key(key_node: yaml.Node, loader: yaml.SafeLoader, shown: str) -> str:
    """A mapping key as a string: a scalar's text as written when it is not a string."""
    if not isinstance(key_node, yaml.ScalarNode):
        kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
        raise _problem(
            shown,
            key_node.start_mark.line + 1,
            f"a key must be a plain name, not a {kind}",
            "write 'name: value'; quote names that contain ':', '[' or '{'",
        )
    if key_node.tag == _STR:
        return loader.construct_object(key_node)
    return key_node.value


def line_of(lines: Lines, path: tuple) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def render_path(path: tuple) -> str:
    """``("risk", "allowed_symbols", 1)`` -> ``risk.allowed_symbols[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
