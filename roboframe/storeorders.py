"""``roboframe orders``: a robot's open orders in its order store, and
cancelling them without the robot.

A robot that is down -- stopped by a strategy error, crashed, its host gone --
leaves its orders working at the exchange. The store is the source of truth,
so this reads them there and, asked to, writes a cancel request for each, the
way the robot itself would: the exchange process (or a broker bridge) answers
them, and the robot learns of the cancels when it runs again (its trade
stream catches up from the store), like cancels made at the broker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roboframe.errors import ConfigError, RoboframeError
from roboframe.store.base import StoredOrder, StoreUnavailable, open_store

log = logging.getLogger(__name__)

POLL_S = 0.2
FINISHED_LOOKBACK = 10_000  # newest finished orders searched for one just cancelled


@dataclass
class Target:
    """Where to look: a store URL, the robot whose orders (None: every robot's),
    and its instruments when a robot file named them (for prices)."""

    url: str
    robot: str | None
    instruments: dict


def resolve(target: str, robot: str | None, state_dir: Path | None = None) -> Target:
    """``target`` is an order store URL, a robot file whose gateway names one, or
    (with ``state_dir``) the name of a robot that ``roboframe up`` runs."""
    if "://" in target:
        return Target(target, robot, {})
    from roboframe.builtin.storegw import StoreGateway
    from roboframe.control import is_bare_name, supervised_robot
    from roboframe.plugins import get_registry

    path = Path(target)
    if state_dir is not None and is_bare_name(target) and not path.exists():
        path = Path(supervised_robot(target, state_dir)["file"])
    name, plugin, params, instruments = _robot_fields(path)
    if robot not in (None, name):
        raise ConfigError(f"--robot {robot!r}: {target} is robot {name!r}")
    gateway = get_registry().lookup("gateways", plugin).obj
    if not issubclass(gateway, StoreGateway):
        raise ConfigError(
            f"{target}: robot {name!r} trades through the {plugin!r} gateway, not an order "
            "store: its orders live in its own process (the paper exchange) or at its "
            "broker, not in a store this command can reach"
        )
    url = gateway(params, instruments, robot=name).store_url()
    return Target(url, name, instruments)


def _robot_fields(path: Path) -> tuple[str, str, dict, dict]:
    """The robot's name, gateway plugin and params, and instruments. A robot file
    that does not validate -- its trader is fixing the strategy that stopped it --
    is read for those fields alone, as ``ctl`` reads it for its address: its
    orders must still be reachable."""
    from roboframe.config import load_robot
    from roboframe.config.yamlload import raw_mapping
    from roboframe.core.instruments import instruments_from_config

    try:
        spec = load_robot(path)
    except ConfigError as exc:
        data = raw_mapping(path) or {}
        gateway = data.get("gateway")
        if not (
            isinstance(data.get("name"), str)
            and isinstance(gateway, dict)
            and isinstance(gateway.get("plugin"), str)
            and isinstance(gateway.get("params", {}), dict)
        ):
            raise
        try:
            instruments = instruments_from_config(data.get("symbols") or {})
        except (TypeError, ValueError, ArithmeticError, AttributeError):
            instruments = {}
        log.warning("%s\n(the file does not validate; its name and gateway are used)", exc)
        return data["name"], gateway["plugin"], dict(gateway.get("params") or {}), instruments
    return spec.name, spec.gateway.plugin, dict(spec.gateway.params), dict(spec.symbols)


class Orders:
    """One connection to the store, for reading open orders and cancelling them."""

    def __init__(self, target: Target) -> None:
        self.target = target
        try:
            self.store = open_store(target.url)
            self.store.setup()
        except StoreUnavailable as exc:
            raise RoboframeError(f"order store {target.url}: cannot reach it: {exc}") from None

    def close(self) -> None:
        self.store.close()

    def open(self) -> list[StoredOrder]:
        """The open orders of the target robot (of every robot without one), oldest first."""
        robot = self.target.robot
        return [o for o in self._read(self.store.open_orders) if robot in (None, o.robot)]

    def cancel(self, robot: str, client_ids: list[str]) -> None:
        """A cancel request for each of ``robot``'s orders ``client_ids``, as the
        robot would write it, whether or not the store holds the order yet."""
        now = time.time_ns()
        for cid in client_ids:
            self._read(lambda c=cid: self.store.request_cancel(robot, c, now))

    def wait_finished(self, client_ids: list[str], timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for each of ``client_ids`` to be in the
        store and finished (cancelled, filled, rejected); those that are not then."""
        deadline = time.monotonic() + timeout
        while True:
            open_ids = {o.order.client_id for o in self.open()}
            finished = set(self._read(lambda: self.store.recent_finished(FINISHED_LOOKBACK)))
            left = [cid for cid in client_ids if cid in open_ids or cid not in finished]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(POLL_S)

    def _read(self, call: Any) -> Any:
        try:
            return call()
        except StoreUnavailable as exc:
            raise RoboframeError(f"order store {self.target.url}: {exc}") from None

    # -- output -----------------------------------------------------------------

    def row(self, stored: StoredOrder) -> dict:
        order = stored.order
        inst = self.target.instruments.get(order.symbol)
        if order.type != "limit":
            price: Any = None
        elif inst is not None:
            price = str(inst.to_price(order.price))
        else:
            price = f"{order.price} ticks"
        return {
            "robot": stored.robot,
            "client_id": order.client_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "filled": stored.filled,
            "type": order.type,
            "price": price,
            "status": stored.status,
        }


def format_rows(rows: list[dict]) -> str:
    """The rows as an aligned table, or a line saying there are none."""
    if not rows:
        return "no open orders"
    heads = ["robot", "client_id", "symbol", "side", "qty", "filled", "type", "price", "status"]
    cells = [[("" if r[h] is None else str(r[h])) for h in heads] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
