"""The analyzer: every journal replayed into a database, and a report.

``roboframe analyze runs/**/*.journal`` replays each journal through the
kernel of the robot that wrote it and writes the run, its events, actions,
fills, orders, round-trip trades and the robot's state after every event to
a database (SQLite ``analysis.db`` by default; PostgreSQL or MongoDB through
their plugins). ``docs/analyzer.md`` documents the tables and has example
queries.
"""

from __future__ import annotations

import contextlib
import glob
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roboframe.analyze.model import RunReport
from roboframe.analyze.store import AnalysisStore
from roboframe.analyze.timeline import RunAnalysis, journal_key
from roboframe.core.robot import JOURNAL_SUFFIX
from roboframe.errors import RoboframeError

__all__ = [
    "AnalysisStore",
    "AnalyzeResult",
    "RunReport",
    "analyze",
    "journal_key",
    "journal_paths",
    "open_analysis_store",
]

log = logging.getLogger(__name__)

DEFAULT_DB = "analysis.db"


@dataclass
class AnalyzeResult:
    runs: list[RunReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # journals that could not be analysed
    warnings: list[str] = field(default_factory=list)


def open_analysis_store(url: str, registry: Any = None) -> AnalysisStore:
    """The analysis database at ``url``: a plain path is an SQLite file."""
    from roboframe.plugins import get_registry
    from roboframe.store.base import backend_for

    registry = registry or get_registry()
    cls = backend_for(registry.analysis_stores, url, "analysis database", default="sqlite")
    store = cls(url if "://" in url else f"sqlite:///{url}")
    store.setup()
    return store


def journal_paths(args: Iterable[str]) -> list[Path]:
    """Journal files named by ``args``: files, folders (searched recursively)
    and glob patterns (``runs/**/*.journal``), each once, in name order."""
    found: dict[str, Path] = {}
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            matches = list(path.rglob(f"*{JOURNAL_SUFFIX}"))
        elif any(ch in arg for ch in "*?["):
            matches = [Path(p) for p in glob.glob(arg, recursive=True)]
        else:
            matches = [path]
        for match in matches:
            found.setdefault(str(match), match)
    return [found[k] for k in sorted(found)]


def analyze(
    paths: Iterable[str | Path],
    *,
    db: str = DEFAULT_DB,
    registry: Any = None,
    store_url: str | None = None,
    robot: str | None = None,
    on_run: Callable[[RunReport], None] | None = None,
) -> AnalyzeResult:
    """Analyse every journal in ``paths`` (files, folders, globs) into the database ``db``.

    With ``store_url`` and ``robot``, runs of that robot are also reconciled
    against the order store (``RunReport.reconciliation``). A journal that
    cannot be read is reported in ``problems`` and the others go on.
    """
    from roboframe.plugins import get_registry

    registry = registry or get_registry()
    statistics = sorted((name, r.obj) for name, r in registry.statistics.items())
    result = AnalyzeResult()
    with contextlib.ExitStack() as opened:
        order_store = None
        if store_url:
            from roboframe.store import StoreUnavailable, open_store

            try:
                order_store = open_store(store_url, registry)
                opened.callback(order_store.close)
                order_store.setup()
            except StoreUnavailable as exc:
                raise RoboframeError(f"--store {store_url}: cannot reach it: {exc}") from None
        sink_store = open_analysis_store(db, registry)
        opened.callback(sink_store.close)
        found = journal_paths(str(p) for p in paths)
        chosen = _one_per_run(found)
        for path in found:
            first = chosen.get(path)
            if first is not None:  # one run in the database: a second replaced the first
                result.warnings.append(
                    f"{path}: the same run as {first} (the same header: a copy, or the same "
                    "backtest written again); the longer journal is analysed"
                )
                continue
            report = _one(path, sink_store, registry, statistics, order_store, robot, result)
            if report is not None:
                result.runs.append(report)
                if on_run is not None:
                    on_run(report)
    return result


def _one_per_run(paths: list[Path]) -> dict[Path, Path]:
    """The journals of a run already among ``paths`` (the same header, so the same
    key), each mapped to the one analysed instead: the longest (a copy taken
    while the run went on is shorter), the first of equals."""
    from roboframe.journal import JournalReader

    runs: dict[str, list[tuple[int, int, Path]]] = {}
    for order, path in enumerate(paths):
        try:
            key = journal_key(JournalReader(path).header)
            size = path.stat().st_size
        except (RoboframeError, OSError):
            continue  # analysed alone, and its problem said then
        runs.setdefault(key, []).append((-size, order, path))
    skipped = {}
    for copies in runs.values():
        best = min(copies)[2]
        skipped.update({path: best for _, _, path in copies if path != best})
    return skipped


def _one(path, sink_store, registry, statistics, order_store, robot, result) -> RunReport | None:
    try:
        analysis = RunAnalysis(
            path,
            registry=registry,
            statistics=statistics,
            keep_fills=order_store is not None,
        )
    except RoboframeError as exc:  # journal, config and plugin errors alike
        result.problems.append(f"{path}: {exc}")
        return None
    try:
        sink_store.begin_run(analysis.run)
        report = analysis.replay(sink_store.write)
        sink_store.commit_run()
    except RoboframeError as exc:
        sink_store.abort_run()
        result.problems.append(f"{path}: {exc}")
        return None
    except BaseException:
        sink_store.abort_run()
        raise
    if analysis.failure is not None and not analysis.divergences:
        result.warnings.append(f"{path}: {report.failure}; analysed up to that event")
    if analysis.divergences:
        result.warnings.append(
            f"{path}: the replay differs from the journal at {analysis.divergences} event(s) "
            f"(first: {analysis.first_divergence}); the strategy or its config changed since "
            "the run; the figures are the journal's fills and market data replayed through "
            "the current code, so where its orders differ they mix the two"
        )
    live = report.mode != "backtest"  # a backtest's fills never were in any store
    if order_store is not None and live and (robot is None or robot == report.robot):
        from roboframe.analyze.reconcile import reconcile

        report.reconciliation = reconcile(
            order_store,
            report.robot,
            report.run_id,
            analysis.fills,
            analysis.kernel.instruments,
            analysis.order_qty,
        )
    return report
