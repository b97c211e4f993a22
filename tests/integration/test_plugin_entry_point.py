"""A third-party plugin found through a real ``roboframe`` entry point."""

from __future__ import annotations

import json
import textwrap

import pytest

from .conftest import roboframe_cmd

PLUGIN = """
from roboframe import Bar, Feed, RiskCheck, Strategy, hookimpl


class Alternator(Strategy):
    version = "2.5"
    params_schema = {
        "type": "object",
        "properties": {"qty": {"type": "integer", "minimum": 1, "default": 1}},
        "additionalProperties": False,
    }

    def on_bar(self, bar, ctx):
        target = self.params["qty"] if bar.close % 2 else -self.params["qty"]
        return ctx.order_target(bar.symbol, target)


class StepFeed(Feed):
    params_schema = {"type": "object", "properties": {"bars": {"type": "integer"}},
                     "additionalProperties": False}

    def events(self):
        for i in range(self.params.get("bars", 10)):
            for symbol in sorted(self.instruments):
                p = 1000 + i
                yield Bar(symbol, 1_795_000_000_000_000_000 + i * 60_000_000_000, p, p, p, p, 0)


@hookimpl
def roboframe_register_strategies(register):
    register("alternator", Alternator)


@hookimpl
def roboframe_register_feeds(register):
    register("steps", StepFeed)


class EvenCloses(RiskCheck):  # new orders only on bars whose close is even: a house rule

    def check(self, order, view):
        last = view.last_price(order.symbol)
        return None if last % 2 == 0 else f"odd close {last}"


@hookimpl
def roboframe_register_risk_checks(register):
    register("even-closes", EvenCloses)
"""

ROBOT = """\
name: alt
symbols:
  Si-12.26: {tick_size: 1}
feed: {plugin: steps, params: {bars: 40}}
strategy: {plugin: alternator, params: {qty: 2}}
gateway: {plugin: paper}
journal: {dir: %s}
"""


def install(tmp_path, module: str, source: str, entry: str, version: str = "1.0"):
    """A tiny installed distribution: its module plus a dist-info with a
    ``roboframe`` entry point, found by importlib.metadata on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir()
    name = module.replace("_", "-")
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[roboframe]\n{entry} = {module}\n")
    return site


@pytest.fixture
def plugin_path(tmp_path):
    return install(tmp_path, "rf_alternator", textwrap.dedent(PLUGIN), "alternator", "0.3.0")


def test_plugins_lists_the_entry_point(plugin_path):
    proc = roboframe_cmd("plugins", "--json", env={"PYTHONPATH": str(plugin_path)})
    assert proc.returncode == 0, proc.stderr
    listing = {p["name"]: p for p in json.loads(proc.stdout)}
    assert listing["alternator"]["version"] == "0.3.0"
    assert listing["alternator"]["strategies"] == ["alternator"]
    assert listing["alternator"]["feeds"] == ["steps"]
    assert listing["alternator"]["risk_checks"] == ["even-closes"]
    assert "sma-crossover" in listing["roboframe.builtin.strategies"]["strategies"]


def test_robot_runs_with_the_plugin_strategy_and_feed(plugin_path, tmp_path):
    robot = tmp_path / "alt.yaml"
    robot.write_text(ROBOT % (tmp_path / "runs"))
    env = {"PYTHONPATH": str(plugin_path)}
    proc = roboframe_cmd("validate", str(robot), env=env)
    assert proc.returncode == 0, proc.stderr
    proc = roboframe_cmd("-q", "run", str(robot), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["events"] >= 42
    assert summary["orders"] >= 2
    # without the plugin installed, the same file is a config error naming the plugin
    proc = roboframe_cmd("validate", str(robot))
    assert proc.returncode == 2
    assert "unknown" in proc.stderr and "steps" in proc.stderr


def test_a_plugin_risk_check_refuses_live_and_in_backtest_alike(plugin_path, tmp_path):
    robot = tmp_path / "alt.yaml"
    robot.write_text(ROBOT % (tmp_path / "runs") + "risk:\n  checks:\n    - plugin: even-closes\n")
    env = {"PYTHONPATH": str(plugin_path)}
    proc = roboframe_cmd("-q", "run", str(robot), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    live = json.loads(proc.stdout)
    assert live["orders"] >= 1 and live["rejections"] >= 10  # every bar with an odd close
    assert live["last_rejection"].startswith("risk: even-closes: odd close ")
    proc = roboframe_cmd("-q", "backtest", str(robot), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    bt = json.loads(proc.stdout)
    assert (bt["orders"], bt["rejections"]) == (live["orders"], live["rejections"])
    for journal in (live["journal"], bt["journal"]):
        proc = roboframe_cmd("replay", journal, "--verify", env=env)
        assert proc.returncode == 0, proc.stderr


def test_broken_plugin_fails_with_its_name(tmp_path):
    site = install(tmp_path, "rf_broken", "raise ImportError('missing dependency zzz')\n", "broken")
    proc = roboframe_cmd("plugins", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert "plugin 'broken' (entry point 'rf_broken') failed to load" in proc.stderr
    assert "missing dependency zzz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "broken  BROKEN: plugin 'broken'" in proc.stdout  # listed beside the others
    assert "sma-crossover" in proc.stdout
    proc = roboframe_cmd("plugins", "--json", env={"PYTHONPATH": str(site)})
    listing = {p["name"]: p for p in json.loads(proc.stdout)}
    assert "missing dependency zzz" in listing["broken"]["error"]
    assert listing["broken"]["strategies"] == []


BROKEN_LATE = """
from roboframe import Strategy, hookimpl


