"""Every hook is documented, in hookspecs.py and in the plugin guide."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from roboframe import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("roboframe_") and callable(f))


def test_there_are_hooks():
    assert "roboframe_register_feeds" in HOOKS and len(HOOKS) >= 6


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 40, f"{name} needs a docstring saying when it is called and what it returns"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_in_plugin_guide(name):
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert f"`{name}(" in guide, f"docs/plugins.md does not document {name}"
