"""The plugin manager and the registry of feeds, gateways and strategies.

Nothing happens at import time. :func:`get_plugin_manager` builds the
manager once, registers the built-in plugins with the same call a
third-party plugin gets, then loads the ``roboframe`` entry-point group.
:func:`get_registry` calls the registration hooks once and keeps what they
registered, with the name of the plugin that registered each thing.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from roboframe import hookspecs
from roboframe.errors import PluginError

log = logging.getLogger(__name__)

PROJECT = "roboframe"
ENTRY_POINT_GROUP = "roboframe"

hookimpl = pluggy.HookimplMarker(PROJECT)

BUILTIN_PLUGINS: tuple[str, ...] = (
    "roboframe.builtin.analysis",
    "roboframe.builtin.feeds",
    "roboframe.builtin.gateways",
    "roboframe.builtin.risk",
    "roboframe.builtin.strategies",
)

KINDS = ("feeds", "gateways", "strategies")
FIRST_PARTY = ("roboframe_postgres", "roboframe_mongo")
"""Plugins that live in this repository under plugins/, packaged like third-party ones."""
SINGULAR = {
    "feeds": "feed",
    "gateways": "gateway",
    "strategies": "strategy",
    "risk_checks": "risk check",
    "commands": "command",
    "stores": "order store",
    "schema_fragments": "config section",
    "analysis_stores": "analysis database",
    "statistics": "statistic",
    "report_sections": "report section",
}


@dataclass(frozen=True)
class Registered:
    """One registered feed, gateway or strategy and the plugin that gave it."""

    kind: str
    name: str
    obj: Any
    plugin: str


@dataclass
class Registry:
    feeds: dict[str, Registered] = field(default_factory=dict)
    gateways: dict[str, Registered] = field(default_factory=dict)
    strategies: dict[str, Registered] = field(default_factory=dict)
    risk_checks: dict[str, Registered] = field(default_factory=dict)
    commands: dict[str, Registered] = field(default_factory=dict)
    stores: dict[str, Registered] = field(default_factory=dict)
    schema_fragments: dict[str, Registered] = field(default_factory=dict)
    analysis_stores: dict[str, Registered] = field(default_factory=dict)
    statistics: dict[str, Registered] = field(default_factory=dict)
    report_sections: dict[str, Registered] = field(default_factory=dict)
    plugins: dict[str, dict] = field(default_factory=dict)
    # plugins left out because they failed to load or register: name -> why
    broken: dict[str, str] = field(default_factory=dict)

    def lookup(self, kind: str, name: str) -> Registered:
        table: dict[str, Registered] = getattr(self, kind)
        try:
            return table[name]
        except KeyError:
            known = ", ".join(sorted(table)) or "none"
            note = self.broken_note()
            raise PluginError(
                f"unknown {SINGULAR[kind]} {name!r}; registered: {known}"
                + (f"\n  hint: {note}" if note else "")
            ) from None

    def broken_note(self) -> str:
        """Names the plugins that failed, one of which may have had an unknown name."""
        if not self.broken:
            return ""
        names = ", ".join(repr(n) for n in sorted(self.broken))
        return f"plugin(s) {names} failed to load ('roboframe plugins' says why)"

    def drop(self, plugin_name: str, why: str) -> None:
        """Leave a failing plugin out: forget all it registered; ``why`` is kept."""
        for table in vars(self).values():  # every kind's table; plugins and broken too
            left = [n for n, r in table.items() if isinstance(r, Registered)
                    and r.plugin == plugin_name]  # fmt: skip
            for name in left:
                del table[name]
        self.plugins.pop(plugin_name, None)
        self.broken[plugin_name] = why


_pm: pluggy.PluginManager | None = None
_registry: Registry | None = None


def _plugin_version(dist: importlib.metadata.Distribution | None) -> str:
    if dist is None:
        try:
            return importlib.metadata.version(PROJECT)
        except importlib.metadata.PackageNotFoundError:
            return "dev"
    return dist.version


def build_plugin_manager(
    builtins: Iterable[str] = BUILTIN_PLUGINS,
    *,
    entry_points: bool = True,
    extra: Iterable[Any] = (),
    broken: dict[str, str] | None = None,
) -> pluggy.PluginManager:
    """A fresh manager: built-ins, then entry points, then ``extra`` objects.

    A plugin that cannot be imported, registers under a taken name or
    implements an unknown hook raises :class:`PluginError` naming it -- or,
    given a ``broken`` dict, is left out and recorded there (name -> why), so
    that one broken package does not take down the commands and robots that
    do not use it.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm._roboframe_info = {}  # type: ignore[attr-defined]

    def failed(name: str, error: PluginError) -> None:
        if broken is None:
            raise error
        broken[name] = str(error)

    for modname in builtins:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        pm._roboframe_info[modname] = {"version": _plugin_version(None), "source": "builtin"}
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not look like our bug
                error = PluginError(
                    f"plugin {ep.name!r} (entry point {ep.value!r}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                )
                error.__cause__ = exc
                failed(ep.name, error)
                continue
            try:
                pm.register(plugin, name=ep.name)
            except ValueError as exc:
                error = PluginError(f"plugin {ep.name!r} cannot be registered: {exc}")
                error.__cause__ = exc
                failed(ep.name, error)
                continue
            dist = getattr(ep, "dist", None)
            pm._roboframe_info[ep.name] = {
                "version": _plugin_version(dist),
                "source": f"entry point {ep.value}",
            }
    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        pm.register(obj, name=name)
        pm._roboframe_info[name] = {"version": "", "source": "registered in code"}
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            error = PluginError(f"plugin {name!r}: {exc}")
            error.__cause__ = exc
            failed(name, error)
            pm.unregister(exc.plugin)
    pm._roboframe_broken = broken  # type: ignore[attr-defined]
    return pm


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook, implementation by implementation.

    A plugin whose hook raises or registers something unusable raises
    :class:`PluginError` naming it -- or, when the manager keeps a ``broken``
    record (see :func:`build_plugin_manager`), is left out whole: what it
    registered is forgotten and its hooks unregistered.
    """
    broken = getattr(pm, "_roboframe_broken", None)
    reg = Registry(broken=broken if broken is not None else {})
    info = getattr(pm, "_roboframe_info", {})
    for plugin_name, _plugin in pm.list_name_plugin():
        reg.plugins[plugin_name] = {
            "name": plugin_name,
            "version": info.get(plugin_name, {}).get("version", ""),
            "source": info.get(plugin_name, {}).get("source", ""),
            "feeds": [],
            "gateways": [],
            "strategies": [],
            "risk_checks": [],
            "commands": [],
            "stores": [],
            "config_sections": [],
            "analysis_stores": [],
            "statistics": [],
            "report_sections": [],
        }
    hooks = (
        ("feeds", pm.hook.roboframe_register_feeds),
        ("gateways", pm.hook.roboframe_register_gateways),
        ("strategies", pm.hook.roboframe_register_strategies),
        ("risk_checks", pm.hook.roboframe_register_risk_checks),
        ("commands", pm.hook.roboframe_register_commands),
        ("stores", pm.hook.roboframe_register_stores),
        ("schema_fragments", pm.hook.roboframe_config_schema),
        ("analysis_stores", pm.hook.roboframe_register_analysis_stores),
        ("statistics", pm.hook.roboframe_register_statistics),
        ("report_sections", pm.hook.roboframe_register_report_sections),
    )
    for kind, hook in hooks:
        for impl in hook.get_hookimpls():  # registration order
            plugin_name = impl.plugin_name
            if plugin_name in reg.broken:
                continue
            impl_register = _make_register(reg, kind, plugin_name)
            try:
                impl.function(register=impl_register)
            except Exception as exc:
                error = exc if isinstance(exc, PluginError) else PluginError(
                    f"plugin {plugin_name!r} failed in {hook.name}: {type(exc).__name__}: {exc}"
                )  # fmt: skip
                # a name two third-party plugins register is neither's: a robot naming
                # it would run whichever registered first; against a built-in or
                # first-party one, the third-party plugin alone is left out
                culprits = [plugin_name, *([error.also] if hasattr(error, "also") else [])]
                ours = [name for name in culprits if _rank(pm, name) < 2]
                if broken is None or _rank(pm, plugin_name) == 0:
                    raise error from exc
                if ours and len(ours) < len(culprits):
                    culprits = [name for name in culprits if name not in ours]
                for name in culprits:
                    reg.drop(name, str(error))
                    if pm.get_plugin(name) is not None:
                        pm.unregister(name=name)
    return reg


def _rank(pm: pluggy.PluginManager, plugin_name: str) -> int:
    """0: built in; 1: first party (plugins/ in this repository); 2: third party."""
    if plugin_name in BUILTIN_PLUGINS:
        return 0
    module = getattr(pm.get_plugin(plugin_name), "__name__", "")
    return 1 if module in FIRST_PARTY else 2


def _make_register(reg: Registry, kind: str, plugin_name: str):
    table: dict[str, Registered] = getattr(reg, kind)
    listed = "config_sections" if kind == "schema_fragments" else kind

    def register(name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin_name!r} registered a {SINGULAR[kind]} with no name")
        if name in table:
            other = table[name].plugin
            error = PluginError(
                f"{SINGULAR[kind]} {name!r} is registered twice: "
                f"by plugin {other!r} and by plugin {plugin_name!r}"
            )
            error.also = other  # type: ignore[attr-defined]  # to leave out as well
            raise error
        _check_registered(kind, name, obj, plugin_name)
        table[name] = Registered(kind, name, obj, plugin_name)
        if plugin_name in reg.plugins:
            reg.plugins[plugin_name][listed].append(name)

    return register


def _check_registered(kind: str, name: str, obj: Any, plugin_name: str) -> None:
    from roboframe.core.feed import Feed
    from roboframe.core.gateway import Gateway
    from roboframe.core.riskcheck import RiskCheck
    from roboframe.core.strategy import Strategy

    bases = {"feeds": Feed, "gateways": Gateway, "strategies": Strategy, "risk_checks": RiskCheck}
    base = bases.get(kind)
    if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginError(
            f"plugin {plugin_name!r} registered {SINGULAR[kind]} {name!r} as {obj!r}, "
            f"which is not a subclass of roboframe.{base.__name__}"
        )
    if kind in ("statistics", "report_sections", "analysis_stores") and not callable(obj):
        raise PluginError(
            f"plugin {plugin_name!r} registered {SINGULAR[kind]} {name!r} as {obj!r}, "
            "which is not callable"
        )
    if kind == "commands":
        import click

        if not isinstance(obj, click.Command):
            raise PluginError(
                f"plugin {plugin_name!r} registered command {name!r} as {obj!r}, "
                "which is not a click.Command"
            )
    if kind == "schema_fragments" and not isinstance(obj, dict):
        raise PluginError(f"plugin {plugin_name!r}: schema for section {name!r} must be a dict")
    if base is not None:  # its params_schema must be a schema: checked now, blamed on it
        from roboframe.config.schema import checked_params_schema

        checked_params_schema(Registered(kind, name, obj, plugin_name))


def call_each(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
    """Call ``hook``'s implementations one by one, in pluggy's order, yielding
    ``(plugin name, call)`` for the caller to run each under its own name: an
    error then names the plugin whose hook raised, which pluggy's one call
    for all of them cannot."""
    caller = getattr(pm.hook, hook)
    impls = caller.get_hookimpls()
    if any(impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
        names = ", ".join(impl.plugin_name for impl in impls)  # a wrapper wraps them all
        yield names, functools.partial(caller, **kwargs)
        return
    for impl in reversed(impls):
        args = {name: kwargs[name] for name in impl.argnames}
        yield impl.plugin_name, functools.partial(impl.function, **args)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use. A plugin that fails to load
    is left out (see :func:`get_registry`)."""
    global _pm
    if _pm is None:
        _pm = build_plugin_manager(broken={})
    return _pm


def get_registry() -> Registry:
    """The process-wide registry, built on first use.

    A third-party plugin that fails to load or register is left out with a
    warning, and ``registry.broken`` says why: robots and commands that do not
    use it go on (``ctl ... flatten`` above all), and a robot file naming
    something it would have registered is refused with a hint naming it.
    """
    global _registry
    if _registry is None:
        _registry = build_registry(get_plugin_manager())
        for why in _registry.broken.values():
            log.warning("%s; left out: what it registers is unavailable", why)
    return _registry


def published_registry() -> Registry:
    """Built-ins plus the first-party plugins: what ``schemas/robot.schema.json`` covers."""
    modules = []
    for name in FIRST_PARTY:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise PluginError(f"first-party plugin {name} is not installed: {exc}") from exc
    return build_registry(build_plugin_manager(entry_points=False, extra=modules))


def reset() -> None:
    """Forget the process-wide manager and registry (tests, long sessions)."""
    global _pm, _registry
    _pm = None
    _registry = None


def resolve_strategy(
    name: str, registry: Registry | None = None, search: Sequence[Path] = ()
) -> tuple[type, str]:
    """A strategy class from a registered name or ``package.module:Class``.

    A module that is not installed is looked for in the ``search`` folders
    (the robot file's folder, then the current one), as Python finds a
    script's neighbours: the first folder holding it joins ``sys.path``.
    Returns the class and where it came from (plugin name or import path).
    """
    from roboframe.core.strategy import Strategy

    registry = registry or get_registry()
    if ":" not in name:
        found = registry.lookup("strategies", name)
        return found.obj, found.plugin
    modname, _, attr = name.partition(":")
    try:
        module = _import_near(modname, search)
    except ImportError as exc:
        raise PluginError(f"strategy {name!r}: cannot import module {modname!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise PluginError(f"strategy {name!r}: module {modname!r} has no {attr!r}")
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise PluginError(f"strategy {name!r} is not a subclass of roboframe.Strategy")
    return obj, name


def _import_near(modname: str, search: Sequence[Path]) -> Any:
    """``import modname``, from a ``search`` folder when it is not importable as is."""
    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        top = modname.partition(".")[0]
        if exc.name != top or not search:
            raise  # the module is there and something it imports is missing, or no folders
        for folder in search:
            folder = Path(folder).resolve()
            if (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file():
                if str(folder) not in sys.path:
                    sys.path.insert(0, str(folder))
                importlib.invalidate_caches()
                return importlib.import_module(modname)
        looked = ", ".join(str(Path(f).resolve()) for f in search)
        raise ModuleNotFoundError(
            f"{exc}; not installed, and no {top}.py in {looked}", name=exc.name
        ) from None


def strategy_search(source: str | None) -> tuple[Path, ...]:
    """Where a strategy module that is not installed is looked for: the robot
    file's folder, then the current folder."""
    folders = [Path(source).parent] if source else []
    folders.append(Path.cwd())
    out: list[Path] = []
    for folder in folders:
        if folder.resolve() not in [f.resolve() for f in out]:
            out.append(folder)
    return tuple(out)
