"""The ``roboframe`` command. Thin: every command calls into the package.

Exit codes: 0 done; 1 the run failed (plugin error, feed, gateway, I/O);
2 the robot file or the command line is wrong; 3 the strategy raised (the
error names the event; resuming meets it again until the strategy is fixed);
4 another process answers at the robot's control endpoint (the robot runs
already).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from roboframe.errors import (
    ConfigError,
    EndpointInUse,
    PluginError,
    RoboframeError,
    StrategyError,
    described,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STRATEGY = 3
EXIT_RUNNING = 4
EXIT_SUSPENDED = 5  # run: ended on SIGHUP, as asked, for `run --resume` to go on with it

log = logging.getLogger(__name__)


class ConfigExit(click.ClickException):
    """A config problem: printed as is, exit code 2, no traceback."""

    exit_code = EXIT_CONFIG

    def show(self, file=None) -> None:
        click.echo(self.format_message(), err=True)


def _fail(exc: RoboframeError) -> click.ClickException:
    if isinstance(exc, EndpointInUse):
        err = ConfigExit(str(exc))
        err.exit_code = EXIT_RUNNING
        return err
    if isinstance(exc, ConfigError):
        return ConfigExit(str(exc))
    err = click.ClickException(str(exc))
    err.exit_code = EXIT_STRATEGY if isinstance(exc, StrategyError) else EXIT_FAILED
    return err


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING - 10 * verbose + 10 * quiet
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(logging.DEBUG, min(logging.CRITICAL, level)))


def _verbosity(func):
    """``-v``/``-q`` after the command too: ``roboframe run robot.yaml -q``."""

    def more(ctx: click.Context, param: click.Parameter, value: int) -> int:
        if value:
            ctx.obj[param.name] = ctx.obj.get(param.name, 0) + value
            _setup_logging(ctx.obj["verbose"], ctx.obj["quiet"])
        return value

    func = click.option(
        "-v",
        "--verbose",
        "verbose",
        count=True,
        expose_value=False,
        callback=more,
        help="More log output.",
    )(func)
    return click.option(
        "-q", "--quiet", "quiet", count=True, expose_value=False, callback=more, help="Less output."
    )(func)


def _blamed_command(command: click.Command, what: str) -> click.Command:
    """``command``, whose exceptions other than click's and ours end it in one line
    naming ``what`` and the line that raised."""
    if getattr(command, "_blamed", False):
        return command
    invoke = command.invoke

    def blamed_invoke(ctx: click.Context) -> Any:
        try:
            return invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except RoboframeError as exc:
            raise _fail(exc) from None
        except Exception as exc:
            raise _fail(PluginError(f"{what} raised {described(exc)}")) from None

    command.invoke = blamed_invoke
    command._blamed = True
    return command


class _Commands(click.Group):
    """The core's commands, then those plugins register (looked up only when a
    name is not the core's, so a broken plugin cannot stop ``run``)."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        """The plugins' commands but one named as a core command (said, and left
        out: the plugin's others stay), each raising in one line, not a traceback."""
        from roboframe.plugins import get_registry

        out = {}
        for name, entry in get_registry().commands.items():
            if name in self.commands:
                click.echo(
                    f"warning: plugin {entry.plugin!r} registered command {name!r}, which is "
                    "roboframe's own: left out",
                    err=True,
                )
                continue
            out[name] = _blamed_command(entry.obj, f"command {name!r} (plugin {entry.plugin})")
        return out

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            extra = self._plugin_commands()
        except RoboframeError as exc:
            click.echo(f"warning: plugin commands not listed: {exc}", err=True)
            extra = {}
        return sorted([*self.commands, *extra])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        try:
            return self._plugin_commands().get(name)
        except RoboframeError as exc:
            raise _fail(exc) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less output: no progress, errors only.")
@click.version_option(package_name="roboframe")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Run deterministic, journaled trading robots declared in YAML."""
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    _setup_logging(verbose, quiet)


@main.command()
@click.argument("robot_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the run's journal goes (default: the robot file's journal.dir).",
)
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the robot's last run if it did not stop (after a crash).",
)
@click.option(
    "--finish",
    is_flag=True,
    help="Stop the robot's last run if it did not stop (after a crash), as a stop would "
    "have: resumed under the robot file its journal holds, even if the file changed "
    "since, then stopped at once (open_orders_on_stop applies). Nothing new starts.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port (overrides metrics.port; 0: any free port).",
)
@_verbosity
@click.pass_context
def run(
    ctx: click.Context,
    robot_file: Path,
    journal_dir: Path | None,
    duration: float | None,
    as_json: bool,
    resume: bool,
    finish: bool,
    metrics_port: int | None,
) -> None:
    """Run a robot until its feed ends, --duration passes, or Ctrl-C."""
    from roboframe.config import load_robot
    from roboframe.console import Progress, format_summary
    from roboframe.core.robot import LiveRobot, RunOptions

    if finish and (resume or duration is not None):
        raise ConfigExit("--finish stops the last run at once: not with --resume or --duration")
    quiet = ctx.obj["quiet"] > 0
    progress = None if quiet else Progress()
    robot = None
    asked: list[int] = []  # signals come before the robot is made, too (a supervisor's)

    def interrupted(signum, _frame):
        if robot is None:  # still loading: a stop ends it before it trades, a SIGHUP waits
            if signum != signal.SIGHUP:
                raise _StoppedEarly("interrupted" if signum == signal.SIGINT else "terminated")
            asked.append(signum)
        elif signum == signal.SIGHUP:  # ended to be resumed (roboframe up: Supervisor._stop)
            robot.request_unfinished("ended to be resumed (SIGHUP), as its supervisor does")
        else:
            robot.request_stop("interrupted" if signum == signal.SIGINT else "terminated")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, interrupted) for s in signals}
    try:
        spec = load_robot(robot_file)
        if finish:
            spec = _last_run_spec(spec, robot_file, journal_dir)
            if spec is None:
                _restore(old)
                click.echo(f"{robot_file}: its last run stopped: nothing to finish", err=True)
                return
        if metrics_port is not None:  # on the spec, not in raw: the config hash stays
            spec = dataclasses.replace(
                spec, metrics=dataclasses.replace(spec.metrics, port=metrics_port)
            )
        robot = LiveRobot(
            spec,
            RunOptions(
                journal_dir=journal_dir,
                duration_s=duration,
                on_progress=progress,
                resume=resume or finish,
            ),
        )
        if finish:  # as the loop starts, before any message (what the store held comes in
            # the stop's drain, and the resume's resends went before)
            robot.request_stop("finished: the last run stopped as a stop would have")
    except RoboframeError as exc:
        _restore(old)
        raise _fail(exc) from None
    except _StoppedEarly as exc:
        _restore(old)
        if progress is not None:
            progress.done()
        click.echo(f"{robot_file}: stopped ({exc}) before its start: nothing ran", err=True)
        return
    for signum in asked:
        interrupted(signum, None)
    try:
        summary = robot.run()
    except RoboframeError as exc:
        raise _fail(exc) from None
    finally:
        _restore(old)
        if progress is not None:
            progress.done()
    # a run the strategy, the data or the order gateway broke is not a clean end
    failed = summary["error"] or summary["state"] == "FAILED"
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    elif not quiet or failed:
        click.echo(format_summary(summary))
    if failed:
        ctx.exit(EXIT_STRATEGY if summary["error"] else EXIT_FAILED)
    if summary["state"] == "SUSPENDED":  # not a clean end either: the run goes on
        ctx.exit(EXIT_SUSPENDED)


def _last_run_spec(spec: Any, robot_file: Path, journal_dir: Path | None) -> Any:
    """For ``run --finish``: the robot as its last run had it, when that run did
    not stop -- from its journal's header (relative paths from ``robot_file``'s
    folder, as the file's own), so the resume takes it whatever the file says
    now. None when the last run stopped, or never started."""
    from roboframe.config import spec_from_dict
    from roboframe.core.resume import unfinished_run
    from roboframe.core.robot import JOURNAL_SUFFIX

    found = unfinished_run(Path(journal_dir or spec.journal.dir), JOURNAL_SUFFIX)
    if found is None:
        return None
    path, header = found
    if header.get("robot") != spec.name:  # the resume refuses it, in these words
        return spec
    if header.get("config_hash") == spec.config_hash:
        return spec
    if not isinstance(header.get("config"), dict):  # a journal of another writer
        raise ConfigError(
            f"{path}: its header holds no robot file to finish the run under; put back "
            f"the file it ran with and stop it with `roboframe run {robot_file} --resume`"
        )
    log.warning("%s: finishing the run under the robot file it started with", path)
    return spec_from_dict(header["config"], source=str(robot_file))


class _StoppedEarly(BaseException):
    """A stop signal while ``run`` still loads its robot: it ends there, before the
    robot trades (a BaseException, as KeyboardInterrupt: no plugin's handler takes it)."""


def _restore(handlers: dict) -> None:
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@main.command()
@click.argument("robot_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="[SYMBOL=]FILE",
    help="History (CSV); repeat for several files. Default: the robot's own feed.",
)
@click.option(
    "--from",
    "start",
    metavar="DATE",
    help="First time to use (ISO-8601; without an offset in the data's zone).",
)
@click.option("--to", "end", metavar="DATE", help="Last time to use (a date includes its day).")
@click.option("--cash", type=str, help="Initial cash (default: backtest.cash or 1000000).")
@click.option(
    "--fill-at",
    type=click.Choice(["next", "close"]),
    help="Market orders fill at the next price or at this bar's close.",
)
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the journal goes (default: the robot file's journal.dir).",
)
@click.option("--no-journal", is_flag=True, help="Do not write a journal.")
@click.option("--trades", "show_trades", is_flag=True, help="Also list every trade.")
@click.option("--json", "as_json", is_flag=True, help="Print statistics as one JSON object.")
@_verbosity
@click.pass_context
def backtest(
    ctx: click.Context,
    robot_file: Path,
    data: tuple[str, ...],
    start: str | None,
    end: str | None,
    cash: str | None,
    fill_at: str | None,
    journal_dir: Path | None,
    no_journal: bool,
    show_trades: bool,
    as_json: bool,
) -> None:
    """Backtest a robot: its own kernel over history, through the paper exchange."""
    from decimal import Decimal, InvalidOperation

    from roboframe.backtest import run_backtest
    from roboframe.backtest.stats import order_counts
    from roboframe.config import load_robot
    from roboframe.console import format_orders, format_stats, format_trades

    quiet = ctx.obj["quiet"] > 0

    def progress(events: int) -> None:
        if not quiet:
            click.echo(f"... {events:,} market events", err=True)

    try:
        amount = Decimal(cash) if cash is not None else None
    except InvalidOperation:
        raise ConfigExit(f"--cash: {cash!r} is not a number") from None
    if amount is not None and not (amount.is_finite() and amount > 0):
        raise ConfigExit(f"--cash: must be a positive amount, got {cash}")
    try:
        spec = load_robot(robot_file)
        result = run_backtest(
            spec,
            data=list(data),
            start=start,
            end=end,
            cash=amount,
            fill_at=fill_at,
            journal_dir=journal_dir,
            journal=not no_journal,
            progress=progress,
            keep_trades=show_trades,
        )
    except RoboframeError as exc:
        raise _fail(exc) from None
    stats = {**result.stats, **order_counts(result.kernel)}
    if as_json:
        out = {
            **stats,
            "robot": spec.name,
            "journal": result.journal,
            "elapsed_s": round(result.elapsed_s, 3),
        }
        if show_trades:
            out["trade_list"] = result.trades
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    rate = stats["events"] / result.elapsed_s if result.elapsed_s else 0
    click.echo(format_stats(stats, title=f"{spec.name}: backtest ({rate:,.0f} events/s)"))
    if show_trades:
        click.echo(format_trades(result.trades))
    click.echo(format_orders(stats))
    if result.journal:
        click.echo(f"journal    {result.journal}")


@main.command()
@click.argument("journals", nargs=-1, required=True)
@click.option(
    "--db",
    default="analysis.db",
    show_default=True,
    help="Analysis database: a file (SQLite), postgresql://... or mongodb://...",
)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write HTML.")
@click.option("--json", "as_json", is_flag=True, help="Print every run's statistics as JSON.")
@click.option("--store", "store_url", help="Order store URL to reconcile fills against.")
@click.option("--robot", help="With --store: the robot whose runs to reconcile (default: all).")
@_verbosity
@click.pass_context
def analyze(
    ctx: click.Context,
    journals: tuple[str, ...],
    db: str,
    report: Path | None,
    as_json: bool,
    store_url: str | None,
    robot: str | None,
) -> None:
    """Replay journals (files, folders, globs) into an analysis database."""
    from roboframe.analyze import analyze as run_analysis
    from roboframe.analyze import journal_paths
    from roboframe.console import format_orders, format_stats

    if robot and not store_url:
        raise ConfigExit("--robot selects runs to reconcile; give the order store with --store")
    paths = journal_paths(journals)
    if not paths:
        raise ConfigExit(f"no journals found in: {' '.join(journals)}")

    quiet = ctx.obj["quiet"] > 0

    def shown(run) -> None:
        if as_json:
            return
        if quiet:  # the database has the tables; a difference with the store is still said
            if run.reconciliation:
                click.echo(f"{run.robot} {run.run_id}: {_reconciliation_text(run.reconciliation)}")
            return
        state = "" if run.complete else ", strategy error" if run.failure else ", still running"
        title = f"{run.robot} {run.run_id} ({run.mode}{state})"
        click.echo(format_stats(run.stats, title=title))
        click.echo(format_orders(run.stats))
        if run.reconciliation is not None:
            click.echo(_reconciliation_text(run.reconciliation))
        click.echo()

    try:
        result = run_analysis(paths, db=db, store_url=store_url, robot=robot, on_run=shown)
        if report is not None:
            from roboframe.analyze.report import write_report
            from roboframe.plugins import get_registry

            sections = sorted((n, r.obj) for n, r in get_registry().report_sections.items())
            write_report(report, result.runs, sections)
    except RoboframeError as exc:
        raise _fail(exc) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in result.problems:
        click.echo(f"error: {problem}", err=True)
    if as_json:
        out = [
            {
                "robot": r.robot,
                "run_id": r.run_id,
                "mode": r.mode,
                "journal": r.journal,
                "journal_key": r.key,
                "complete": r.complete,
                "stats": r.stats,
                **({"reconciliation": r.reconciliation} if r.reconciliation is not None else {}),
            }
            for r in result.runs
        ]
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        click.echo(f"{len(result.runs)} run(s) analysed into {db}", err=True)
        if report is not None:
            click.echo(f"report written to {report}", err=True)
    differences = sum(len(r.reconciliation or ()) for r in result.runs)
    if result.problems or differences:
        raise SystemExit(EXIT_FAILED)


def _reconciliation_text(differences: list[dict]) -> str:
    if not differences:
        return "reconciliation: store and journal agree"
    lines = [f"reconciliation: {len(differences)} difference(s)"]
    for d in differences:
        lines.append(f"  {d['kind']:<19} trade {d['trade_id']}: {d['detail']}")
    return "\n".join(lines)


@main.command()
@click.argument("journal_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--verify", is_flag=True, help="Check every action against the journal.")
@click.option(
    "--until",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="Print the robot's state after SEQ (not with --verify).",
)
@click.option("--force", is_flag=True, help="Verify even if the strategy has changed.")
@click.option(
    "--config",
    "show_config",
    is_flag=True,
    help="Print the robot file as the run had it (defaults filled in), to resume it "
    "(with --json: as JSON, for tools).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay(
    journal_file: Path,
    verify: bool,
    until: int | None,
    force: bool,
    show_config: bool,
    as_json: bool,
) -> None:
    """Replay a journal through a fresh kernel: verify it, or show state at any point."""
    from roboframe import replay as rp
    from roboframe.console import format_state

    if until is not None and verify:  # --until stops short: nothing after it is verified
        raise ConfigExit("--verify and --until: one at a time (--verify checks the whole journal)")
    if show_config and (verify or until is not None):
        raise ConfigExit("--config prints the run's robot file; not with --verify or --until")
    try:
        header = rp.robot_header(rp.JournalReader(journal_file))
        if show_config:
            click.echo(rp.robot_file_text(header, journal_file, as_json), nl=False)
            return
        changes = rp.strategy_changes(header)  # the state --until prints may not be the run's
        for change in changes:
            click.echo(f"warning: {change}", err=True)
        if until is not None:
            kernel, last, failure = rp.state_at(journal_file, until)
            if last < until and failure is None:
                click.echo(
                    f"note: the journal ends at seq {last}; the state shown is at its end",
                    err=True,
                )
            if failure is not None:
                click.echo(
                    f"note: the run stopped on a strategy error at seq {failure.seq}: "
                    f"{failure}; the state shown is where it stopped",
                    err=True,
                )
            state = {**kernel.snapshot(), "seq": last}
            click.echo(json.dumps(state, indent=2, default=str) if as_json else format_state(state))
            return
        if changes and verify and not force:
            click.echo(
                "the robot's code changed since this journal was written (said above); "
                "pass --force to verify anyway",
                err=True,
            )
            raise SystemExit(EXIT_FAILED)
        result = rp.verify(journal_file)
    except RoboframeError as exc:
        raise _fail(exc) from None
    if result.torn_tail is not None:
        tail = result.torn_tail
        click.echo(
            f"note: torn last frame ignored ({tail.size} bytes at byte {tail.offset}: {tail.why})",
            err=True,
        )
    if result.unjournaled:
        click.echo(
            f"note: the journal ends before the actions of its last {result.unjournaled} "
            "event(s) were written (the run stopped there; none of them was sent)",
            err=True,
        )
    if not result.ok:
        click.echo(f"{journal_file}: divergence at {result.divergence}", err=True)
        raise SystemExit(EXIT_FAILED)
    if result.failure is not None:
        click.echo(
            f"note: the run stopped on a strategy error at seq {result.failure.seq}, "
            f"and the replay raises it there too: {result.failure}",
            err=True,
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": True,
                    "events": result.events,
                    "actions_compared": result.compared,
                    "state": result.kernel.snapshot(),
                },
                indent=2,
                default=str,
            )
        )
        return
    what = "verified" if verify else "replayed"
    click.echo(
        f"{journal_file}: ok, {result.events:,} events {what}, "
        f"{result.compared:,} action records match "
        f"(robot {header['robot']}, run {header['run_id']})"
    )


