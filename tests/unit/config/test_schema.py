"""The assembled JSON Schema: core sections, plugin params, plugin sections."""

from __future__ import annotations

import json

import pytest
import yaml
from jsonschema import Draft202012Validator

from roboframe.config import build_schema
from roboframe.config.schema import CLASS_PATTERN, core_schema
from roboframe.core.feed import Feed
from roboframe.errors import ConfigError, PluginError
from roboframe.plugins import Registered, Registry
from tests.unit.config.conftest import MINIMAL, PaperGateway, TickFeed


def test_the_schema_is_valid_and_deterministic(registry):
    schema = build_schema(registry)
    Draft202012Validator.check_schema(schema)
    assert json.dumps(schema, sort_keys=True) == json.dumps(build_schema(registry), sort_keys=True)


def test_plugin_names_are_constrained(registry):
    props = build_schema(registry)["properties"]
    assert props["feed"]["properties"]["plugin"]["enum"] == ["file", "ticks"]
    assert props["gateway"]["properties"]["plugin"]["enum"] == ["paper"]
    assert props["strategy"]["properties"]["plugin"]["anyOf"] == [
        {"enum": ["crossover", "momentum"]},
        {"pattern": CLASS_PATTERN},
    ]


def test_open_names_only_offer_the_plugins(registry):
    props = build_schema(registry, open_names=True)["properties"]
    for section in ("feed", "gateway", "strategy"):
        plugin = props[section]["properties"]["plugin"]
        assert "enum" not in plugin and "anyOf" not in plugin
    assert props["feed"]["properties"]["plugin"]["examples"] == ["file", "ticks"]
    # a third-party plugin name passes the published schema (the loader checks it)
    doc = {**yaml.safe_load(MINIMAL), "feed": {"plugin": "acme-feed"}}
    open_errors = Draft202012Validator(build_schema(registry, open_names=True)).iter_errors(doc)
    assert not [e for e in open_errors if tuple(e.absolute_path) == ("feed", "plugin")]
    closed_errors = Draft202012Validator(build_schema(registry)).iter_errors(doc)
    assert [e for e in closed_errors if tuple(e.absolute_path) == ("feed", "plugin")]


def test_params_schema_applies_when_plugin_names_it(registry):
    rules = build_schema(registry)["properties"]["feed"]["allOf"]
    assert [rule["if"]["properties"]["plugin"]["const"] for rule in rules] == ["file", "ticks"]
    assert rules[1]["then"]["properties"]["params"] == TickFeed.params_schema


def test_plugin_sections_are_added_but_cannot_replace_core_ones(registry):
    registry.schema_fragments["journal"] = Registered("schema_fragments", "journal", {}, "evil")
    props = build_schema(registry)["properties"]
    assert props["alerts"]["description"] == "where to send alerts"
    assert props["journal"] == core_schema()["properties"]["journal"]


def test_every_core_property_has_a_description_and_closed_sections(registry):
    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} is open"
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{'.'.join((*path, name))} has no description"
            if name != "params":
                walk(prop, (*path, name))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, (*path, "*"))

    walk(core_schema(), ())


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("my_pkg.strategies:Trend", True),
        ("mod:Outer.Inner", True),
        ("mod:", False),
        ("mod: Trend", False),
        ("1mod:Trend", False),
    ],
)
def test_class_pattern(name, ok):
    assert Draft202012Validator({"pattern": CLASS_PATTERN}).is_valid(name) is ok


def test_a_broken_params_schema_names_its_plugin(registry):
    class Broken(Feed):
        params_schema = {"type": "objekt"}

    registry.feeds["broken"] = Registered("feeds", "broken", Broken, "acme-feeds")
    with pytest.raises(PluginError) as info:
        build_schema(registry)
    assert str(info.value).startswith(
        "feed 'broken' of plugin 'acme-feeds' has an invalid params_schema: "
    )


def test_with_nothing_registered_the_checks_report_unknown_plugins(write_robot, tmp_path):
    from roboframe.config import load_robot

    empty = Registry(gateways={"paper": Registered("gateways", "paper", PaperGateway, "t")})
    with pytest.raises(ConfigError) as info:
        load_robot(write_robot(MINIMAL), registry=empty)
    assert str(info.value) == (
        f"{tmp_path}/robot.yaml:4: feed.plugin: unknown feed 'ticks'\n"
        "  hint: registered: none\n"
        f"{tmp_path}/robot.yaml:5: strategy.plugin: unknown strategy 'crossover'\n"
        "  hint: registered: none; or name a class as package.module:Class"
    )
