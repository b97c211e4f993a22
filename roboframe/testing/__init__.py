"""Helpers for testing strategies and plugins against the real kernel.

Installed as a pytest plugin (entry point ``pytest11``), so plugin authors
get the fixtures without copying them::

    def test_my_strategy(robot_spec):
        spec = robot_spec(strategy={"plugin": "my_pkg:MyStrategy", "params": {}})
        kernel, outputs = run_events(spec, [bar("Si-12.26", 1, 92000), ...])
"""

from roboframe.testing.helpers import bar, fill, make_spec, run_events, tick

__all__ = ["bar", "fill", "make_spec", "run_events", "tick"]
