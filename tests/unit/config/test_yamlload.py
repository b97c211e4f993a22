"""YAML loading: plain data, a line for every field, clear errors."""

from __future__ import annotations

import os

import pytest

from roboframe.config.yamlload import line_of, load_yaml, render_path
from roboframe.errors import ConfigError


def test_lines_of_keys_items_and_nested_fields(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("# a comment\na:\n  b:\n    - x\n    - {c: 1}\nd: 2\n")
    data, lines = load_yaml(path)
    assert data == {"a": {"b": ["x", {"c": 1}]}, "d": 2}
    assert lines == {
        (): 2,
        ("a",): 2,
        ("a", "b"): 3,
        ("a", "b", 0): 4,
        ("a", "b", 1): 5,
        ("a", "b", 1, "c"): 5,
        ("d",): 6,
    }


def test_line_of_falls_back_to_the_nearest_ancestor():
    lines = {(): 1, ("risk",): 7, ("risk", "max_position"): 8}
    assert line_of(lines, ("risk", "max_position", "Si")) == 8
    assert line_of(lines, ("risk", "nope")) == 7
    assert line_of(lines, ("other",)) == 1
    assert line_of({}, ("x",)) is None


def test_render_path():
    assert render_path(("risk", "allowed_symbols", 1)) == "risk.allowed_symbols[1]"
    assert render_path(("symbols", "Si-12.26", "tick_size")) == "symbols.Si-12.26.tick_size"
    assert render_path(()) == ""


def test_keys_are_text_as_written_and_timestamps_stay_text():
    data, _ = load_yaml(
        "r.yaml", "ON: 1\n1.0: 2\n3: x\nts: 2026-12-01T07:00:00Z\nday: 2026-12-01\n"
    )
    assert data == {
        "ON": 1,
        "1.0": 2,
        "3": "x",
        "ts": "2026-12-01T07:00:00Z",
        "day": "2026-12-01",
    }


def test_scalars_keep_their_yaml_types():
    data, _ = load_yaml("r.yaml", "i: 5\nf: 1.3\nb: true\nn: null\ns: '5'\nu: 100_000\n")
    assert data == {"i": 5, "f": 1.3, "b": True, "n": None, "s": "5", "u": 100000}


def test_merge_keys_and_overriding_a_merged_key():
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"
    data, lines = load_yaml("r.yaml", text)
    assert data["m"] == {"x": 1, "y": 3}
    assert lines[("m", "y")] == 4


def test_duplicate_key_names_both_lines():
    with pytest.raises(ConfigError) as info:
        load_yaml("r.yaml", "a:\n  x: 1\n  y: 2\n  x: 3\n")
    assert str(info.value) == (
        "r.yaml:4: duplicate key 'x' (first defined on line 2)\n"
        "  hint: each key may appear once in a mapping"
    )


def test_duplicate_after_a_merge_is_still_a_duplicate():
    with pytest.raises(
        ConfigError, match=r"r.yaml:5: duplicate key 'y' \(first defined on line 4\)"
    ):
        load_yaml("r.yaml", "base: &b {x: 1}\nm:\n  <<: *b\n  y: 3\n  y: 4\n")


def test_a_list_as_a_key_is_refused():
    with pytest.raises(ConfigError) as info:
        load_yaml("r.yaml", "? [a, b]\n: 1\n")
    assert str(info.value) == (
        "r.yaml:1: a key must be a plain name, not a list\n"
        "  hint: write 'name: value'; quote names that contain ':', '[' or '{'"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!binary aGVsbG8=\n", "r.yaml:1: invalid YAML: unsupported tag '!!binary'"),
        ("a: !!set {x, y}\n", "r.yaml:1: invalid YAML: unsupported tag '!!set'"),
        ("a: !env HOME\n", "r.yaml:1: invalid YAML: unsupported tag '!env'"),
    ],
)
def test_tags_are_refused(text, expected):
    with pytest.raises(ConfigError) as info:
        load_yaml("r.yaml", text)
    assert str(info.value) == (
        f"{expected}\n  hint: only plain data is allowed: no tags such as !!python/..."
    )


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_yaml(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a robot file"


def test_not_utf8(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: not UTF-8 text (invalid start byte)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: cannot read: Permission denied"
