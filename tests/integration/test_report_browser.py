"""The HTML report in a real browser: headless Chromium lays out every chart and paints it."""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from roboframe.analyze.model import RunReport
from roboframe.analyze.report import write_report
from roboframe.analyze.svg import COLORS

T0 = 1_796_108_400 * 1_000_000_000  # 2026-12-01 07:00:00 UTC
MIN = 60 * 1_000_000_000
TIMEOUT_S = 120


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        reason = "headless Chromium not found (no `chromium` on PATH nor /usr/bin/chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true needs it")
        pytest.skip(reason)
    return found


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


def png_colours(path: Path) -> tuple[int, int, Counter[bytes]]:
    """Width, height and RGB colour counts of an 8-bit RGB(A), non-interlaced PNG.

    That is what Chromium writes; a small decoder keeps the test free of imaging libraries.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 4 if color == 6 else 3
    raw, stride = zlib.decompress(idat), width * bpp
    colours: Counter[bytes] = Counter()
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 2:  # Up: most rows of a page
            line = bytearray((x + b) & 0xFF for x, b in zip(line, prev, strict=True))
        elif kind:
            _unfilter(kind, line, prev, bpp)
        prev = bytes(line)
        colours.update(prev[i : i + 3] for i in range(0, stride, bpp))
    return width, height, colours


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    """Undo the Sub (1), Average (3) or Paeth (4) filter of one row in place."""
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + a) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (a + b) // 2) & 0xFF
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF


def sample_runs() -> list[RunReport]:
    def curve(n, f):
        return [(T0 + i * MIN, float(f(i))) for i in range(n)]

    trades = [
        {
            "symbol": "Si-12.26",
            "side": "long" if k % 2 else "short",
            "qty": 1,
            "entry_ts": T0 + (20 * k + 3) * MIN,
            "entry_price": str(92000 + 5 * k),
            "exit_ts": T0 + (20 * k + 11) * MIN,
            "exit_price": str(92010 + 5 * k),
            "pnl": 10.0 if k % 2 else -10.0,
            "open_at_end": False,
        }
        for k in range(20)
    ]
    full = RunReport(
        key="k1",
        robot="sma",
        run_id="r1",
        mode="backtest",
        journal="/tmp/j1",
        stats={"trades": 20, "net_pnl": 0.0, "return_pct": 0.0, "equity_final": 1e6},
        equity=curve(400, lambda i: 1e6 + 200 * math.sin(i / 40) + i),
        drawdown=curve(400, lambda i: -abs(math.sin(i / 40)) * 2),
        positions={"Si-12.26": curve(400, lambda i: (i // 20) % 3 - 1)},
        prices={"Si-12.26": curve(400, lambda i: 92000 + 40 * math.sin(i / 15))},
        trades=trades,
        reconciliation=[{"kind": "different", "trade_id": "t1", "detail": "qty 1 vs 2"}],
    )
    empty = RunReport(
        key="k2",
        robot="idle",
        run_id="r2",
        mode="live",
        journal="/tmp/j2",
        stats={"trades": 0},
        complete=False,
    )
    return [full, empty]


def test_chromium_renders_every_chart(tmp_path):
    binary = chromium()
    report = tmp_path / "report.html"
    write_report(report, sample_runs())
    charts = report.read_text(encoding="utf-8").count("<svg")
    assert charts == 4 + 2  # equity, drawdown, position, price; equity, drawdown (no data)

    dom = run_chromium(binary, tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == charts
    assert dom.stdout.count('class="mark entry') == 20

    shot = tmp_path / "shot.png"
    done = run_chromium(
        binary, tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", report.as_uri()
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    width, height, colours = png_colours(shot)
    assert (width, height) == (1200, 3000)
    assert len(colours) > 50  # text, lines, fills: not a blank page
    line = bytes.fromhex(COLORS[0][1:])
    near = sum(n for c, n in colours.items() if max(abs(c[i] - line[i]) for i in range(3)) <= 24)
    assert near > 500  # the charts' lines were painted