@main.group()
def feed() -> None:
    """Market-data tools."""


@feed.command("publish")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--robot",
    "robot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Robot file whose symbols (tick sizes) a CSV SOURCE uses.",
)
@click.option("--bind", default="tcp://*:5561", show_default=True, help="PUB address.")
@click.option(
    "--speed", default="1x", show_default=True, help="Pace by event time: 10x, 0.5x, or max."
)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds to wait for subscribers before the first event.",
)
@click.option(
    "--drain",
    "drain_s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="At the end, seconds to wait for slow subscribers to take what is queued.",
)
@click.option(
    "--curve-secret-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: the publisher's secret key file (NAME.key_secret).",
)
@click.option(
    "--curve-clients",
    type=click.Path(file_okay=False, path_type=Path),
    help="CURVE: folder of the public keys (NAME.key) of the subscribers let in.",
)
def feed_publish(
    source: Path,
    robot_file: Path | None,
    bind: str,
    speed: str,
    wait_s: float,
    drain_s: float,
    curve_secret_key: Path | None,
    curve_clients: Path | None,
) -> None:
    """Publish SOURCE (a robot file's feed, or a CSV or Parquet file with --robot)
    on a PUB socket. SYMBOL=FILE reads a file of one instrument as that robot
    symbol's (an export naming it by its exchange ticker)."""
    from roboframe.backtest import feed_events
    from roboframe.config import load_robot
    from roboframe.curve import load_server_keys
    from roboframe.publisher import parse_speed, publish

    if (curve_secret_key is None) != (curve_clients is None):
        raise ConfigExit("CURVE needs both --curve-secret-key and --curve-clients")

    try:
        pace = parse_speed(speed)
    except ValueError:
        raise ConfigExit(f"--speed: {speed!r} is not 10x, 0.5x or max") from None
    try:
        curve = None
        if curve_secret_key is not None:
            curve = load_server_keys(curve_secret_key, curve_clients, "feed publish")
        if source.suffix in (".yaml", ".yml"):
            spec = load_robot(source)
            events = feed_events(spec, None)
        else:
            if robot_file is None:
                raise ConfigExit("a data file source needs --robot ROBOT_FILE for its symbols")
            spec = load_robot(robot_file)
            events = feed_events(spec, [str(source)])
        sent = publish(
            events,
            bind,
            speed=pace,
            wait_s=wait_s,
            drain_s=drain_s,
            on_bound=lambda a: click.echo(f"publishing on {a}", err=True),
            curve=curve,
        )
    except RoboframeError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise SystemExit(0) from None
    click.echo(f"published {sent:,} events", err=True)


