"""Risk checks from plugins: registered by a hook, listed in the robot file,
run after the built-in limits on new orders only, failing closed."""

from __future__ import annotations

import types

import pytest

from roboframe.config import spec_from_dict
from roboframe.core.events import Cancel, Control, OrderUpdate
from roboframe.core.kernel import Kernel
from roboframe.core.riskcheck import RiskCheck
from roboframe.errors import ConfigError, PluginError
from roboframe.plugins import build_plugin_manager, build_registry, hookimpl
from roboframe.risk.hours import TradingHours
from roboframe.testing.helpers import BASE_ROBOT, T0, bar

from .test_kernel import SI, Scripted


class NoShorts(RiskCheck):
    """Refuses a sell that would leave the robot short; counts its calls."""

    params_schema = {
        "type": "object",
        "properties": {"floor": {"type": "integer", "default": 0}},
        "additionalProperties": False,
    }
    calls = 0

    def check(self, order, view):
        type(self).calls += 1
        pending = sum(o.qty for o in view.open_orders(order.symbol) if o.side == "sell")
        after = view.position(order.symbol) - pending - order.qty
        if order.side == "sell" and after < self.params["floor"]:
            return f"would be short {after} at {view.time}"
        return None


class Boom(RiskCheck):
    def check(self, order, view):
        raise RuntimeError("no data")


class Always(RiskCheck):
    def check(self, order, view):
        return "always"


def registry_with(**checks):
    plugin = types.SimpleNamespace(
        __name__="test-checks",
        roboframe_register_risk_checks=hookimpl(
            lambda register: [register(n.replace("_", "-"), c) for n, c in checks.items()]
        ),
    )
    return build_registry(build_plugin_manager(extra=[plugin]))


def kernel(script, checks, registry, **risk):
    raw = {**BASE_ROBOT, "risk": {**risk, "checks": checks}}
    spec = spec_from_dict(raw, registry=registry)
    strategy = Scripted(script)
    k = Kernel(spec, "r1", strategy, registry)
    k.handle(Control("start", T0))
    return k, strategy


def reasons(k):
    return [u.reason for u in k.take_rejected()]


def test_a_check_refuses_with_its_name_and_reads_the_robots_state():
    reg = registry_with(no_shorts=NoShorts)
    k, strat = kernel(lambda b, ctx: [ctx.sell(SI, 1)], [{"plugin": "no-shorts"}], reg)
    assert k.handle(bar(SI, 1, 100)) == []
    (reason,) = reasons(k)
    assert reason == f"risk: no-shorts: would be short -1 at {bar(SI, 1, 100).ts}"
    assert strat.updates[-1].status == "rejected"
    # the defaults of its params_schema were filled in, as for any plugin
    assert k.spec.risk.checks[0].params == {"floor": 0}


def test_checks_run_in_order_after_the_limits_and_never_on_cancels():
    reg = registry_with(no_shorts=NoShorts, always=Always)
    NoShorts.calls = 0
    order = {}

    def script(b, ctx):
        if b.close == 100:
            return [ctx.buy(SI, 9)]  # over max_order_qty: the checks are not asked
        if b.close == 101:
            order["own"] = ctx.buy(SI, 1)
            return [order["own"]]
        return [ctx.cancel(order["own"])]

    checks = [{"plugin": "no-shorts", "params": {"floor": -5}}, {"plugin": "always"}]
    k, _ = kernel(script, checks, reg, max_order_qty=5)
    k.handle(bar(SI, 1, 100))
    assert reasons(k) == ["risk: quantity 9 exceeds max_order_qty 5"]
    assert NoShorts.calls == 0
    k.handle(bar(SI, 2, 101))
    assert reasons(k) == ["risk: always: always"]  # no-shorts let it through first
    assert NoShorts.calls == 1
    # a cancel is not a new order: it passes whatever the checks say
    k.orders.add(order["own"], T0)  # as if it had gone out
    k.handle(OrderUpdate(order["own"].client_id, T0, "accepted"))
    assert k.handle(bar(SI, 3, 102)) == [Cancel(order["own"].client_id)]


def test_a_check_that_raises_refuses_the_order(caplog):
    reg = registry_with(boom=Boom)
    k, _ = kernel(lambda b, ctx: [ctx.buy(SI, 1)], [{"plugin": "boom"}], reg)
    assert k.handle(bar(SI, 1, 100)) == []
    assert reasons(k) == ["risk: boom: the check raised RuntimeError: no data"]
    assert "risk check boom raised RuntimeError: no data (test_risk_checks.py:" in caplog.text
    assert "Traceback" not in caplog.text
    for n in range(2, 1002):  # said once, then every 1000th time: not once per order
        k.handle(bar(SI, n, 100))
    assert len(reasons(k)) == 1000 and k.risk.check_errors == {"boom": 1001}
    assert caplog.text.count("risk check boom raised") == 2


class SaysBool(RiskCheck):
    """Answers True for "fine" (or False): not None or a reason."""

    answer = True

    def check(self, order, view):
        return SaysBool.answer


