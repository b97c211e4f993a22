"""pytest fixtures for roboframe users (registered through ``pytest11``)."""

from __future__ import annotations

import pytest

from roboframe.testing.helpers import make_spec


@pytest.fixture
def robot_spec():
    """Build a validated RobotSpec from keyword sections over a small default robot."""
    return make_spec
