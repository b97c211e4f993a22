"""The daily-loss limit by trading days (weekends and holidays join the next
one, an evening start is the next date's) and the price band before a first
price; each with the rule older journals replay by."""

from __future__ import annotations

import datetime as dt

import pytest

from roboframe.core.events import Bar, Control, Fill, NewOrder
from roboframe.risk.calendar import TradingDays, epoch_day

from .test_kernel import SI, kernel_with

MSK = dt.timezone(dt.timedelta(hours=3))


def at(text: str) -> int:
    """A Moscow time "YYYY-MM-DD HH:MM" as UTC ns."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=MSK).timestamp()) * 10**9


def day(text: str) -> int:
    return epoch_day(text)


# 2026-11-20 is a Friday; 2026-11-23 a Monday
@pytest.mark.parametrize(
    ("when", "trading_day"),
    [
        ("2026-11-19 19:05", "2026-11-20"),  # Thursday evening: Friday's day
        ("2026-11-20 10:00", "2026-11-20"),
        ("2026-11-20 18:59", "2026-11-20"),
        ("2026-11-20 19:00", "2026-11-23"),  # Friday evening: Monday's day
        ("2026-11-21 12:00", "2026-11-23"),  # Saturday, Sunday: Monday's too
        ("2026-11-22 19:30", "2026-11-23"),
        ("2026-11-23 10:00", "2026-11-23"),
        ("2026-11-23 19:05", "2026-11-24"),
    ],
)
def test_moex_trading_days(when, trading_day):
    days = TradingDays("19:00 MSK")
    assert days.day_of(at(when)) == day(trading_day)


def test_a_morning_start_names_its_own_date_and_a_holiday_joins_the_next_day():
    days = TradingDays("07:00 MSK", closed=["2027-01-01", "2027-01-04"])
    assert days.day_of(at("2026-12-30 12:00")) == day("2026-12-30")
    assert days.day_of(at("2026-12-31 06:59")) == day("2026-12-30")
    assert days.day_of(at("2026-12-31 07:00")) == day("2026-12-31")
    # Friday 1 Jan closed, the weekend, Monday 4 Jan closed: all Tuesday's
    for when in ("2027-01-01 12:00", "2027-01-02 12:00", "2027-01-04 23:00"):
        assert days.day_of(at(when)) == day("2027-01-05"), when


def test_trading_days_may_include_the_weekend_and_every_day_is_the_old_rule():
    weekend = TradingDays("00:00 UTC", days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    old = TradingDays.every_day("19:00 MSK")
    for days in (weekend, old):
        seen = {days.day_of(at(f"2026-11-{d} 20:00")) for d in range(20, 24)}
        assert len(seen) == 4  # Friday to Monday evening: four days


# -- the kill switch across a weekend ----------------------------------------------


def _long_one(by_trading_days=True, **risk):
    kernel, strategy = kernel_with(risk={"max_daily_loss": 50, "day_starts": "19:00 MSK", **risk})
    kernel.risk.by_trading_days = by_trading_days  # as replay.follow_rules sets it
    start = at("2026-11-20 19:05")  # Friday evening: Monday's trading day
    kernel.handle(Control("start", start))
    kernel.orders.add(NewOrder("o1", SI, "buy", 1), start)
    kernel.handle(Bar(SI, start, 200, 200, 200, 200, 1))
    kernel.handle(Fill("o1", start, SI, "buy", 1, 200, "t1"))
    kernel.handle(Bar(SI, at("2026-11-20 23:49"), 170, 170, 170, 170, 1))  # -30
    return kernel, strategy


@pytest.mark.parametrize("by_trading_days", [True, False])
def test_fridays_evening_and_mondays_day_share_one_loss_limit(by_trading_days):
    """On MOEX Friday's evening session opens Monday's trading day: a loss of 30
    on Friday evening and 30 on Monday morning is 60 in one day, over 50. Each
    date a day of its own (the rule before, which older journals replay by),
    Monday started afresh from Friday's last price."""
    kernel, _ = _long_one(by_trading_days)
    kernel.handle(Bar(SI, at("2026-11-23 10:00"), 140, 140, 140, 140, 1))
    assert kernel.risk.state == ("HALTED" if by_trading_days else "ACTIVE")


def test_a_halt_for_the_day_lasts_over_the_weekend_to_mondays_evening():
    kernel, _ = _long_one(halt_lasts="day")
    kernel.handle(Bar(SI, at("2026-11-20 23:50"), 140, 140, 140, 140, 1))  # -60
    assert kernel.risk.state == "HALTED"
    kernel.handle(Bar(SI, at("2026-11-23 10:00"), 140, 140, 140, 140, 1))
    assert kernel.risk.state == "HALTED"  # the same trading day
    kernel.handle(Bar(SI, at("2026-11-23 19:05"), 140, 140, 140, 140, 1))
    assert kernel.risk.state == "ACTIVE"  # Tuesday's


def test_a_holiday_joins_the_next_trading_day():
    kernel, _ = _long_one(closed=["2026-11-23"])  # Monday closed: Friday evening is Tuesday's
    kernel.handle(Bar(SI, at("2026-11-23 20:00"), 140, 140, 140, 140, 1))  # Monday evening
    assert kernel.risk.state == "HALTED"


# -- the price band before a first price -------------------------------------------


@pytest.mark.parametrize("needs_price", [True, False])
def test_the_price_band_refuses_a_limit_price_before_the_first_price(needs_price):
    """A fat-fingered limit on start, before any price, went through unchecked."""
    kernel, _ = kernel_with(risk={"price_band_pct": 5})
    kernel.risk.band_needs_price = needs_price
    ctx = kernel.ctx
    sent = kernel._process([ctx.buy(SI, 1, price=10_000_000), ctx.buy(SI, 1)], 0)
    refused = [u.reason for u in kernel.take_rejected()]
    if needs_price:
        assert [a.type for a in sent] == ["market"]
        assert refused == [
            "risk: no price for Si-12.26 yet: the 5% price band has nothing to check a "
            "limit price against"
        ]
    else:
        assert len(sent) == 2 and refused == []
    kernel.handle(Bar(SI, at("2026-11-20 10:00"), 100, 100, 100, 100, 1))
    assert len(kernel._process([ctx.buy(SI, 1, price=104)], 0)) == 1
    assert kernel._process([ctx.buy(SI, 1, price=106)], 0) == []
