"""``roboframe feed publish`` as a trader runs it: a real process, a real PUB socket."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time

import zmq

from roboframe.testing.helpers import wait_for
from tests.integration.conftest import ROOT

ROBOT = ROOT / "robots" / "si.yaml"
PUBLISH = [sys.executable, "-m", "roboframe.cli", "feed", "publish"]


def run_publish(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", "feed", "publish", str(ROBOT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def taken_port(kind: int):
    """A loopback port a socket of ``kind`` holds while the block runs."""
    ctx = zmq.Context()
    taken = ctx.socket(kind)
    try:
        yield taken.bind_to_random_port("tcp://127.0.0.1")
    finally:
        taken.close(linger=0)
        ctx.term()


def test_a_port_already_taken_is_a_clear_error_not_a_traceback():
    """An old publisher still running on the port (a restart done too early)."""
    with taken_port(zmq.PUB) as port:
        done = run_publish("--bind", f"tcp://127.0.0.1:{port}", "--speed", "max", "--wait", "0")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot bind the publisher to tcp://127.0.0.1:{port}" in done.stderr
    assert "another publisher" in done.stderr


def test_a_malformed_bind_address_is_a_clear_error():
    done = run_publish("--bind", "5561", "--speed", "max", "--wait", "0")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot bind the publisher to 5561" in done.stderr


FEED_ROBOT = """\
name: feed-robot
symbols:
  Si-12.26: {{tick_size: 1, lot: 1, point_value: 1, currency: RUB}}
feed:
  plugin: zmq
  params: {{address: "tcp://127.0.0.1:{port}", batch: 1}}
strategy:
  plugin: sma-crossover
  params: {{fast: 3, slow: 8, qty: 1}}
gateway:
  plugin: paper
  params: {{}}
journal:
  dir: {journal_dir}