class Fine(Strategy):
    pass


@hookimpl
def roboframe_register_strategies(register):
    register("fine-but-left-out", Fine)  # registered before the failure: forgotten too
    raise KeyError("settings")
"""


@pytest.mark.parametrize(
    "source",
    ["raise ImportError('missing dependency zzz')\n", textwrap.dedent(BROKEN_LATE)],
    ids=["import", "registration"],
)
def test_a_broken_plugin_leaves_the_robots_that_do_not_use_it_alone(tmp_path, source):
    """One broken package must not stop every robot and command: a robot that
    does not use it validates, backtests and takes ctl commands (its control
    address is read); one naming what it would have registered is refused with
    a hint naming it."""
    site = install(tmp_path, "rf_broken", source, "broken")
    env = {"PYTHONPATH": str(site)}
    robot = tmp_path / "si.yaml"
    robot.write_text(
        "name: si\nsymbols:\n  Si-12.26: {tick_size: 1}\n"
        "feed: {plugin: synthetic, params: {bars: 200, seed: 1, prices: {Si-12.26: 92000}}}\n"
        "strategy: {plugin: sma-crossover}\ngateway: {plugin: paper}\n"
        f"journal: {{dir: {tmp_path / 'runs'}}}\n"
    )
    proc = roboframe_cmd("validate", str(robot), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "plugin 'broken'" in proc.stderr and "left out" in proc.stderr
    proc = roboframe_cmd("-q", "backtest", str(robot), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["events"] == 200
    proc = roboframe_cmd("ctl", str(robot), "flatten", "--timeout", "0.2", env=env)
    assert proc.returncode == 1
    assert f"no answer from ipc://{tmp_path / 'runs'}/control.sock" in proc.stderr
    other = tmp_path / "other.yaml"
    other.write_text(robot.read_text().replace("sma-crossover", "fine-but-left-out"))
    proc = roboframe_cmd("validate", str(other), env=env)
    assert proc.returncode == 2
    assert "unknown strategy 'fine-but-left-out'" in proc.stderr
    assert "; plugin(s) 'broken' failed to load" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_misspelt_hook_fails_with_the_plugin_name(tmp_path):
    source = (
        "from roboframe import hookimpl\n"
        "@hookimpl\n"
        "def roboframe_register_strategys(register):\n"
        "    pass\n"
    )
    site = install(tmp_path, "rf_typo", source, "typo")
    proc = roboframe_cmd("plugins", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1
    assert "plugin 'typo'" in proc.stderr
    assert "roboframe_register_strategys" in proc.stderr


COMMAND_PLUGIN = """
import click
from roboframe import hookimpl


