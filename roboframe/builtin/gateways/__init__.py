"""Built-in gateways: the embedded paper exchange and the ZeroMQ fast path."""

from __future__ import annotations

from roboframe.builtin.paper import PaperGateway
from roboframe.builtin.zmqgw import FastGateway
from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_gateways(register):
    register("paper", PaperGateway)
    register("zmq", FastGateway)
