"""Built-in gateways: the embedded paper exchange."""

from __future__ import annotations

from roboframe.builtin.paper import PaperGateway
from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_gateways(register):
    register("paper", PaperGateway)
