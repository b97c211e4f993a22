"""The plugin manager and registry: built-ins, duplicates, bad registrations."""

from __future__ import annotations

import types

import pytest

from roboframe import Strategy, hookimpl
from roboframe.errors import PluginError
from roboframe.plugins import (
    BUILTIN_PLUGINS,
    build_plugin_manager,
    build_registry,
    resolve_strategy,
)


def plugin(name: str, **hooks) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__=name)
    for hook, fn in hooks.items():
        setattr(ns, hook, hookimpl(fn))
    return ns


class Dummy(Strategy):
    pass


def test_builtins_register_like_any_plugin():
    reg = build_registry(build_plugin_manager(entry_points=False))
    assert set(reg.feeds) >= {"synthetic", "csv", "zmq"}
    assert set(reg.gateways) >= {"paper"}
    assert set(reg.strategies) >= {"sma-crossover", "breakout"}
    assert reg.strategies["sma-crossover"].plugin == "roboframe.builtin.strategies"
    assert set(reg.plugins) >= set(BUILTIN_PLUGINS)


def test_duplicate_name_names_both_plugins():
    def reg_sma(register):
        register("sma-crossover", Dummy)

    pm = build_plugin_manager(
        entry_points=False, extra=[plugin("copycat", roboframe_register_strategies=reg_sma)]
    )
    with pytest.raises(PluginError) as err:
        build_registry(pm)
    assert str(err.value) == (
        "strategy 'sma-crossover' is registered twice: by plugin "
        "'roboframe.builtin.strategies' and by plugin 'copycat'"
    )


def test_registering_a_non_strategy_fails():
    def bad(register):
        register("nope", object)

    pm = build_plugin_manager(
        entry_points=False, extra=[plugin("sloppy", roboframe_register_strategies=bad)]
    )
    with pytest.raises(PluginError, match="plugin 'sloppy' registered strategy 'nope'"):
        build_registry(pm)


def test_hook_raising_is_reported_with_plugin_name():
    def boom(register):
        raise KeyError("x")

    pm = build_plugin_manager(
        entry_points=False, extra=[plugin("explosive", roboframe_register_feeds=boom)]
    )
    with pytest.raises(PluginError, match="plugin 'explosive' failed in roboframe_register_feeds"):
        build_registry(pm)


def test_unknown_hook_fails_loudly():
    with pytest.raises(PluginError, match="plugin 'typo'"):
        build_plugin_manager(
            entry_points=False, extra=[plugin("typo", roboframe_register_strategys=lambda r: 0)]
        )


def test_resolve_strategy_by_import_path():
    cls, origin = resolve_strategy("roboframe.builtin.strategies.sma:SmaCrossover")
    assert cls.__name__ == "SmaCrossover" and origin.endswith(":SmaCrossover")
    with pytest.raises(PluginError, match="cannot import module 'no_such_mod'"):
        resolve_strategy("no_such_mod:X")
    with pytest.raises(PluginError, match="has no 'Nope'"):
        resolve_strategy("roboframe.builtin.strategies.sma:Nope")
    with pytest.raises(PluginError, match=r"not a subclass of roboframe\.Strategy"):
        resolve_strategy("roboframe.core.kernel:Kernel")


