"""Built-in gateways: the embedded paper exchange and the ZeroMQ fast path."""

from __future__ import annotations

from collections.abc import Callable

from roboframe.builtin.paper import PaperGateway
from roboframe.builtin.zmqgw import FastGateway
from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_gateways(register: Callable[[str, type], None]) -> None:
    register("paper", PaperGateway)
    register("zmq", FastGateway)