@main.command()
@click.option(
    "--store",
    "store_url",
    required=True,
    envvar="ROBOFRAME_STORE_URL",
    help="Order store URL (postgresql://..., mongodb://...).",
)
@click.option(
    "--feed",
    "feed_address",
    default="tcp://127.0.0.1:5561",
    show_default=True,
    help="Market-data publisher to fill against.",
)
@click.option("--commission", default="0", show_default=True, help="Fee per lot per fill.")
@click.option("--slippage-ticks", type=int, default=0, show_default=True)
@click.option(
    "--fill-at",
    type=click.Choice(["next", "close"]),
    default="next",
    show_default=True,
    help="Market orders fill at the next price or the last close.",
)
@click.option(
    "--orders",
    "orders_address",
    metavar="ADDRESS",
    help="Also take orders straight from robots here (the zmq fast path).",
)
@click.option(
    "--orders-curve-secret-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: this exchange's NAME.key_secret for --orders.",
)
@click.option(
    "--orders-curve-clients",
    type=click.Path(file_okay=False, path_type=Path),
    help="CURVE: folder of the public keys of robots allowed to send orders.",
)
@click.option(
    "--feed-curve-secret-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: this exchange's NAME.key_secret for the --feed publisher.",
)
@click.option(
    "--feed-server-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: the publisher's public NAME.key.",
)
@click.option(
    "--max-ahead",
    default="24h",
    show_default=True,
    help="Drop market data stamped further ahead of this host's clock (5m, 1h; off: never).",
)
@_verbosity
def exchange(
    store_url: str,
    feed_address: str,
    commission: str,
    slippage_ticks: int,
    fill_at: str,
    orders_address: str | None,
    orders_curve_secret_key: Path | None,
    orders_curve_clients: Path | None,
    feed_curve_secret_key: Path | None,
    feed_server_key: Path | None,
    max_ahead: str,
) -> None:
    """Run a paper exchange process that serves every robot's orders from the store."""
    import threading
    from decimal import Decimal

    from roboframe import curve
    from roboframe.config.spec import parse_duration_ms
    from roboframe.exchange import ExchangeProcess

    if (orders_curve_secret_key is None) != (orders_curve_clients is None):
        raise ConfigExit("CURVE on --orders needs both --orders-curve-secret-key and -clients")
    if (feed_curve_secret_key is None) != (feed_server_key is None):
        raise ConfigExit("CURVE on --feed needs both --feed-curve-secret-key and --feed-server-key")
    try:
        ahead_ms = None if max_ahead == "off" else parse_duration_ms(max_ahead)
    except ValueError:
        raise ConfigExit(
            f"--max-ahead {max_ahead!r}: expected 5m, 1h, 24h, milliseconds or off"
        ) from None
    try:
        orders_curve = feed_curve = None
        if orders_curve_secret_key is not None:
            orders_curve = curve.load_server_keys(
                orders_curve_secret_key, orders_curve_clients, "exchange --orders"
            )
        if feed_curve_secret_key is not None:
            curve.load_secret(feed_curve_secret_key, "exchange --feed-curve-secret-key")
            curve.load_public(feed_server_key, "exchange --feed-server-key")
            feed_curve = (feed_curve_secret_key, feed_server_key)
    except RoboframeError as exc:
        raise _fail(exc) from None
    if orders_address and orders_address.startswith("tcp://") and orders_curve is None:
        click.echo(
            f"warning: orders on {orders_address} are not authenticated; any host that reaches "
            "it can send orders (--orders-curve-secret-key/--orders-curve-clients)",
            err=True,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    process = ExchangeProcess(
        store_url,
        feed_address,
        commission=Decimal(commission),
        slippage_ticks=slippage_ticks,
        fill_at=fill_at,
        orders_address=orders_address,
        orders_curve=orders_curve,
        feed_curve=feed_curve,
        max_ahead_ns=None if ahead_ms is None else ahead_ms * 1_000_000,
    )
    try:
        process.run(stop)
    except KeyboardInterrupt:
        stop.set()
    except RoboframeError as exc:
        raise _fail(exc) from None
    counts = process.counts | {"stale": process.engine.stale}
    said = ", ".join(f"{count:,} {what.replace('_', ' ')}" for what, count in counts.items())
    click.echo(f"exchange stopped: {said}", err=True)


@main.command()
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    default="robots",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the robot file (and its strategy module).",
)
@click.option(
    "--strategy",
    default="own",
    show_default=True,
    help="'own' writes a strategy module to edit; or a registered strategy (sma-crossover).",
)
@click.option("--symbol", default="Si-12.26", show_default=True, help="The symbol it trades.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def new(name: str, folder: Path, strategy: str, symbol: str, force: bool) -> None:
    """Write a new robot NAME that runs as is (synthetic market, paper exchange)."""
    from roboframe.config import load_robot
    from roboframe.scaffold import make_robot

    try:
        made = make_robot(
            name, folder, strategy=strategy, symbol=symbol, force=force, check=load_robot
        )
    except RoboframeError as exc:
        click.echo("nothing was written", err=True)
        raise _fail(exc) from None
    except OSError as exc:  # a folder that cannot be made or written
        raise ConfigExit(f"--dir {folder}: {exc.strerror or exc}; nothing was written") from None
    for path in (made.robot, made.module):
        if path is not None:
            click.echo(f"wrote {path}")
    if made.needs:  # it cannot run before they are set
        names = ", ".join(f"strategy.params.{n}" for n in made.needs)
        click.echo(f"next: set {names} in {made.robot} (required, no default); then run it")
        return
    click.echo(f"next: roboframe run {made.robot}")


@main.command()
@click.argument(
    "robot_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
def validate(robot_files: tuple[Path, ...]) -> None:
    """Check robot files: schema, cross-field rules, plugins, strategy params; and
    warn of what would stop a run on this machine (a data file that cannot be opened)."""
    from roboframe.config import load_robot
    from roboframe.config.checks import unlimited_positions
    from roboframe.core.feed import preflight_feed
    from roboframe.core.robot import make_strategy
    from roboframe.core.strategy import HANDLERS, uncalled_handlers
    from roboframe.plugins import get_registry

    bad = failed = 0
    for path in robot_files:
        try:
            spec = load_robot(path)
        except ConfigError as exc:
            bad += 1
            click.echo(str(exc), err=True)
            continue
        except RoboframeError as exc:
            bad += 1
            click.echo(f"{path}: {exc}", err=True)
            continue
        try:  # a strategy that refuses its params, or breaks, on start
            _, strategy_cls, _ = make_strategy(spec)
        except RoboframeError as exc:
            failed += 1
            click.echo(f"{path}: {exc}", err=True)
            continue
        unlimited = unlimited_positions(spec)
        if unlimited is not None:
            click.echo(f"warning: {path}: {unlimited}", err=True)
        for name in uncalled_handlers(strategy_cls):
            click.echo(
                f"warning: {path}: strategy {strategy_cls.__name__} has {name}(), which "
                f"roboframe never calls (its handlers: {', '.join(sorted(HANDLERS))})",
                err=True,
            )
        here = None  # what depends on this machine: said, not counted against the file
        try:
            preflight_feed(spec, get_registry())
        except ConfigError as exc:
            here = exc
        except RoboframeError as exc:  # a plugin's own bug: no "ok" before it
            failed += 1
            click.echo(f"{path}: {exc}", err=True)
            continue
        symbols = ", ".join(spec.symbols)
        checks = ", ".join(c.plugin for c in spec.risk.checks)
        click.echo(
            f"{path}: ok ({spec.name}: {spec.strategy.plugin} on {symbols}, "
            f"feed {spec.feed.plugin}, gateway {spec.gateway.plugin}"
            + (f", risk checks {checks})" if checks else ")")
        )
        if here is not None:
            what = "run and backtest (without --data) would stop"
            click.echo(f"warning: on this machine, {what}:\n{here}", err=True)
    if bad:
        raise SystemExit(EXIT_CONFIG)
    if failed:
        raise SystemExit(EXIT_FAILED)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List plugins, their versions and what each registers; a plugin that
    failed to load is listed with the reason, and the exit status is 1."""
    from roboframe.console import PLUGIN_KINDS, format_plugins
    from roboframe.plugins import get_registry

    try:
        registry = get_registry()
    except RoboframeError as exc:
        raise _fail(exc) from None
    listing = list(registry.plugins.values())
    for name, why in sorted(registry.broken.items()):
        broken = {"name": name, "version": "", "source": "", "error": why}
        listing.append(broken | {kind: [] for kind in PLUGIN_KINDS})
    if as_json:
        click.echo(json.dumps(listing, indent=2))
    else:
        click.echo(format_plugins(listing))
    if registry.broken:
        raise SystemExit(EXIT_FAILED)


@main.command()
@click.option(
    "--published",
    is_flag=True,
    help="Only built-ins and first-party plugins (schemas/robot.schema.json).",
)
def schema(published: bool) -> None:
    """Print the JSON Schema of robot files (core plus installed plugins)."""
    from roboframe.config import build_schema
    from roboframe.plugins import get_registry, published_registry

    try:
        registry = published_registry() if published else get_registry()
        click.echo(
            json.dumps(build_schema(registry, open_names=published), indent=2, sort_keys=True)
        )
    except RoboframeError as exc:
        raise _fail(exc) from None


def _seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """A wait in seconds: positive and finite. ZeroMQ reads a receive timeout of -1 ms
    as "wait forever" and refuses other negative ones, so ``--timeout -0.001`` hung
    and ``--timeout -1`` was a traceback."""
    if not (0 < value < 1e6):  # also false for nan
        raise click.BadParameter(f"{value:g} is not a number of seconds above 0 (e.g. 3)")
    return value


_STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs") / ".supervisor",
    show_default=True,
    help="The supervisor's folder: its socket, pid file and the robots' logs.",
)


@main.command()
@click.argument("target")
@click.argument("command")
@click.argument("assignments", nargs=-1)
@_STATE_DIR_OPTION
@click.option(
    "--timeout",
    type=float,
    default=3.0,
    show_default=True,
    callback=_seconds,
    help="Seconds to wait.",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: your secret key file (NAME.key_secret); needed for tcp://.",
)
@click.option(
    "--server-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CURVE: the robot's public key file (NAME.key).",
)
def ctl(
    target: str,
    command: str,
    assignments: tuple[str, ...],
    state_dir: Path,
    timeout: float,
    key: Path | None,
    server_key: Path | None,
) -> None:
    """Send COMMAND to a running robot's control endpoint.

    TARGET is a control address (ipc://..., tcp://...), a robot file (its
    control.address, by default ipc://<journal.dir>/control.sock) or the name of
    a robot that 'roboframe up' runs (asked of the supervisor in --state-dir). COMMAND is
    status, pause, resume, reduce, stop, flatten, cancel-all or set (with k=v
    arguments).
    """
    from roboframe.control import send_command

    try:
        reply = send_command(
            target,
            command,
            assignments,
            timeout=timeout,
            key=key,
            server_key=server_key,
            state_dir=state_dir,
        )
    except RoboframeError as exc:
        raise _fail(exc) from None
    click.echo(json.dumps(reply, indent=2, sort_keys=True))
    if not reply.get("ok"):
        raise SystemExit(EXIT_FAILED)


@main.group()
def keys() -> None:
    """CURVE keys for tcp:// control and market-data endpoints."""


@keys.command("generate")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default="keys",
    show_default=True,
    help="Folder to write the key files in.",
)
@click.option("--name", default="robot", show_default=True, help="Base name of the key files.")
def keys_generate(directory: Path, name: str) -> None:
    """Write a CURVE key pair: NAME.key (public) and NAME.key_secret (secret, mode 0600)."""
    from roboframe.curve import generate_keys

    try:
        public, secret = generate_keys(directory, name)
    except RoboframeError as exc:
        raise _fail(exc) from None
    click.echo(f"public key {public}  (give it to the other side)")
    click.echo(f"secret key {secret}  (mode 0600; keep it here)")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_STATE_DIR_OPTION
@click.option("--detach", is_flag=True, help="Run the supervisor in the background.")
@_verbosity
def up(folder: Path, state_dir: Path, detach: bool) -> None:
    """Run every robot file in FOLDER, one supervised process each."""
    from roboframe import supervisor as sv

    if detach:
        try:
            sv.prepare_state_dir(state_dir)
        except RoboframeError as exc:
            raise _fail(exc) from None
        log_file = open(state_dir / "supervisor.log", "ab")  # noqa: SIM115 -- the child's
        proc = subprocess.Popen(
            [sys.executable, "-m", "roboframe.cli", "up", str(folder), "--state-dir",
             str(state_dir)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        address = sv.supervisor_address(state_dir)
        for _ in range(100):
            if proc.poll() is not None:
                raise click.ClickException(
                    f"the supervisor exited at once; see {state_dir / 'supervisor.log'}"
                )
            try:  # ours: another supervisor at that folder answers too, and ours exits
                if sv.ask(address, "ps", timeout=0.2).get("pid") == proc.pid:
                    break
            except RoboframeError:
                pass
            time.sleep(0.05)
        else:
            raise click.ClickException(
                f"the supervisor (pid {proc.pid}) did not answer; see "
                f"{state_dir / 'supervisor.log'}"
            )
        click.echo(f"supervisor started (pid {proc.pid}); roboframe ps / roboframe down")
        return
    try:
        supervisor = sv.Supervisor(folder, state_dir)
        supervisor.bind()  # a supervisor already there is said before anything else
        click.echo(f"supervising {folder} (Ctrl-C or 'roboframe down' stops every robot)")
        supervisor.serve()
    except RoboframeError as exc:
        raise _fail(exc) from None


@main.command()
@_STATE_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ps(state_dir: Path, as_json: bool) -> None:
    """Each supervised robot: state, uptime, restarts, events/s, position, PnL."""
    from roboframe import supervisor as sv

    try:
        reply = sv.ask(sv.supervisor_address(state_dir), "ps")
    except RoboframeError as exc:
        raise _fail(exc) from None
    rows = sv.robot_rows(reply)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    else:
        click.echo(sv.format_ps(rows))


@main.command()
@click.argument("target")
@click.option("--robot", help="Only this robot's orders (a robot file names its own).")
@click.option("--cancel", is_flag=True, help="Cancel them: a cancel request each, in the store.")
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    callback=_seconds,
    help="With --cancel: seconds to wait for the exchange side to answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_STATE_DIR_OPTION
def orders(
    target: str, robot: str | None, cancel: bool, wait: float, as_json: bool, state_dir: Path
) -> None:
    """Open orders in an order store (TARGET: a robot file, a store URL, or the
    name of a robot 'roboframe up' runs).

    With --cancel, a robot's orders are cancelled without the robot: for a robot
    that is down (a strategy error, a crash) with orders still working. Exit 1
    when some are still open after --wait.
    """
    from roboframe.storeorders import Orders, format_rows, resolve

    try:
        where = resolve(target, robot, state_dir)
        if cancel and where.robot is None:
            raise ConfigError(
                "--cancel needs a robot: give its robot file or --robot NAME "
                "(a store URL alone would cancel every robot's orders)"
            )
        store = Orders(where)
        try:
            found = store.open()
            left = found
            if cancel and found:
                ids = [o.order.client_id for o in found]
                store.cancel(where.robot, ids)
                still = set(store.wait_finished(ids, wait))
                left = [o for o in found if o.order.client_id in still]
        finally:
            store.close()
    except RoboframeError as exc:
        raise _fail(exc) from None
    rows = [store.row(o) for o in (left if cancel else found)]
    if as_json:
        click.echo(
            json.dumps(
                {"cancelled": len(found) - len(left), "open": rows} if cancel else rows, indent=2
            )
        )
    elif not cancel:
        click.echo(format_rows(rows))
    elif not found:
        click.echo(f"robot {where.robot}: no open orders")
    else:
        click.echo(f"robot {where.robot}: {len(found) - len(left)} of {len(found)} orders closed")
    if cancel and left:
        click.echo(
            f"{len(left)} still open after {wait:g}s: is the exchange process (roboframe "
            f"exchange --store ...) or broker bridge running? The requests stay in the store.\n"
            + format_rows(rows),
            err=True,
        )
        raise SystemExit(EXIT_FAILED)


@main.command()
@click.argument("name", required=False)
@_STATE_DIR_OPTION
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait.")
def down(name: str | None, state_dir: Path, timeout: float) -> None:
    """Stop robot NAME cleanly, or every robot and the supervisor."""
    import time

    from roboframe import supervisor as sv

    address = sv.supervisor_address(state_dir)
    try:
        reply = sv.ask(address, "down", name)
    except RoboframeError as exc:
        raise _fail(exc) from None
    if not reply.get("ok"):
        raise _fail(RoboframeError(reply.get("error", "refused")))
    elsewhere = reply.get("elsewhere") or {}
    for other, path in sorted(elsewhere.items()):  # never said to be stopped: it was not
        click.echo(
            f"not stopped: {other} runs in a process this supervisor did not start "
            f"(`roboframe ctl {path} stop` stops it)",
            err=True,
        )
    if name is not None and name in elsewhere:
        raise SystemExit(EXIT_FAILED)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            robots = sv.ask(address, "ps", timeout=1.0)["robots"]
        except RoboframeError:
            if name is None:
                click.echo(f"stopped: {', '.join(reply['stopping']) or 'nothing was running'}")
                return
            raise
        left = [r for r in robots if r["name"] in reply["stopping"] and r["state"] == "stopping"]
        if not left and name is not None:
            click.echo(f"stopped: {name}")
            return
        time.sleep(0.2)
    raise _fail(RoboframeError(f"still stopping after {timeout:g}s"))


@main.command()
@click.argument("name")
@_STATE_DIR_OPTION
def start(name: str, state_dir: Path) -> None:
    """Start robot NAME again after `down NAME` (or a stop), under the running supervisor."""
    from roboframe import supervisor as sv

    try:
        reply = sv.ask(sv.supervisor_address(state_dir), "start", name)
    except RoboframeError as exc:
        raise _fail(exc) from None
    if not reply.get("ok"):
        raise _fail(RoboframeError(reply.get("error", "refused")))
    click.echo(f"starting: {name} (roboframe ps shows it)")


if __name__ == "__main__":  # pragma: no cover
    main()
