"""CURVE on real tcp sockets: the control endpoint and the market-data feed.

Every socket has a receive timeout; "gets nothing" means nothing within it.
"""

from __future__ import annotations

import logging
import shutil
import stat
import threading

import pytest
import zmq

from roboframe.builtin.feeds.zmqsub import ZmqFeed
from roboframe.config import load_robot
from roboframe.control import send_command
from roboframe.core.robot import LiveRobot, RunOptions
from roboframe.curve import generate_keys, load_server_keys
from roboframe.errors import ConfigError, RoboframeError
from roboframe.publisher import publish
from roboframe.testing.helpers import bar, free_port, wait_for

from .conftest import roboframe_cmd


@pytest.fixture
def keys(tmp_path):
    """A server pair, an allowed client (its public key in clients/) and a stranger."""
    server_pub, server_secret = generate_keys(tmp_path / "keys", "robot")
    me_pub, me_secret = generate_keys(tmp_path / "me", "me")
    _, stranger_secret = generate_keys(tmp_path / "stranger", "stranger")
    (tmp_path / "clients").mkdir()
    shutil.copy(me_pub, tmp_path / "clients" / "me.key")
    return {
        "server_key": server_pub,
        "server_secret": server_secret,
        "clients": tmp_path / "clients",
        "me": me_secret,
        "stranger": stranger_secret,
    }


def test_keys_generate_writes_a_pair_with_the_right_modes(tmp_path):
    proc = roboframe_cmd("keys", "generate", "--dir", str(tmp_path / "k"), "--name", "desk")
    assert proc.returncode == 0, proc.stderr
    public, secret = tmp_path / "k" / "desk.key", tmp_path / "k" / "desk.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert "secret-key" not in public.read_text() and "secret-key" in secret.read_text()
    again = roboframe_cmd("keys", "generate", "--dir", str(tmp_path / "k"), "--name", "desk")
    assert again.returncode == 2 and "will not overwrite" in again.stderr


def test_tcp_control_without_curve_refuses_to_start(robot_file):
    port = free_port()
    path = robot_file(extra=f"control:\n  address: tcp://127.0.0.1:{port}\n")
    proc = roboframe_cmd("run", str(path), "--duration", "5")
    assert proc.returncode == 2
    assert "control.address: a tcp:// control endpoint needs CURVE keys" in proc.stderr
    assert "roboframe keys generate" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (path.parent / "runs" / "fast-robot").exists() or not any(
        (path.parent / "runs" / "fast-robot").glob("*.journal")
    )


def test_ctl_over_tcp_needs_keys(tmp_path):
    proc = roboframe_cmd("ctl", "tcp://127.0.0.1:1", "status")
    assert proc.returncode == 2
    assert "give --key YOUR.key_secret --server-key ROBOT.key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_secret_key_file_refuses_to_start(robot_file, tmp_path):
    port = free_port()
    extra = (
        f"control:\n  address: tcp://127.0.0.1:{port}\n"
        "  curve: {secret_key: nope.key_secret, clients: clients}\n"
    )
    (tmp_path / "clients").mkdir()
    proc = roboframe_cmd("run", str(robot_file(extra=extra)), "--duration", "5")
    assert proc.returncode == 2
    assert "cannot read CURVE secret key" in proc.stderr and "Traceback" not in proc.stderr


def test_curve_control_answers_allowed_keys_only(robot_file, keys, tmp_path, caplog):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    extra = (
        f"control:\n  address: {address}\n"
        "  curve: {secret_key: keys/robot.key_secret, clients: clients}\n"
    )
    path = robot_file(bars=0, rate=300, extra=extra)  # paths are relative to the robot file
    robot = LiveRobot(load_robot(path), RunOptions(duration_s=20))
    thread = threading.Thread(target=robot.run)
    thread.start()
    mine = {"key": keys["me"], "server_key": keys["server_key"]}
    try:
        assert wait_for(lambda: robot.status.get("seq", 0) > 1)
        reply = send_command(address, "status", **mine)
        assert reply["ok"] and reply["status"]["robot"] == "fast-robot"
        stranger = {"key": keys["stranger"], "server_key": keys["server_key"]}
        with (
            caplog.at_level(logging.WARNING, logger="roboframe.curve"),
            pytest.raises(RoboframeError, match="no answer from"),
        ):
            send_command(address, "stop", timeout=0.5, **stranger)
        assert "refused a client with an unknown CURVE key" in caplog.text
        with pytest.raises(RoboframeError, match="no answer from"):  # no CURVE at all
            _plain(address)
        assert not robot.kernel.stop_reason and thread.is_alive()  # neither reached the loop
        proc = roboframe_cmd(
            "ctl", address, "status", "--key", str(keys["me"]), "--server-key",
            str(keys["server_key"]),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    finally:
        send_command(address, "stop", **mine)
        thread.join(30)
    assert not thread.is_alive()


def _plain(address: str) -> None:
    """A REQ without CURVE on a CURVE endpoint: the handshake fails, no answer."""
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 500)
    sock.setsockopt(zmq.SNDTIMEO, 500)  # a REQ with no peer past the handshake never sends
    try:
        sock.connect(address)
        sock.send(b'{"command": "stop"}')
        sock.recv()
    except zmq.Again:
        raise RoboframeError(f"no answer from {address}") from None
    finally:
        sock.close()


