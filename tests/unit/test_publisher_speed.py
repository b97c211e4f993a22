"""``--speed`` of ``roboframe feed publish``: what a trader may type, and what is refused."""

from __future__ import annotations

import pytest

from roboframe.publisher import parse_speed


@pytest.mark.parametrize(
    ("text", "speed"), [("10x", 10.0), ("0.5x", 0.5), ("2", 2.0), ("max", None), ("0x", None)]
)
def test_speeds(text, speed):
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["nan", "nanx", "inf", "infx", "-1x", "fast", "1e999x"])
def test_a_speed_that_is_no_pace_is_refused(text):
    """``nan`` and ``inf`` used to pass and publish unpaced, like ``max``, while the
    trader believed the file was being played at some pace."""
    with pytest.raises(ValueError):
        parse_speed(text)
