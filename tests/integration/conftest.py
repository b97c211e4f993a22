from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAST_ROBOT = """\
name: {name}
symbols:
  Si-12.26: {{tick_size: 1, lot: 1, point_value: 1, currency: RUB}}
  RTS-12.26: {{tick_size: 10, lot: 1, point_value: 1.3, currency: RUB}}
feed:
  plugin: synthetic
  params:
    seed: 7
    bars: {bars}
    interval: 1m
    start: "2026-12-01T07:00:00Z"
    prices: {{Si-12.26: 92000, RTS-12.26: 110000}}
    volatility: 0.002
    rate: {rate}
strategy:
  plugin: sma-crossover
  params: {{fast: 3, slow: 8, qty: 1}}
gateway:
  plugin: paper
  params: {{commission: 2.0}}
risk:
  max_order_qty: 5
  max_position: 3
journal:
  dir: {journal_dir}
{extra}"""


@pytest.fixture
def robot_file(tmp_path):
    """Write a small fast robot file; returns a function taking overrides."""

    def write(name="fast-robot", bars=200, rate=0, extra="", journal_dir=None):
        journal_dir = journal_dir or (tmp_path / "runs" / name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            FAST_ROBOT.format(
                name=name,
                bars=bars,
                rate=rate,
                journal_dir=journal_dir,
                extra=textwrap.dedent(extra),
            )
        )
        return path

    return write


def roboframe_cmd(*args, env=None, timeout=60, cwd=None, **kw):
    """Run the real console entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or ROOT,
        **kw,
    )