def test_curve_market_data_reaches_allowed_subscribers_only(keys, tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    instruments = {"Si-12.26": None}
    events = [bar("Si-12.26", m, 92000 + m) for m in range(20)]
    server = load_server_keys(keys["server_secret"], keys["clients"], "test publisher")

    def feed_for(secret) -> ZmqFeed:
        params = {"address": address, "curve": {"secret_key": str(secret), "server_key": "s.key"}}
        shutil.copy(keys["server_key"], tmp_path / "s.key")
        return ZmqFeed(params, instruments, base_dir=tmp_path)

    stop = threading.Event()
    got: dict[str, list[bytes]] = {"me": [], "stranger": []}

    def subscribe(who: str, feed: ZmqFeed) -> None:
        for raw in feed.messages(stop):
            got[who].append(raw)

    threads = [
        threading.Thread(target=subscribe, args=("me", feed_for(keys["me"]))),
        threading.Thread(target=subscribe, args=("stranger", feed_for(keys["stranger"]))),
    ]
    for t in threads:
        t.start()
    try:
        sent = publish(events, address, wait_s=1.5, curve=server)
        assert sent == 20
        assert wait_for(lambda: len(got["me"]) >= 1, timeout=5)
        assert wait_for(lambda: _count(got["me"]) == 20, timeout=5)
        assert got["stranger"] == []
    finally:
        stop.set()
        for t in threads:
            t.join(5)


def _count(raws: list[bytes]) -> int:
    from roboframe.core import codec
    from roboframe.core.events import Batch

    n = 0
    for raw in raws:
        msg = codec.decode(raw)
        n += len(msg.events) if isinstance(msg, Batch) else 1
    return n


def test_a_feed_with_a_missing_key_file_is_a_config_error(tmp_path):
    params = {"curve": {"secret_key": "no.key_secret", "server_key": "no.key"}}
    with pytest.raises(ConfigError, match="cannot read CURVE secret key"):
        ZmqFeed(params, {"Si-12.26": None}, base_dir=tmp_path)


def test_curve_order_path_serves_allowed_robots_only(keys, tmp_path, pg_url):
    """The exchange's fast-path ROUTER as a CURVE server: a robot with an allowed key
    gets its order acknowledged; one with an unknown key reaches nothing."""
    from roboframe.core import codec
    from roboframe.core.events import NewOrder, OrderUpdate
    from roboframe.curve import make_client
    from roboframe.exchange import ExchangeProcess

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    server_keys = load_server_keys(keys["server_secret"], keys["clients"], "test exchange")
    stop, ready = threading.Event(), threading.Event()
    exchange = ExchangeProcess(
        pg_url, "tcp://127.0.0.1:1", orders_address=address, orders_curve=server_keys
    )
    thread = threading.Thread(target=exchange.run, args=(stop, ready))
    thread.start()
    ctx = zmq.Context()
    try:
        assert ready.wait(15)

        def order_from(name, secret):
            dealer = ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.IDENTITY, name.encode())
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.RCVTIMEO, 3000)
            make_client(dealer, secret, keys["server_key"], "test robot")
            dealer.connect(address)
            dealer.send(codec.encode([NewOrder(f"{name}-r1-1", "Si-12.26", "buy", 1)]))
            try:
                return codec.decode(dealer.recv())
            except zmq.Again:
                return None
            finally:
                dealer.close()

        answer = order_from("friend", keys["me"])
        answer = answer.events[0] if hasattr(answer, "events") else answer
        assert isinstance(answer, OrderUpdate) and answer.status == "accepted"
        assert order_from("stranger", keys["stranger"]) is None
        assert exchange.counts["orders"] == 1  # the stranger's order never got in
    finally:
        stop.set()
        thread.join(15)
        ctx.destroy(linger=0)


def test_keys_generate_into_an_impossible_folder_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("in the way")
    proc = roboframe_cmd("keys", "generate", "--dir", str(tmp_path / "file" / "keys"))
    assert proc.returncode == 2
    assert "--dir: cannot write keys in" in proc.stderr and "Traceback" not in proc.stderr


def test_an_ipc_socket_is_created_owner_only_whatever_the_umask(tmp_path):
    """Not chmodded after the bind (a moment when any local user could connect
    and send ``stop``): made 0600 by the bind itself; the umask is given back."""
    import os

    from roboframe.curve import bind_owner_only

    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    old = os.umask(0)  # the most open a trader's shell could have
    try:
        bind_owner_only(sock, f"ipc://{tmp_path / 'control.sock'}")
        assert stat.S_IMODE((tmp_path / "control.sock").stat().st_mode) == 0o600
        assert os.umask(0) == 0
    finally:
        os.umask(old)
        sock.close()
        ctx.term()