@pytest.mark.parametrize("answer", [True, False, 1])
def test_a_check_that_returns_neither_none_nor_a_reason_refuses_and_says_why(
    caplog, monkeypatch, answer
):
    """``return order.qty <= 5``: True refused every order as "says-bool: True",
    without a word, and False let every order through."""
    monkeypatch.setattr(SaysBool, "answer", answer)
    reg = registry_with(says_bool=SaysBool)
    k, _ = kernel(lambda b, ctx: [ctx.buy(SI, 1)], [{"plugin": "says-bool"}], reg)
    assert k.handle(bar(SI, 1, 100)) == []
    said = f"the check returned {answer!r}, not None (to pass) or a reason (a str)"
    assert reasons(k) == [f"risk: says-bool: {said}"]
    assert f"risk check says-bool returned {answer!r}, not None" in caplog.text


def test_unknown_check_and_bad_params_are_config_errors():
    reg = registry_with(no_shorts=NoShorts)
    with pytest.raises(ConfigError, match=r"risk.checks\[0\].plugin: must be one of: no-shorts"):
        spec_from_dict({**BASE_ROBOT, "risk": {"checks": [{"plugin": "no-short"}]}}, registry=reg)
    bad = {"checks": [{"plugin": "no-shorts", "params": {"floor": "low"}}]}
    with pytest.raises(ConfigError, match=r"risk.checks\[0\].params.floor"):
        spec_from_dict({**BASE_ROBOT, "risk": bad}, registry=reg)


def test_a_registered_check_must_subclass_riskcheck():
    with pytest.raises(PluginError, match=r"not a subclass of roboframe\.RiskCheck"):
        registry_with(odd=object)


MSK = 3 * 3600 * 10**9
MON = 1_795_996_800 * 10**9  # 2026-11-30T00:00:00Z, a Monday
HOUR, MINUTE = 3600 * 10**9, 60 * 10**9


def at(day: int, hh: int, mm: int, tz_ns: int = MSK) -> int:
    """UTC ns of local time hh:mm on day (0 = Monday) in a zone tz_ns east of UTC."""
    return MON + day * 24 * HOUR + hh * HOUR + mm * MINUTE - tz_ns


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (at(0, 9, 59), False),
        (at(0, 10, 0), True),  # a session includes its start
        (at(0, 18, 49), True),
        (at(0, 18, 50), False),  # and excludes its end
        (at(0, 19, 4), False),
        (at(0, 19, 5), True),
        (at(4, 23, 49), True),  # Friday evening
        (at(5, 12, 0), False),  # Saturday
        (at(6, 12, 0), False),  # Sunday
    ],
)
def test_trading_hours_moex_sessions_in_moscow_time(when, open_):
    hours = TradingHours({"sessions": ["10:00-18:50", "19:05-23:50"], "tz": "MSK"}, {})
    assert hours.open_at(when) is open_


def test_trading_hours_across_midnight_by_the_day_a_session_starts():
    hours = TradingHours({"sessions": ["22:00-02:00"], "tz": "UTC", "days": ["fri"]}, {})
    assert hours.open_at(at(4, 23, 0, 0))  # Friday night
    assert hours.open_at(at(5, 1, 59, 0))  # Saturday small hours: Friday's session
    assert not hours.open_at(at(5, 2, 0, 0))
    assert not hours.open_at(at(5, 23, 0, 0))  # Saturday's own session: not a trading day
    assert not hours.open_at(at(4, 1, 0, 0))  # Friday small hours: Thursday's session


def test_trading_hours_refuses_new_orders_out_of_session_by_event_time():
    from roboframe.plugins import get_registry

    reg = get_registry()
    checks = [{"plugin": "trading-hours", "params": {"sessions": ["10:00-18:50"], "tz": "MSK"}}]
    k, _ = kernel(lambda b, ctx: [ctx.buy(SI, 1)], checks, reg)
    k.handle(bar(SI, 0, 100))  # T0 is 10:00 UTC: 13:00 in Moscow
    assert reasons(k) == []
    late = bar(SI, 6 * 60, 100)  # 16:00 UTC: 19:00 in Moscow
    assert k.handle(late) == []
    assert reasons(k) == ["risk: trading-hours: outside trading hours (10:00-18:50 MSK)"]


def test_validate_names_the_risk_checks(tmp_path):
    from tests.integration.conftest import ROOT, roboframe_cmd

    text = (ROOT / "robots" / "si.yaml").read_text()
    text = text.replace(
        "  price_band_pct: 5",
        "  price_band_pct: 5\n  checks:\n"
        "    - {plugin: trading-hours, params: {sessions: ['10:00-18:50'], tz: MSK}}",
    )
    (tmp_path / "si.yaml").write_text(text.replace("dir: runs/si-trend", f"dir: {tmp_path}"))
    proc = roboframe_cmd("validate", str(tmp_path / "si.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("gateway paper, risk checks trading-hours)")


def test_trading_hours_closed_on_holidays():
    hours = TradingHours(
        {"sessions": ["10:00-18:50", "22:00-02:00"], "tz": "MSK", "closed": ["2026-12-01"]}, {}
    )
    assert hours.open_at(at(0, 12, 0))  # Monday 30 November
    assert not hours.open_at(at(1, 12, 0))  # Tuesday 1 December: closed
    assert not hours.open_at(at(1, 23, 0))  # its evening session does not start either
    assert hours.open_at(at(1, 1, 0))  # Monday's evening session runs into it
    assert not hours.open_at(at(2, 1, 0))  # but Tuesday's would have: none
    assert hours.open_at(at(2, 12, 0))  # Wednesday
