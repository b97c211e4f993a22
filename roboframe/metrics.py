"""Prometheus metrics of one running robot, served over HTTP.

A :class:`RobotCollector` turns the robot's latest status snapshot (the dict
:class:`~roboframe.core.robot.LiveRobot` replaces whole about once a second
on the loop thread) and the loop's sampled latencies into metric families
when a scrape asks for them. Nothing is counted on the hot path: the loop
never knows it is watched, and a scrape reads a dict that is never mutated
after it is published, so no lock is needed. Figures are therefore as fresh
as the last status tick (about a second).

Each robot gets a private :class:`~prometheus_client.CollectorRegistry`, so
two robots in one process never mix, and the global registry is left alone.
Every sample carries a ``robot`` label. :func:`serve` starts
``prometheus_client``'s own HTTP server on the configured port;
:meth:`MetricsServer.close` shuts it down and frees the port.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from roboframe.errors import RoboframeError
from roboframe.risk.limits import ACTIVE, HALTED, PAUSED, REDUCING, STOPPED

log = logging.getLogger(__name__)

STATES = (ACTIVE, PAUSED, REDUCING, HALTED, STOPPED)
QUANTILES = (0.5, 0.9, 0.99)

_COUNTERS = (  # metric name (without _total), key of status["counters"], help
    ("roboframe_orders", "orders", "orders the robot sent (passed risk)"),
    ("roboframe_fills", "fills", "fills applied to positions"),
    ("roboframe_risk_rejections", "rejections", "orders refused by the risk checks"),
    ("roboframe_cancels", "cancels", "cancel requests the robot sent"),
)


def quantiles(samples: Iterable[int], qs: Iterable[float] = QUANTILES) -> dict[float, int]:
    """Nearest-rank quantiles of ``samples``; empty when there are none."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    last = len(ordered) - 1
    return {q: ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))] for q in qs}


class RobotCollector:
    """A ``prometheus_client`` collector reading one robot's status snapshot.

    ``status`` returns the latest snapshot (see ``LiveRobot._snapshot``);
    ``latency_ns`` returns recent per-message processing times in ns.
    """

    def __init__(
        self,
        robot: str,
        status: Callable[[], Mapping[str, Any]],
        latency_ns: Callable[[], Iterable[int]] = tuple,
    ) -> None:
        self.robot = robot
        self.status = status
        self.latency_ns = latency_ns

    def _latencies(self) -> list[int]:
        for _ in range(3):  # another thread appends; a copy may see it mutate
            try:
                return list(self.latency_ns())
            except RuntimeError:
                continue
        return []

    def collect(self) -> Iterator[Metric]:
        status = self.status()  # one snapshot: every figure below is from the same tick
        robot = [self.robot]
        counters = status.get("counters", {})

        def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, help_, labels=["robot"])
            family.add_metric(robot, value)
            return family

        def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, help_, labels=["robot"])
            family.add_metric(robot, value)
            return family

        yield counter("roboframe_events", "events sequenced and journaled", status.get("seq", 0))
        yield counter(
            "roboframe_messages",
            "wire messages processed (a batch is one)",
            status.get("messages", 0),
        )
        malformed = CounterMetricFamily(
            "roboframe_malformed", "malformed messages dropped, by kind", labels=["robot", "kind"]
        )
        for kind, count in sorted(status.get("malformed", {}).items()):
            malformed.add_metric([self.robot, kind], count)
        yield malformed
        for name, key, help_ in _COUNTERS:
            yield counter(name, help_, counters.get(key, 0))
        yield gauge(
            "roboframe_open_orders",
            "orders sent and not yet filled, cancelled or rejected",
            len(status.get("open_orders", ())),
        )

        positions = status.get("positions", {})
        position = GaugeMetricFamily(
            "roboframe_position", "signed position in lots", labels=["robot", "symbol"]
        )
        pnl = GaugeMetricFamily(
            "roboframe_pnl",
            "net PnL of the symbol in its currency (realized + unrealized - fees)",
            labels=["robot", "symbol"],
        )
        for symbol in sorted(positions):
            pos = positions[symbol]
            position.add_metric([self.robot, symbol], pos["position"])
            pnl.add_metric([self.robot, symbol], float(pos["net_pnl"]))
        yield position
        yield pnl
        yield gauge(
            "roboframe_net_pnl", "net PnL of all symbols, in money", float(status.get("net_pnl", 0))
        )

        state = GaugeMetricFamily(
            "roboframe_state", "1 for the robot's trading state", labels=["robot", "state"]
        )
        current = status.get("state")
        for name in STATES if current in STATES or current is None else (*STATES, current):
            state.add_metric([self.robot, name], 1 if name == current else 0)
        yield state
        yield gauge(
            "roboframe_order_path_up",
            "1 while the order path (gateway, order store, exchange link) takes orders, "
            "0 while it is down or stalled (orders unacknowledged) and new orders are refused",
            0 if status.get("order_path", "up") != "up" else 1,
        )

        latency = GaugeMetricFamily(
            "roboframe_loop_latency_seconds",
            "processing time of one message by the loop (recent sampled messages), by quantile",
            labels=["robot", "quantile"],
        )
        for q, ns in quantiles(self._latencies()).items():
            latency.add_metric([self.robot, str(q)], ns / 1e9)
        yield latency
        yield gauge(
            "roboframe_uptime_seconds", "seconds since the run started", status.get("uptime_s", 0)
        )


class MetricsServer:
    """The HTTP endpoint serving one robot's registry."""

    def __init__(self, server: Any, thread: threading.Thread, registry: CollectorRegistry) -> None:
        self.server = server
        self.thread = thread
        self.registry = registry

    @property
    def port(self) -> int:
        """The port listened on (the real one when 0 was asked for)."""
        return self.server.server_port

    def close(self) -> None:
        """Stop serving and free the port; waits for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(collector: RobotCollector, port: int, address: str = "127.0.0.1") -> MetricsServer:
    """Serve ``collector`` from a private registry on ``address:port``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise RoboframeError(
            f"metrics: cannot listen on {address}:{port}: {exc.strerror or exc}"
        ) from None
    thread.name = "metrics-http"
    metrics = MetricsServer(server, thread, registry)
    log.info("metrics of %s at http://%s:%d/metrics", collector.robot, address, metrics.port)
    return metrics


def serve_robot(robot: Any) -> MetricsServer | None:
    """Serve a :class:`~roboframe.core.robot.LiveRobot`'s metrics if its spec asks for them."""
    spec = robot.spec.metrics
    if spec.port is None:
        return None
    collector = RobotCollector(robot.spec.name, lambda: robot.status, lambda: robot.loop.latency_ns)
    return serve(collector, spec.port, spec.address)
