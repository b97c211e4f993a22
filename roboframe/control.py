"""The client side of a robot's control endpoint (``roboframe ctl``)."""

from __future__ import annotations

import json
from pathlib import Path

import zmq

from roboframe.errors import ConfigError, RoboframeError


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(assignments: tuple[str, ...] | list[str]) -> dict:
    args = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {item!r}")
        args[key] = _parse_value(value)
    return args


def control_address(target: str) -> str:
    if "://" in target:
        return target
    from roboframe.config import load_robot

    spec = load_robot(Path(target))
    if not spec.control.address:
        raise ConfigError(f"{target}: the robot has no control.address")
    return spec.control.address


def send_command(target: str, command: str, assignments=(), *, timeout: float = 3.0) -> dict:
    """Send one command; return the robot's JSON reply."""
    address = control_address(target)
    request = {"command": command, "args": parse_assignments(assignments)}
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    try:
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        return json.loads(sock.recv())
    except zmq.Again:
        raise RoboframeError(f"no answer from {address} within {timeout:g}s") from None
    finally:
        sock.close()