def test_building_the_registry_imports_no_store_driver_and_no_analyzer():
    """Every command builds the registry: a store's driver (psycopg, pymongo) or the
    analyzer imported there made ``roboframe --help``, ``ctl`` and paper robots start
    in a second instead of under half of one. Stores are opened through functions
    that import them; opening one still works (the store tests do)."""
    import subprocess
    import sys

    code = (
        "import sys; from roboframe.plugins import get_registry; r = get_registry(); "
        "assert {'postgresql', 'mongodb'} <= set(r.stores), r.stores; "
        "heavy = ('psycopg', 'pymongo', 'roboframe.analyze', 'roboframe_postgres.store', "
        "'roboframe_mongo.store'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_with_a_broken_record_a_failing_plugin_is_left_out_whole():
    """The process-wide registry keeps a ``broken`` record: a plugin whose hook
    raises, registers something unusable (a params_schema that is no schema) or
    implements an unknown hook is left out -- what it registered before failing
    too, and its lifecycle hooks -- while the others are all there."""

    class BadSchema(Strategy):
        params_schema = {"type": "objekt"}

    def half_then_boom(register):
        register("first-half", Dummy)
        raise KeyError("x")

    def starts(robot, run_id, journal_path):
        raise AssertionError("a left-out plugin's hook must not run")

    broken: dict[str, str] = {}
    pm = build_plugin_manager(
        entry_points=False,
        broken=broken,
        extra=[
            plugin(
                "explosive",
                roboframe_register_strategies=half_then_boom,
                roboframe_robot_start=starts,
            ),
            plugin(
                "badschema",
                roboframe_register_strategies=lambda register: register("bad", BadSchema),
            ),
            plugin("typo", roboframe_register_strategys=lambda register: None),
            plugin("fine", roboframe_register_strategies=lambda register: register("ok", Dummy)),
        ],
    )
    reg = build_registry(pm)
    assert sorted(reg.broken) == ["badschema", "explosive", "typo"]
    assert "failed in roboframe_register_strategies: KeyError" in reg.broken["explosive"]
    assert "invalid params_schema" in reg.broken["badschema"]
    assert "roboframe_register_strategys" in reg.broken["typo"]
    assert "ok" in reg.strategies and "sma-crossover" in reg.strategies
    assert not {"first-half", "bad"} & set(reg.strategies)
    assert not {"explosive", "badschema", "typo"} & set(reg.plugins)
    pm.hook.roboframe_robot_start(robot=None, run_id="r", journal_path="j")
    with pytest.raises(PluginError) as info:
        reg.lookup("strategies", "first-half")
    assert "plugin(s) 'badschema', 'explosive', 'typo' failed to load" in str(info.value)


def test_without_a_broken_record_a_bad_params_schema_fails_at_registration():
    class BadSchema(Strategy):
        params_schema = {"type": "objekt"}

    pm = build_plugin_manager(
        entry_points=False,
        extra=[
            plugin(
                "acme", roboframe_register_strategies=lambda register: register("bad", BadSchema)
            )
        ],
    )
    with pytest.raises(PluginError, match="strategy 'bad' of plugin 'acme' has an invalid"):
        build_registry(pm)


def test_with_a_broken_record_a_name_two_plugins_register_is_neither_s():
    def acme(register):
        register("meanrev", Dummy)

    def other(register):
        register("meanrev", Dummy)
        register("momentum", Dummy)

    pm = build_plugin_manager(
        entry_points=False,
        broken={},
        extra=[
            plugin("acme", roboframe_register_strategies=acme),
            plugin("other", roboframe_register_strategies=other),
        ],
    )
    reg = build_registry(pm)
    assert sorted(reg.broken) == ["acme", "other"]
    assert "'meanrev' is registered twice" in reg.broken["acme"]
    assert not {"meanrev", "momentum"} & set(reg.strategies)


def test_a_third_party_plugin_taking_a_built_in_name_is_left_out_alone():
    """It raised, taking every command down (what leaving broken plugins out is
    for); and against a first-party plugin both were left out."""

    def taker(register):
        register("sma-crossover", Dummy)
        register("own-name", Dummy)

    pm = build_plugin_manager(
        entry_points=False, broken={}, extra=[plugin("taker", roboframe_register_strategies=taker)]
    )
    reg = build_registry(pm)
    assert list(reg.broken) == ["taker"]
    assert "'sma-crossover' is registered twice" in reg.broken["taker"]
    assert reg.strategies["sma-crossover"].plugin == "roboframe.builtin.strategies"
    assert "own-name" not in reg.strategies


def test_call_each_names_each_plugins_hook_and_keeps_wrappers_whole():
    """Each hook called on its own, so an error names its plugin; a wrapper hook
    (which wraps the others) was skipped when its function was called alone."""
    import pluggy

    from roboframe import hookspecs
    from roboframe.plugins import call_each

    mark = pluggy.HookimplMarker("roboframe")
    seen = []

    class Plain:
        @mark
        def roboframe_robot_stop(self, robot, summary):
            seen.append(("plain", robot, summary))

    class Wrapper:
        @mark(hookwrapper=True)
        def roboframe_robot_stop(self, robot):
            seen.append("before")
            yield
            seen.append("after")

    pm = pluggy.PluginManager("roboframe")
    pm.add_hookspecs(hookspecs)
    pm.register(Plain(), "plain")
    calls = list(call_each(pm, "roboframe_robot_stop", robot="r", run_id="1", summary={}))
    assert [name for name, _ in calls] == ["plain"]
    calls[0][1]()
    assert seen == [("plain", "r", {})]
    seen.clear()
    pm.register(Wrapper(), "wrap")
    ((names, call),) = call_each(pm, "roboframe_robot_stop", robot="r", run_id="1", summary={})
    call()
    assert names == "plain, wrap" and seen == ["before", ("plain", "r", {}), "after"]
