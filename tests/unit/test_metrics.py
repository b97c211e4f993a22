"""The metrics collector on a hand-made status snapshot: every metric and label."""

from __future__ import annotations

import socket
import urllib.request
from collections import deque

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from roboframe.errors import RoboframeError
from roboframe.metrics import RobotCollector, quantiles, serve

STATUS = {
    "robot": "si-trend",
    "state": "PAUSED",
    "seq": 1234,
    "messages": 56,
    "malformed": {"not msgpack": 3, "unknown event kind": 1},
    "counters": {
        "orders": 12,
        "cancels": 4,
        "fills": 9,
        "rejections": 2,
        "ignored": 7,
        "duplicates": 1,
    },
    "positions": {
        "Si-12.26": {"position": 3, "net_pnl": "-120.50"},
        "RTS-12.26": {"position": -1, "net_pnl": "87.10"},
    },
    "net_pnl": "-33.40",
    "open_orders": [{"client_id": "a"}, {"client_id": "b"}],
    "uptime_s": 61.25,
    "order_path": "down: the order store is unreachable",
}

LATENCY_NS = [4000, 1000, 3000, 2000, *range(10_000, 110_000, 1000)]  # 104 samples

ROBOT = (("robot", "si-trend"),)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, key
            out[key] = s.value
    return out


def scrape(collector: RobotCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_every_metric_and_label():
    collector = RobotCollector("si-trend", lambda: STATUS, lambda: deque(LATENCY_NS))
    got = samples(scrape(collector))
    state = {
        ("roboframe_state", (("robot", "si-trend"), ("state", name))): float(name == "PAUSED")
        for name in ("ACTIVE", "PAUSED", "REDUCING", "HALTED", "STOPPED")
    }
    assert got == {
        ("roboframe_events_total", ROBOT): 1234,
        ("roboframe_messages_total", ROBOT): 56,
        ("roboframe_malformed_total", (("kind", "not msgpack"), *ROBOT)): 3,
        ("roboframe_malformed_total", (("kind", "unknown event kind"), *ROBOT)): 1,
        ("roboframe_orders_total", ROBOT): 12,
        ("roboframe_fills_total", ROBOT): 9,
        ("roboframe_risk_rejections_total", ROBOT): 2,
        ("roboframe_cancels_total", ROBOT): 4,
        ("roboframe_open_orders", ROBOT): 2,
        ("roboframe_position", (*ROBOT, ("symbol", "RTS-12.26"))): -1,
        ("roboframe_position", (*ROBOT, ("symbol", "Si-12.26"))): 3,
        ("roboframe_pnl", (*ROBOT, ("symbol", "RTS-12.26"))): 87.10,
        ("roboframe_pnl", (*ROBOT, ("symbol", "Si-12.26"))): -120.50,
        ("roboframe_net_pnl", ROBOT): -33.40,
        **state,
        ("roboframe_order_path_up", ROBOT): 0,
        # sorted: 1000 2000 3000 4000 10000 ... 109000; nearest rank ceil(q * 104): 52, 94, 103
        ("roboframe_loop_latency_seconds", (("quantile", "0.5"), *ROBOT)): 57_000 / 1e9,
        ("roboframe_loop_latency_seconds", (("quantile", "0.9"), *ROBOT)): 99_000 / 1e9,
        ("roboframe_loop_latency_seconds", (("quantile", "0.99"), *ROBOT)): 108_000 / 1e9,
        ("roboframe_uptime_seconds", ROBOT): 61.25,
    }


def test_metric_types_and_help():
    text = scrape(RobotCollector("si-trend", lambda: STATUS, lambda: LATENCY_NS))
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    counters = {"events", "messages", "malformed", "orders", "fills", "risk_rejections", "cancels"}
    assert {n for n, t in types.items() if t == "counter"} == {f"roboframe_{n}" for n in counters}
    assert all(t in ("counter", "gauge") for t in types.values())
    assert all(f.documentation for f in text_string_to_metric_families(text))


def test_an_empty_status_scrapes_as_zeros_before_the_first_tick():
    got = samples(scrape(RobotCollector("r", dict)))
    assert got[("roboframe_events_total", (("robot", "r"),))] == 0
    assert got[("roboframe_net_pnl", (("robot", "r"),))] == 0
    assert not [k for k in got if k[0] in ("roboframe_position", "roboframe_pnl")]
    assert not [k for k in got if k[0] == "roboframe_loop_latency_seconds"]  # no samples yet
    assert {v for k, v in got.items() if k[0] == "roboframe_state"} == {0}


def test_an_unknown_state_is_still_shown():
    got = samples(scrape(RobotCollector("r", lambda: {"state": "NEW"})))
    assert got[("roboframe_state", (("robot", "r"), ("state", "NEW")))] == 1
    assert got[("roboframe_state", (("robot", "r"), ("state", "ACTIVE")))] == 0


def test_a_latency_ring_mutated_during_the_copy_is_retried():
    calls = []

    def ring():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("deque mutated during iteration")
        return [5000]

    got = samples(scrape(RobotCollector("r", dict, ring)))
    assert got[("roboframe_loop_latency_seconds", (("quantile", "0.99"), ("robot", "r")))] == 5e-6


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {}),
        ([7], {0.5: 7, 0.9: 7, 0.99: 7}),
        (list(range(1, 101)), {0.5: 50, 0.9: 90, 0.99: 99}),
        ([3, 1, 2], {0.5: 2, 0.9: 3, 0.99: 3}),
    ],
)
def test_quantiles_nearest_rank(values, expected):
    assert quantiles(values) == expected


def test_serve_uses_a_private_registry_and_frees_the_port():
    before = set(REGISTRY._collector_to_names)
    server = serve(RobotCollector("r", lambda: STATUS), 0)
    try:
        assert server.port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
        assert samples(text)[("roboframe_events_total", (("robot", "r"),))] == 1234
        assert "python_gc" not in text and "process_" not in text  # not the global registry
    finally:
        server.close()
    assert set(REGISTRY._collector_to_names) == before
    with pytest.raises(ConnectionRefusedError):  # nobody listens any more
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RoboframeError, match=rf"^metrics: cannot listen on 127.0.0.1:{port}: "):
            serve(RobotCollector("r", dict), port)