@click.command()
@click.argument("who")
def greet(who):
    '''Say hello (a plugin's command).'''
    click.echo(f"hello {who}")


@hookimpl
def roboframe_register_commands(register):
    register("greet", greet)
"""


def test_a_plugin_adds_a_command(tmp_path):
    site = install(tmp_path, "rf_greet", COMMAND_PLUGIN, "greet")
    env = {"PYTHONPATH": str(site)}
    proc = roboframe_cmd("greet", "trader", env=env)
    assert (proc.returncode, proc.stdout) == (0, "hello trader\n"), proc.stderr
    proc = roboframe_cmd("--help", env=env)
    assert "greet" in proc.stdout and "Say hello" in proc.stdout
    assert roboframe_cmd("greet", "x").returncode == 2  # not installed: no such command


def test_a_plugin_command_cannot_take_a_core_name(tmp_path):
    """The core name is left out, said; the plugin's other commands stay (all of
    them were lost)."""
    source = COMMAND_PLUGIN.replace(
        'register("greet", greet)', 'register("greet", greet)\n    register("run", greet)'
    )
    site = install(tmp_path, "rf_greet", source, "greet")
    env = {"PYTHONPATH": str(site)}
    proc = roboframe_cmd("--help", env=env)
    assert "plugin 'greet' registered command 'run', which is roboframe's own" in proc.stderr
    assert "greet" in proc.stdout
    proc = roboframe_cmd("validate", "robots/si.yaml", env=env)  # the core's commands still work
    assert proc.returncode == 0, proc.stderr
    proc = roboframe_cmd("greet", "trader", env=env)
    assert (proc.returncode, proc.stdout) == (0, "hello trader\n"), proc.stderr
    assert "registered command 'run'" in proc.stderr
    proc = roboframe_cmd("nosuch", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_plugin_command_that_raises_is_one_line_naming_it(tmp_path):
    source = COMMAND_PLUGIN.replace('click.echo(f"hello {who}")', "raise OSError('no printer')")
    site = install(tmp_path, "rf_greet", source, "greet")
    proc = roboframe_cmd("greet", "trader", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "command 'greet' (plugin greet) raised OSError: no printer (rf_greet.py:" in proc.stderr


FAULTY = """
import os

from roboframe import Feed, Gateway, Strategy, hookimpl
from roboframe.builtin.feeds.synthetic import SyntheticFeed
from roboframe.builtin.gateways import PaperGateway

BREAK = os.environ.get("RF_BREAK", "")


class Picky(Strategy):
    def __init__(self, params):
        super().__init__(params)
        if BREAK == "strategy":
            self.limit = params["limit"]


