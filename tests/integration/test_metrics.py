"""Prometheus metrics of a real running robot, scraped over HTTP while it trades."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from roboframe.config import load_robot
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.metrics import MetricsServer
from roboframe.testing.helpers import free_port, wait_for

from .conftest import ROOT, roboframe_cmd


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """name -> {sorted labels without robot: value}; every sample is labelled robot."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            assert labels.pop("robot") == "fast-robot", s
            out.setdefault(s.name, {})[tuple(sorted(labels.items()))] = s.value
    return out


def one(metrics: dict, name: str) -> float:
    return metrics[name][()]


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_scrapes_while_running_and_a_last_one_matches_the_summary(robot_file, monkeypatch):
    final: dict = {}
    close = MetricsServer.close

    def close_after_a_last_scrape(server):
        final.update(scrape(server.port))  # the run is over; its final status is published
        close(server)

    monkeypatch.setattr(MetricsServer, "close", close_after_a_last_scrape)
    path = robot_file(bars=2500, rate=1000, extra="metrics:\n  port: 0\n")  # ~5 s
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=60))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(robot.run()))
    thread.start()
    try:
        assert wait_for(lambda: robot.metrics is not None and robot.status.get("seq", 0) > 100)
        port = robot.metrics.port
        assert wait_for(lambda: "roboframe_loop_latency_seconds" in scrape(port))
        first = scrape(port)
        seq_after = robot.status["seq"]
        events = one(first, "roboframe_events_total")
        assert 0 < events <= seq_after
        assert 0 < one(first, "roboframe_messages_total") <= events
        assert first["roboframe_state"][(("state", "ACTIVE"),)] == 1
        assert sum(first["roboframe_state"].values()) == 1
        latency = first["roboframe_loop_latency_seconds"]
        assert set(latency) == {(("quantile", q),) for q in ("0.5", "0.9", "0.99")}
        p50, p90, p99 = (latency[(("quantile", q),)] for q in ("0.5", "0.9", "0.99"))
        assert 0 < p50 <= p90 <= p99 < 1
        assert one(first, "roboframe_uptime_seconds") > 0
        assert set(first["roboframe_position"]) == {
            (("symbol", "RTS-12.26"),),
            (("symbol", "Si-12.26"),),
        }
        assert wait_for(lambda: robot.status["seq"] > seq_after)  # a later tick ...
        assert wait_for(lambda: one(scrape(port), "roboframe_events_total") > events)  # ... shows
    finally:
        thread.join(60)
    assert not thread.is_alive()
    summary = result
    assert summary["stop_reason"] == "feed ended" and summary["fills"] > 0
    assert one(final, "roboframe_events_total") == summary["events"]
    assert one(final, "roboframe_messages_total") == summary["messages"]
    assert one(final, "roboframe_orders_total") == summary["orders"]
    assert one(final, "roboframe_fills_total") == summary["fills"]
    assert one(final, "roboframe_risk_rejections_total") == summary["rejections"]
    assert one(final, "roboframe_cancels_total") == summary["cancels"]
    assert one(final, "roboframe_open_orders") == summary["open_orders"]
    assert final.get("roboframe_malformed_total", {}) == {}
    assert final["roboframe_position"] == {
        (("symbol", s),): p["position"] for s, p in summary["positions"].items()
    }
    assert final["roboframe_pnl"] == {
        (("symbol", s),): float(p["net_pnl"]) for s, p in summary["positions"].items()
    }
    assert one(final, "roboframe_net_pnl") == float(summary["net_pnl"])
    assert final["roboframe_state"][(("state", "STOPPED"),)] == 1
    assert sum(final["roboframe_state"].values()) == 1
    assert refused(port)  # the port is closed after the run


def test_cli_metrics_port_option(robot_file):
    path = robot_file(bars=0, rate=300)  # no metrics section: the option turns them on
    port = free_port()
    args = ["run", str(path), "--json", "--duration", "20", "--metrics-port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    seen: dict = {}

    def scraped() -> bool:
        try:
            seen.update(scrape(port))
        except (urllib.error.URLError, ConnectionError):
            return False
        return one(seen, "roboframe_events_total") > 0

    try:
        assert wait_for(scraped, timeout=20)
    finally:
        proc.send_signal(signal.SIGINT)  # stop now
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["stop_reason"] == "interrupted"
    assert 0 < one(seen, "roboframe_events_total") <= summary["events"]
    assert refused(port)


def test_cli_port_in_use_fails_cleanly(robot_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = roboframe_cmd("run", str(robot_file(bars=10)), "--metrics-port", str(port))
    assert proc.returncode == 1
    assert f"Error: metrics: cannot listen on 127.0.0.1:{port}: " in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["-1", "65536", "http"])
def test_cli_metrics_port_must_be_a_port(robot_file, value):
    proc = roboframe_cmd("run", str(robot_file(bars=10)), "--metrics-port", value)
    assert proc.returncode == 2
    assert "Invalid value for '--metrics-port'" in proc.stderr
