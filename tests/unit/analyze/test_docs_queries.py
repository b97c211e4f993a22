"""The example queries of docs/analyzer.md run, and return what they say."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from roboframe.analyze import analyze
from roboframe.testing.helpers import T0
from tests.unit.analyze.journals import scripted_events, scripted_spec, write_journal

DOC = Path(__file__).resolve().parents[3] / "docs" / "analyzer.md"


def test_every_example_query_runs(tmp_path):
    path = tmp_path / "r1.journal"
    write_journal(path, scripted_spec(name="si-trend"), scripted_events())
    db = tmp_path / "a.db"
    run = analyze([path], db=str(db)).runs[0]
    queries = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    assert len(queries) == 4
    text = [q.replace("bt-e9e847beaf", run.run_id) for q in queries]
    # 2.5 minutes after T0: after the fill of 2 lots at seq 4, before the sale at seq 8
    text[2] = text[2].replace("2026-12-01 12:00:00", "2026-11-18 11:09:10")
    with sqlite3.connect(db) as conn:
        number = conn.execute("SELECT run FROM runs").fetchone()[0]
        results = [conn.execute(q, {"run": number}).fetchall() for q in text]
    equity, worst, position, before_fills = results
    assert len(equity) == 10 and equity[0][1] == 1_000_000.0
    assert [t[-1] for t in worst] == [6.5, 8.0]  # worst first
    assert T0 == 1_795_000_000 * 10**9
    assert position == [(2, 101.0, 8.0)]  # long 2 @ 101, marked at the bar of 105
    assert [row[0] for row in before_fills] == [4, 8]
    assert '"bars":1' in before_fills[0][3] and '"bars":3' in before_fills[1][3]