"""


def run_beside_a_publisher(tmp_path, publish, *, extra: str = "", seconds: int = 3) -> dict:
    """``roboframe run --json`` of a robot on a zmq feed for ``seconds``, while
    ``publish(pub, proc)`` sends on the PUB socket it subscribes to; its summary."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    robot = tmp_path / "robot.yaml"
    robot.write_text(FEED_ROBOT.format(port=port, journal_dir=tmp_path / "runs") + extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "roboframe.cli", "-q", "run", str(robot), "--duration",
         str(seconds), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        publish(pub, proc)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close(linger=0)
        ctx.term()
    summary = json.loads(out[out.index("{") :]) if "{" in out else {}
    assert summary, (out, err)
    return summary


def test_frames_the_zmq_feed_drops_are_counted_in_the_run_summary(tmp_path):
    """A publisher sending three frames instead of [symbol, event] (or a topic that
    only starts with a robot symbol): the feed drops them; the summary must say how
    many, as it does for malformed events, not only a log line at the first. A bar
    stamped decades ahead is dropped by the loop (``loop.max_ahead``) and counted
    the same way."""
    from roboframe.core import codec
    from roboframe.core.events import Bar
    from roboframe.testing.helpers import T0

    def publish(pub, proc) -> None:
        minute = 60_000_000_000
        far = Bar("Si-12.26", T0 + 36 * 365 * 1440 * minute, 100, 100, 100, 100)
        n = 0
        while proc.poll() is None and n < 2000:
            n += 1
            pub.send_multipart([b"Si-12.26", b"x", b"y"])
            pub.send_multipart([b"Si-12.26X", codec.encode(Bar("Si-12.26X", T0, 1, 1, 1, 1))])
            bar = Bar("Si-12.26", T0 + n * minute, 100, 100, 100, 100)
            pub.send_multipart([b"Si-12.26", codec.encode(bar)])
            # and one from decades ahead: taken, every later bar would be stale
            pub.send_multipart([b"Si-12.26", codec.encode(far)])
            time.sleep(0.005)

    summary = run_beside_a_publisher(tmp_path, publish)
    assert summary["events"] > 0  # the good bars came through
    malformed = summary["malformed"]
    assert malformed.get("not [symbol, event]", 0) >= 1, malformed
    assert malformed.get("topic not a robot symbol", 0) >= 1, malformed
    assert malformed.get("time too far ahead", 0) >= 1, malformed
    assert summary["stale_bars"] == 0  # the bars after it were not taken for the past


def run_exchange(*args: str) -> subprocess.CompletedProcess:
    """The exchange's sockets open before its store is touched: no store is needed."""
    store = "postgresql://postgres@127.0.0.1:1/none"
    return subprocess.run(
        [sys.executable, "-m", "roboframe.cli", "exchange", "--store", store, *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_the_exchange_with_a_malformed_feed_address_says_so():
    done = run_exchange("--feed", "5561")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot connect to the market-data publisher 5561" in done.stderr


def test_the_exchange_with_its_orders_port_taken_says_so():
    """A second exchange started by mistake, or an old one still stopping."""
    with taken_port(zmq.ROUTER) as port:
        done = run_exchange("--orders", f"tcp://127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot bind the orders socket to tcp://127.0.0.1:{port}" in done.stderr


def test_the_end_of_a_file_reaches_a_subscriber_still_reading_it(tmp_path):
    """``--speed max`` into a robot slower than the file: the publisher reached the end
    and exited a second later while thousands of events still waited in its queue,
    and the robot never got the end of the day, though all were "published"."""
    source = tmp_path / "market.yaml"
    source.write_text(ROBOT.read_text().replace("bars: 1500 ", "bars: 10000 "))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1000)  # a robot's queue, small: the rest waits at the PUB
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    address = f"ipc://{tmp_path}/market.sock"  # small socket buffers, unlike tcp on loopback
    sub.connect(address)
    proc = subprocess.Popen(
        [*PUBLISH, str(source), "--bind", address, "--speed", "max", "--wait", "0.5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    got = 0
    try:
        # the first event once the process has started (seconds, under load); then
        # 3 s without one is the end
        assert wait_for(lambda: sub.poll(0) or proc.poll() is not None, 30), "nothing came"
        while sub.poll(3000):  # a robot taking 5,000 events a second
            sub.recv_multipart()
            got += 1
            if got % 500 == 0:
                time.sleep(0.1)
        err = proc.communicate(timeout=20)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        ctx.term()
    assert "published 20,000 events" in err, err
    # All but what is in flight at the final disconnect (about a socket buffer: a
    # ZeroMQ SUB drops it), which 4,000 is well over; the old publisher delivered
    # what the subscriber took in its one second of linger, about 3,600 here.
    assert got >= 16_000, got


def test_data_replayed_days_behind_the_clock_does_not_freeze_the_order_rate_window(tmp_path):
    """A publisher replaying a file (the documented workflow) sends bars stamped
    days before the host's clock. Robot time stood still at the start's clock
    time, so the order-rate window (robot time) held every order of the run:
    after max_orders_per_second orders, all the rest were refused for good. Robot
    time now follows each message's receipt time too -- journaled, so the replay
    verifies."""
    from roboframe.core import codec
    from roboframe.core.events import Bar
    from roboframe.journal import JournalReader
    from roboframe.testing.helpers import MINUTE_NS, T0

    def publish(pub, proc) -> None:
        n = 0
        while proc.poll() is None and n < 400:
            n += 1
            close = 100 + (n % 16 if n % 32 < 16 else 16 - n % 16)  # up 16 bars, down 16
            bar = Bar("Si-12.26", T0 + n * MINUTE_NS, close, close, close, close)
            pub.send_multipart([b"Si-12.26", codec.encode(bar)])
            time.sleep(0.01)

    extra = "risk: {max_orders_per_second: 3}\n"
    summary = run_beside_a_publisher(tmp_path, publish, extra=extra, seconds=4)
    assert summary["orders"] > 3, summary  # it stopped at 3 for the rest of the run
    (journal,) = (tmp_path / "runs").glob("*.journal")
    assert JournalReader(journal).header["clock"] == "receipt"
    verified = subprocess.run(
        [sys.executable, "-m", "roboframe.cli", "replay", str(journal), "--verify"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
