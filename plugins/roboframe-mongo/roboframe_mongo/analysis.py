"""The MongoDB analysis database: ``roboframe analyze --db mongodb://host/analysis``.

One collection per table of :data:`roboframe.analyze.tables.TABLES`, in the
URL's database (default ``roboframe_analysis``); a document per row, its
fields the table's columns (``null`` kept), with a unique index on the
table's :data:`~roboframe.analyze.tables.KEYS` and the further
:data:`~roboframe.analyze.tables.INDEXES`. A ``runs`` document holds
``stats`` as a sub-document (the JSON text the other backends keep, parsed),
so ``db.runs.find({"stats.net_pnl": {$gt: 0}})`` works; ``events.data`` and
``strategy_states.state`` stay JSON text, as elsewhere.

No transactions (not every server has them, SecantusDB among them):
:meth:`MongoAnalysisStore.begin_run` deletes the run's ``runs`` document
first, then its documents in every other collection; the rows go in with
unordered ``insert_many``; the ``runs`` document is inserted last, in
:meth:`~MongoAnalysisStore.commit_run`, whatever order the analyzer wrote in.
A reader that starts from ``runs`` therefore sees a run complete or not at
all; :meth:`~MongoAnalysisStore.abort_run` deletes the partial rows. A run
cut short by a crash leaves documents without a ``runs`` document until the
run is analysed again. The analysis needs a database of its own: the order
store's ``orders`` and ``trades`` collections have the same names, so
:meth:`~MongoAnalysisStore.setup` refuses a database that holds an order store.
"""

from __future__ import annotations

import contextlib
import json

import pymongo
from pymongo.errors import PyMongoError

from roboframe.analyze.store import AnalysisStore
from roboframe.analyze.tables import INDEXES, KEYS, TABLES
from roboframe.errors import RoboframeError
from roboframe.store.base import shown_url

DEFAULT_DATABASE = "roboframe_analysis"
_ORDER_STORE = {"counters", "order_events"}  # collections only the order store has


class MongoAnalysisStore(AnalysisStore):
    """``mongodb://host:27017/analysis``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        self.db = self.client.get_default_database(DEFAULT_DATABASE)
        self.run: int | None = None
        self._runs: list[dict] = []  # the runs document waits for commit_run
        try:
            self.client.admin.command("ping")
        except PyMongoError as exc:
            self.client.close()
            raise self._error("cannot connect", exc) from exc

    def _error(self, doing: str, exc: PyMongoError) -> RoboframeError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return RoboframeError(f"analysis database {shown_url(self.url)}: {doing}: {reason}")

    def setup(self) -> None:
        try:
            present = set(self.db.list_collection_names())
            if present & _ORDER_STORE:
                raise RoboframeError(
                    f"analysis database {shown_url(self.url)}: database {self.db.name!r} "
                    "holds a roboframe order store, whose orders and trades collections "
                    "the analysis would share; give the analysis a database of its own "
                    "(mongodb://host/analysis)"
                )
            for table, key in KEYS.items():
                coll = self.db[table]
                coll.create_index([(c, 1) for c in key], unique=True)
                for cols in INDEXES.get(table, ()):
                    coll.create_index([(c, 1) for c in cols])
        except PyMongoError as exc:
            raise self._error("cannot create the indexes", exc) from exc

    def _delete_run(self, run: int) -> None:
        self.db.runs.delete_many({"run": run})  # first: readers stop seeing the run
        for table in TABLES:
            if table != "runs":
                self.db[table].delete_many({"run": run})

    def begin_run(self, run: int) -> None:
        self.run, self._runs = run, []
        try:
            self._delete_run(run)
        except PyMongoError as exc:
            raise self._error(f"cannot start run {run}", exc) from exc

    def write(self, table: str, rows: list[tuple]) -> None:
        columns = TABLES[table]
        docs = [dict(zip(columns, row, strict=True)) for row in rows]
        if table == "runs":
            for doc in docs:
                if isinstance(doc["stats"], str):
                    doc["stats"] = json.loads(doc["stats"])
            self._runs.extend(docs)
            return
        if docs:
            self._insert(table, docs)

    def _insert(self, table: str, docs: list[dict]) -> None:
        try:
            self.db[table].insert_many(docs, ordered=False)
        except PyMongoError as exc:
            raise self._error(f"cannot write {table}", exc) from exc
        except OverflowError as exc:  # an integer beyond BSON's 64 bits
            raise RoboframeError(f"analysis table {table}: {exc}") from exc

    def commit_run(self) -> None:
        if self._runs:
            self._insert("runs", self._runs)
        self.run, self._runs = None, []

    def abort_run(self) -> None:
        run, self.run, self._runs = self.run, None, []
        if run is not None:
            with contextlib.suppress(PyMongoError):  # analysing it again cleans up as well
                self._delete_run(run)

    def close(self) -> None:
        self.abort_run()
        self.client.close()