class Steps(SyntheticFeed):
    @classmethod
    def preflight(cls, params, base_dir):
        if BREAK == "preflight":
            raise KeyError("path")
        if BREAK == "preflight-shape":  # one string, not (path, message, hint)
            return ["path: file missing"]
        if BREAK == "preflight-dotted":  # a path as a string: feed.params.p.a.t.h
            return [("path", "file missing", None)]
        return super().preflight(params, base_dir)

    def __init__(self, params, instruments, *, base_dir=None):
        super().__init__(params, instruments, base_dir=base_dir)
        if BREAK == "feed":
            raise KeyError("url")

    def events(self):
        import msgspec

        for n, event in enumerate(super().events()):
            if BREAK == "data" and n == 50:
                raise ValueError("line 51 is not JSON")
            if n == 50 and BREAK == "float":  # a price not in whole ticks
                event = msgspec.structs.replace(event, open=event.open + 0.5)
            elif n == 50 and BREAK == "none":  # ended the backtest there, without a word
                event = None
            elif n == 50 and BREAK == "dict":
                event = {"symbol": event.symbol, "ts": event.ts, "close": event.close}
            elif n == 50 and BREAK == "seconds":  # a time in seconds
                event = msgspec.structs.replace(event, ts=event.ts // 10**9)
            elif n == 50 and BREAK == "upside-down":
                event = msgspec.structs.replace(event, high=event.low - 1)
            yield event


class Broker(PaperGateway):
    def open(self, runtime):
        if BREAK == "gateway":
            raise ConnectionRefusedError("broker at 127.0.0.1:1 refused")
        super().open(runtime)

    def submit(self, actions):
        if BREAK == "submit":
            raise ConnectionError("broker down")
        super().submit(actions)


@hookimpl
def roboframe_register_strategies(register):
    register("picky", Picky)


@hookimpl
def roboframe_register_feeds(register):
    register("steps2", Steps)


@hookimpl
def roboframe_register_gateways(register):
    register("broker", Broker)


@hookimpl
def roboframe_robot_start(robot, run_id, journal_path):
    if BREAK == "hook":
        raise RuntimeError("audit log unreachable")
"""

FAULTY_ROBOT = """\
name: faulty
symbols:
  Si-12.26: {tick_size: 1}
feed: {plugin: steps2, params: {bars: 200, seed: 1, prices: {Si-12.26: 92000}, rate: 0}}
strategy: {plugin: picky}
gateway: {plugin: broker}
journal: {dir: runs}
"""


@pytest.mark.parametrize(
    ("fault", "commands", "said", "code"),
    [
        ("strategy", ("validate", "run", "backtest"),
         "strategy 'picky' (plugin faulty) on start raised KeyError: 'limit' (rf_faulty.py:15",
         3),
        ("feed", ("run", "backtest"),
         "feed 'steps2' (plugin faulty) on start raised KeyError: 'url' (rf_faulty.py:", 1),
        ("preflight", ("validate", "run", "backtest"),
         "feed 'steps2' (plugin faulty) checking its params raised KeyError: 'path'", 1),
        ("gateway", ("run",), "gateway 'broker' (plugin faulty) opening raised "
         "ConnectionRefusedError: broker at 127.0.0.1:1 refused (rf_faulty.py:", 1),
        ("hook", ("run",), "the roboframe_robot_start hook (plugin faulty) raised RuntimeError: "
         "audit log unreachable (rf_faulty.py:", 1),
        ("preflight-shape", ("validate", "run", "backtest"), "feed 'steps2' (plugin faulty): "
         "preflight returned 'path: file missing'; expected (field path, message, hint)", 1),
        ("data", ("backtest",), "feed 'steps2' (plugin faulty) reading its data raised "
         "ValueError: line 51 is not JSON (rf_faulty.py:", 1),
        # what the live loop's socket refuses, a backtest refuses too: it stopped with a
        # traceback, or wrote a journal no replay could read
        ("float", ("backtest",), "feed 'steps2' (plugin faulty): its event 51 does not "
         "pass as one on the wire (Expected `int`, got `float`", 1),
        ("dict", ("backtest",), "feed 'steps2' (plugin faulty): its event 51 is a dict, "
         "not a Bar or Tick", 1),
        ("none", ("backtest",), "feed 'steps2' (plugin faulty): its event 51 is a NoneType, "
         "not a Bar or Tick", 1),
        ("seconds", ("backtest",), "feed 'steps2' (plugin faulty): its event 51 has a "
         "time in 1970", 1),
        ("upside-down", ("backtest",), "feed 'steps2' (plugin faulty): its event 51 is an "
         "inconsistent bar", 1),
    ],
)  # fmt: skip
def test_a_plugin_that_raises_is_named_with_its_line_not_a_traceback(
    tmp_path, fault, commands, said, code
):
    """A plugin's own bug outside the strategy's handlers -- in a constructor,
    a preflight, a gateway's open, a start hook, a feed's data -- ends the
    command with one line naming the plugin and the line that raised, and a
    run that never started leaves no journal behind."""
    site = install(tmp_path, "rf_faulty", textwrap.dedent(FAULTY), "faulty")
    (tmp_path / "faulty.yaml").write_text(FAULTY_ROBOT)
    env = {"PYTHONPATH": str(site), "RF_BREAK": fault}
    for command in commands:
        proc = roboframe_cmd("-q", command, "faulty.yaml", env=env, cwd=tmp_path)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert said in proc.stderr, proc.stderr
        assert proc.returncode == (1 if command == "validate" else code), proc.stderr
        if command == "validate":
            assert "faulty.yaml: ok" not in proc.stdout
        if command == "run":
            assert not list(tmp_path.glob("runs/*.journal"))
    proc = roboframe_cmd("-q", "backtest", "faulty.yaml", env={"PYTHONPATH": str(site)},
                         cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # the same plugin, not broken


def test_a_preflight_problem_path_may_be_a_dotted_string(tmp_path):
    """``("path", ...)`` was taken as the keys p, a, t, h."""
    site = install(tmp_path, "rf_faulty", textwrap.dedent(FAULTY), "faulty")
    (tmp_path / "faulty.yaml").write_text(FAULTY_ROBOT)
    env = {"PYTHONPATH": str(site), "RF_BREAK": "preflight-dotted"}
    proc = roboframe_cmd("-q", "backtest", "faulty.yaml", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "feed.params.path: file missing" in proc.stderr, proc.stderr


def test_a_gateway_whose_submit_raises_stops_the_robot_in_a_line(tmp_path):
    """A traceback through the loop, and again at every --resume."""
    site = install(tmp_path, "rf_faulty", textwrap.dedent(FAULTY), "faulty")
    (tmp_path / "faulty.yaml").write_text(
        FAULTY_ROBOT.replace("plugin: picky", "plugin: sma-crossover")
    )
    env = {"PYTHONPATH": str(site), "RF_BREAK": "submit"}
    for args in (("run", "faulty.yaml"), ("run", "faulty.yaml", "--resume")):
        proc = roboframe_cmd("-q", *args, env=env, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert (
            "gateway 'broker' (plugin faulty) sending orders" in proc.stderr
            and "raised ConnectionError: broker down (rf_faulty.py:" in proc.stderr
        ), proc.stderr


NEEDY = """
from roboframe import Strategy, hookimpl


class Needy(Strategy):
    params_schema = {
        "type": "object",
        "required": ["threshold"],
        "properties": {
            "threshold": {"type": "integer", "description": "ticks to act on"},
            "qty": {"type": "integer", "default": 1, "description": "lots"},
        },
        "additionalProperties": False,
    }


@hookimpl
def roboframe_register_strategies(register):
    register("needy", Needy)
"""


def test_new_writes_a_strategys_params_and_leaves_the_required_ones_to_set(tmp_path):
    """`new --strategy X` with a param X requires and gives no default said
    "nothing was written" and pointed at a line of the file it had removed."""
    site = install(tmp_path, "rf_needy", textwrap.dedent(NEEDY), "needy")
    env = {"PYTHONPATH": str(site)}
    proc = roboframe_cmd("new", "n", "--dir", str(tmp_path), "--strategy", "needy", env=env)
    assert proc.returncode == 0, proc.stderr
    robot = tmp_path / "n.yaml"
    assert f"next: set strategy.params.threshold in {robot} (required, no default)" in proc.stdout
    text = robot.read_text()
    assert "    threshold: null  # SET ME (required): ticks to act on" in text
    assert "    qty: 1  # lots" in text
    assert roboframe_cmd("validate", str(robot), env=env).returncode == 2
    robot.write_text(text.replace("threshold: null", "threshold: 5"))
    proc = roboframe_cmd("validate", str(robot), env=env)
    assert proc.returncode == 0, proc.stderr


def test_the_plugin_guides_own_example_runs_and_backtests(tmp_path):
    """docs/plugins.md's complete example, installed as written: its feed stamped
    bars in 1970 and sent each symbol's bars after the other's, which a backtest
    refuses, and no test ran it."""
    from .conftest import ROOT

    guide = (ROOT / "docs" / "plugins.md").read_text()
    source = guide.split("`roboframe_meanrev.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    site = install(tmp_path, "roboframe_meanrev", source, "meanrev", "0.1.0")
    robot = tmp_path / "mr.yaml"
    robot.write_text(
        "name: mr\nsymbols:\n  Si-12.26: {tick_size: 1}\n  RTS-12.26: {tick_size: 10}\n"
        "feed: {plugin: steps, params: {bars: 60}}\n"
        "strategy: {plugin: meanrev, params: {band: 30}}\n"
        f"gateway: {{plugin: paper}}\njournal: {{dir: {tmp_path / 'runs'}}}\n"
    )
    env = {"PYTHONPATH": str(site)}
    for command in ("run", "backtest"):
        proc = roboframe_cmd("-q", command, str(robot), "--json", env=env)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["orders"] > 10, command  # it trades every step past the band
        proc = roboframe_cmd("replay", out["journal"], "--verify", env=env)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("float", "its event 51 does not pass as one on the wire"),
        ("seconds", "its event 51 has a time in 1970"),
        ("upside-down", "its event 51 is an inconsistent bar"),
    ],
)
def test_a_plugin_feeds_bad_event_is_dropped_and_named_in_a_live_run(tmp_path, fault, said):
    """What a backtest refuses, a live run took: a bar whose high is under its low
    reached the strategy and the paper exchange without a word. Live input, it is
    dropped, counted and named as the backtest names it; the run goes on."""
    site = install(tmp_path, "rf_faulty", textwrap.dedent(FAULTY), "faulty")
    (tmp_path / "faulty.yaml").write_text(FAULTY_ROBOT)
    env = {"PYTHONPATH": str(site), "RF_BREAK": fault}
    proc = roboframe_cmd("run", "faulty.yaml", "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["malformed"] == {"bad event": 1}
    assert f"feed 'steps2' (plugin faulty): {said}" in proc.stderr
    assert summary["stop_reason"] == "feed ended"
    assert (
        roboframe_cmd("replay", summary["journal"], "--verify", env=env, cwd=tmp_path).returncode
        == 0
    )


def test_replay_names_a_risk_check_whose_code_changed(plugin_path, tmp_path):
    """A check's new code refuses otherwise: its old journals diverged on replay
    with nothing said of why (strategies had their version and source hash)."""
    robot = tmp_path / "alt.yaml"
    robot.write_text(ROBOT % (tmp_path / "runs") + "risk:\n  checks:\n    - plugin: even-closes\n")
    env = {"PYTHONPATH": str(plugin_path)}
    proc = roboframe_cmd("-q", "backtest", str(robot), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    journal = json.loads(proc.stdout)["journal"]
    assert roboframe_cmd("replay", journal, "--verify", env=env).returncode == 0
    module = plugin_path / "rf_alternator.py"
    module.write_text(module.read_text().replace("last % 2 == 0", "last % 3 == 0"))
    proc = roboframe_cmd("replay", journal, "--verify", env=env)
    assert proc.returncode == 1
    assert "warning: risk check even-closes's source changed since the journal" in proc.stderr
    assert "pass --force to verify anyway" in proc.stderr
