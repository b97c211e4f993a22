"""What ``roboframe ps`` shows of a robot, from the status it answers."""

from __future__ import annotations

from roboframe.supervisor import events_rate


def test_no_rate_in_a_robots_first_second():
    """Just (re)started, a robot's status said a few events over a few milliseconds
    of uptime: ``ps`` showed 1,000.0 events/s after every restart."""
    assert events_rate({"uptime_s": 0.004, "process_events": 4, "seq": 9000}) is None
    assert events_rate({}) is None


def test_the_rate_is_this_process_events_over_its_uptime():
    assert events_rate({"uptime_s": 4.0, "process_events": 80, "seq": 9000}) == 20.0
    assert events_rate({"uptime_s": 2.0, "seq": 30}) == 15.0  # an older robot's status
