"""Many robots: ``roboframe up FOLDER`` runs one process per robot file.

The supervisor watches a folder of robot files. Each valid file is a robot,
run as ``roboframe run FILE --resume`` in a process of its own: a robot that
crashed (or was killed) comes back with its state rebuilt from its journal
and, with an order-store gateway, its fills caught up from the store, before
it trades again. Restarts back off (1 s, 2 s, 4 s ... up to a minute; the
count starts over after a minute of good running). A robot that stops by
itself (its feed ended, ``ctl stop``) stays stopped; a file that is not a
valid robot is reported and tried again when it changes. A robot whose
strategy raised (exit 3) is ``failed``, not restarted: resuming would meet
the same event and the same error, since a strategy is a pure function of
its events. It starts again when its file or its strategy's source changes. A new file is a
new robot, with no other settings; a file changed on disk restarts its
robot (cleanly) with the new definition; a removed file stops its robot. A
stop that comes too late for a run already ended to be resumed (SIGHUP) is
carried out on that run by ``roboframe run FILE --finish``.

``roboframe ps`` and ``roboframe down`` talk to the supervisor through an
ipc socket in its state folder (mode 0600). The supervisor is not on any
robot's hot path: each robot keeps its own loop, journal and control
endpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from roboframe.curve import bind_owner_only
from roboframe.errors import ConfigError, RoboframeError

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("runs") / ".supervisor"
SOCKET_NAME = "supervisor.sock"
LOCK_NAME = "supervisor.lock"
ROBOT_SUFFIXES = (".yaml", ".yml")
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
STABLE_S = 60.0  # a run this long resets the backoff
STOP_GRACE_S = 15.0  # SIGTERM, then SIGKILL after this long
EXIT_FAILED = 1  # roboframe run: its feed or order gateway broke it (resumable)
EXIT_CONFIG = 2  # roboframe run: the robot file is wrong
EXIT_STRATEGY = 3  # roboframe run: the strategy raised
EXIT_RUNNING = 4  # roboframe run: another process answers at its control endpoint
EXIT_SUSPENDED = 5  # roboframe run: ended on SIGHUP, as asked, to be resumed
ELSEWHERE_RETRY_S = 10.0  # how often a robot another process runs is tried again
ELSEWHERE_SETTLE_S = 5.0  # a retry up this long is ours: the other process is gone


def prepare_state_dir(state_dir: Path) -> Path:
    """Create the supervisor's folder, or say plainly why it cannot be."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--state-dir: cannot create {state_dir}: {exc.strerror}") from None
    return state_dir


def supervisor_address(state_dir: Path) -> str:
    return f"ipc://{(state_dir / SOCKET_NAME).resolve()}"


@dataclass
class Robot:
    """One robot file and its process."""

    path: Path
    name: str = ""
    mtime: float = 0.0
    state: str = "new"  # new, running, backoff, stopping, stopped, failed, invalid, elsewhere
    proc: subprocess.Popen | None = None
    started: float = 0.0  # monotonic
    restarts: int = 0
    failures: int = 0  # consecutive, for the backoff
    next_start: float = 0.0
    last_exit: int | None = None
    problem: str = ""
    control: str | None = None  # the robot's control address, from its file
    strategy_file: Path | None = None  # its strategy's source, when it is a file
    strategy_mtime: float = 0.0  # of strategy_file when the robot failed
    wanted: bool = True  # False: down asked for it; never restarted
    invalid: bool = False  # its file is not a valid robot (shown once its process is gone)
    elsewhere: bool = False  # another process runs it: its own retries are no restarts
    removed: bool = False  # its file went away: back in the folder, it is a robot again
    # the definition it runs: what a save changed (one that changes nothing is no restart)
    raw: dict = field(default_factory=dict, repr=False)
    code_mtime: float = 0.0  # of strategy_file when defined: new code with a save is a change
    resuming: bool = False  # stopping on SIGHUP: its run ends unfinished, to be resumed
    finish: bool = False  # its run ended to be resumed, and a stop came after: see _finish
    log_path: Path | None = None
    log_file: Any = field(default=None, repr=False)

    def info(self, now: float) -> dict:
        return {
            "name": self.name or self.path.stem,
            "file": str(self.path),
            "state": self.state,
            "pid": self.proc.pid if self.proc is not None and self.proc.poll() is None else None,
            "uptime_s": round(now - self.started, 1) if self.state == "running" else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "problem": self.problem or None,
            "log": str(self.log_path) if self.log_path else None,
            "control": self.control,
        }


class Supervisor:
    """Runs every robot of ``folder``; :meth:`serve` blocks until ``down``."""

    def __init__(
        self,
        folder: Path,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        scan_s: float = 1.0,
        backoff_first_s: float = BACKOFF_FIRST_S,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(f"{folder}: not a folder of robot files")
        self.state_dir = prepare_state_dir(Path(state_dir))
        self.scan_s = scan_s
        self.backoff_first_s = backoff_first_s
        self.extra_args = extra_args
        self.robots: dict[Path, Robot] = {}
        self.stopping_all = False
        self._next_scan = 0.0
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None
        self._lock: Any = None

    # -- the socket ps and down talk to ---------------------------------------

    def bind(self) -> None:
        """Take the state folder: its lock (two supervisors started at one moment
        both found no answer at the socket, and the second unlinked the first's)
        and the socket ``ps`` and ``down`` talk to."""
        address = supervisor_address(self.state_dir)
        self._lock = open(self.state_dir / LOCK_NAME, "a")  # noqa: SIM115 -- held while we run
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise RoboframeError(
                f"a supervisor already runs with state folder {self.state_dir} "
                "(roboframe down stops it)"
            ) from None
        if _answers(address):  # one of a roboframe that took no lock
            raise RoboframeError(
                f"a supervisor already runs with state folder {self.state_dir} "
                "(roboframe down stops it)"
            )
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / SOCKET_NAME).unlink()  # left by a supervisor that died
        sock = self.ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        bind_owner_only(sock, address)
        (self.state_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
        self.sock = sock

    def _answer(self) -> None:
        assert self.sock is not None
        while self.sock.poll(0):
            raw = self.sock.recv()
            try:
                request = json.loads(raw)
                reply = self._command(request.get("command"), request.get("robot"))
            except (ValueError, AttributeError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            self.sock.send(json.dumps(reply).encode())

    def _command(self, command: str, name: str | None) -> dict:
        now = time.monotonic()
        if command == "ps":
            robots = sorted(self.robots.values(), key=lambda r: r.name or r.path.stem)
            return {
                "ok": True,
                "folder": str(self.folder),
                "pid": os.getpid(),
                "robots": [r.info(now) for r in robots],
            }
        if command == "down":
            targets = [r for r in self.robots.values() if name in (None, r.name)]
            if name is not None and not targets:
                known = ", ".join(sorted(r.name for r in self.robots.values() if r.name))
                return {"ok": False, "error": f"no robot {name!r} here; robots: {known}"}
            # run by a process it did not start: it cannot stop those, nor say it did
            # (a retry of one may be starting right now: that one it stops)
            elsewhere = {r.name: str(r.path) for r in targets if r.elsewhere}
            # what this stops: robots with a process of ours alive or waiting to be
            # restarted -- not those already stopped, never started (an invalid file,
            # nameless) or run elsewhere
            running = sorted(
                r.name or r.path.stem
                for r in targets
                if not r.elsewhere
                and (r.state == "backoff" or (r.proc is not None and r.proc.poll() is None))
            )
            for robot in targets:
                robot.wanted = False
                self._stop(robot, now)
                if robot.elsewhere:
                    if robot.proc is None:  # a retry now stopping shows so until it is gone
                        robot.state = "elsewhere"
                    robot.problem = (
                        "runs in a process this supervisor did not start; out of its care "
                        f"since down: `roboframe ctl {robot.path} stop` stops it"
                    )
            if name is None:
                self.stopping_all = True
            return {"ok": True, "stopping": running, "elsewhere": elsewhere}
        if command == "start":
            return self._start_named(name, now)
        return {"ok": False, "error": f"unknown command {command!r}; known: ps, down, start"}

    def _start_named(self, name: str | None, now: float) -> dict:
        """``start NAME``: a robot ``down NAME`` (or a stop) left stopped runs again,
        from its file as it is now, ``--resume`` as ever."""
        robot = next((r for r in self.robots.values() if name and r.name == name), None)
        if robot is None or robot.removed:
            known = ", ".join(sorted(r.name for r in self.robots.values() if r.name))
            return {"ok": False, "error": f"no robot {name!r} here; robots: {known}"}
        if self.stopping_all:
            return {"ok": False, "error": "the supervisor is stopping"}
        alive = robot.proc is not None and robot.proc.poll() is None
        if robot.wanted and robot.state == "backoff" and not alive:
            robot.next_start = now  # its cause put right: at once, not after the wait
            return {"ok": True, "starting": name}
        if robot.wanted and alive:
            return {"ok": False, "error": f"{name} is {robot.state} already"}
        if alive:  # still stopping after a down: started again once it is gone
            robot.wanted = True
            return {"ok": True, "starting": name}
        robot.wanted = True
        self._define(robot, _mtime(robot.path), now)
        if robot.state == "invalid":
            return {"ok": False, "error": f"{name}: {robot.problem.splitlines()[0]}"}
        return {"ok": True, "starting": name}

    # -- robots ---------------------------------------------------------------

    def _scan(self, now: float) -> None:
        from roboframe.core.resume import resumable  # a feed's change alone resumes

        files = {
            p.resolve(): p
            for p in self.folder.iterdir()
            if p.suffix in ROBOT_SUFFIXES and p.is_file() and not p.name.startswith(".")
        }
        for key, path in sorted(files.items()):
            robot = self.robots.get(key)
            mtime = path.stat().st_mtime
            if robot is None:
                robot = self.robots[key] = Robot(path)
                self._define(robot, mtime, now)
            elif robot.removed:  # moved away and back: a robot file again
                log.warning("%s is back: starting it", path)
                robot.removed, robot.wanted = False, True
                self._define(robot, mtime, now)
            elif mtime != robot.mtime and robot.wanted:
                running = robot.state == "running"
                # a save before a robot ending to be resumed is gone: the resume takes it
                resuming = robot.state == "stopping" and robot.resuming
                problem, changes = (
                    _not_a_robot(path, robot.raw) if running or resuming else (None, None)
                )
                same_code = _mtime(robot.strategy_file) == robot.code_mtime
                feed_only = same_code and resumable(changes or [])
                if resuming and (problem is not None or feed_only):
                    # no SIGTERM: a robot still starting would stop its run, and be
                    # started again as a new one, flat; it restarts under the file as is
                    self._define(robot, mtime, now)
                    continue
                if changes == [] and same_code:
                    # saved, touched, deployed again: the definition and code it runs (a
                    # restart was a new run, flat, leaving the old run's position unmanaged)
                    robot.mtime = mtime
                    log.info("%s saved unchanged: %s goes on", path, robot.name or path.stem)
                    continue
                if problem is not None:  # a half-saved edit: the running robot goes on
                    robot.mtime = mtime
                    log.error(
                        "%s changed but is not a valid robot; %s goes on running as it was "
                        "started (save a valid file to restart it):\n%s",
                        path, robot.name or path.stem, problem,
                    )  # fmt: skip
                    continue
                if feed_only:
                    # where its market data come from, alone: the run goes on, resumed
                    log.warning(
                        "%s changed its feed only (%s): restarting %s to resume its run",
                        path, ", ".join(key for key, _, _ in changes), robot.name,
                    )  # fmt: skip
                    self._stop(robot, now, signal.SIGHUP)
                    self._define(robot, mtime, now)
                    continue
                log.warning("%s changed: restarting %s", path, robot.name or path.stem)
                self._say_what_stays(robot)
                self._stop(robot, now)
                self._define(robot, mtime, now)
            elif robot.state in ("failed", "invalid") and robot.wanted and _changed(robot):
                log.warning("%s changed: starting %s again", robot.strategy_file, robot.name)
                self._define(robot, mtime, now)
        for key in [k for k in self.robots if k not in files]:
            robot = self.robots[key]
            if not robot.removed:
                robot.removed = True
                if robot.wanted:
                    log.warning("%s was removed: stopping %s", robot.path, robot.name)
                robot.wanted = False
                self._stop(robot, now)

    def _say_what_stays(self, robot: Robot) -> None:
        """A changed file starts a new run, which knows nothing of the old run's
        position, nor of its orders left working (``open_orders_on_stop:
        leave``): said, with what they are, so the trader can see to them."""
        if robot.state != "running" or not robot.control:
            return
        from roboframe.control import send_command

        try:
            reply = send_command(robot.control, "status", timeout=1.0)
            status = reply["status"]
        except (RoboframeError, KeyError, TypeError):
            return
        held = {
            symbol: p["position"]
            for symbol, p in sorted(status.get("positions", {}).items())
            if p.get("position")
        }
        working = len(status.get("open_orders", []))
        if not held and not working:
            return
        parts = [f"{symbol} {qty:+d}" for symbol, qty in held.items()]
        if working:
            parts.append(f"{working} open order(s) (cancelled only with open_orders_on_stop: "
                         "cancel)")  # fmt: skip
        log.warning(
            "%s: the new run starts flat and knows nothing of the old run's %s; flatten "
            "first (roboframe ctl %s flatten) or change strategy params live (roboframe "
            "ctl %s set key=value) to keep them managed",
            robot.name,
            ", ".join(parts),
            robot.name,
            robot.name,
        )

    def _define(self, robot: Robot, mtime: float, now: float) -> None:
        from roboframe.config import load_robot

        robot.mtime = mtime
        try:
            spec = load_robot(robot.path)
        except ConfigError as exc:
            self._invalid(robot, str(exc))
            log.error("%s is not a valid robot, skipped until it changes:\n%s", robot.path, exc)
            return
        clash = [
            r for r in self.robots.values() if r is not robot and r.name == spec.name and r.wanted
        ]
        if clash:
            self._invalid(robot, f"robot name {spec.name!r} is taken by {clash[0].path}")
            log.error("%s: %s", robot.path, robot.problem)
            return
        robot.name, robot.problem, robot.control = spec.name, "", spec.control.address
        robot.raw = spec.raw
        robot.invalid = False
        robot.strategy_file = _strategy_file(spec)
        robot.code_mtime = _mtime(robot.strategy_file)
        robot.failures = 0
        if robot.state in ("new", "invalid", "stopped", "failed"):
            robot.state, robot.next_start = "backoff", now  # start at once

    @staticmethod
    def _invalid(robot: Robot, problem: str) -> None:
        """``robot``'s file is not a valid robot. A process still stopping (its
        file changed under it) goes on stopping -- killed if it outstays the
        grace -- and the robot shows as invalid once it is gone."""
        robot.problem, robot.invalid = problem, True
        robot.strategy_mtime = _mtime(robot.strategy_file)  # tried again when it changes
        if robot.state != "stopping":
            robot.state = "invalid"

    def _start(self, robot: Robot, now: float) -> None:
        robot.log_path = self.state_dir / f"{robot.name}.log"
        if robot.log_file is None:
            robot.log_file = open(robot.log_path, "ab")  # noqa: SIM115 -- closed on exit
        # not -q: the robot's log gets its warnings (order path down, a resume's resubmits)
        # and its summary; its progress line comes once a minute into a file
        how = "--finish" if robot.finish else "--resume"
        cmd = [sys.executable, "-m", "roboframe.cli", "run", str(robot.path), how]
        robot.proc = subprocess.Popen(
            [*cmd, *self.extra_args],
            stdin=subprocess.DEVNULL,
            stdout=robot.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C for the supervisor is not one for its robots
        )
        # a retry of a robot another process runs shows so until it is ours, and the
        # next retry waits its period (it started one every turn of the loop)
        state = "finishing" if robot.finish else "running"
        robot.state, robot.started = ("elsewhere" if robot.elsewhere else state), now
        if robot.elsewhere:
            robot.next_start = now + ELSEWHERE_RETRY_S
        log.warning("started %s (pid %d)%s", robot.name, robot.proc.pid,
                    " to stop its last run" if robot.finish else "")  # fmt: skip

    def _stop(self, robot: Robot, now: float, how: int = signal.SIGTERM) -> None:
        """End ``robot``'s process: a clean stop (SIGTERM: journal flushed and closed),
        or (SIGHUP) an end as a crash's, cleanly, for a resume to go on with the run."""
        if robot.proc is not None and robot.proc.poll() is None:
            robot.proc.send_signal(how)
            robot.state, robot.next_start = "stopping", now + STOP_GRACE_S
            robot.resuming = how == signal.SIGHUP
        elif robot.state == "stopping":  # gone, its end not yet seen: read as asked now
            robot.resuming = robot.resuming and how == signal.SIGHUP
        elif robot.state in ("backoff", "new", "running"):
            robot.state = "stopped"

    def _watch(self, robot: Robot, now: float) -> None:
        proc = robot.proc
        if robot.state == "stopping" and proc is not None and proc.poll() is None:
            if now >= robot.next_start:
                log.error("%s did not stop in %.0fs: killed", robot.name, STOP_GRACE_S)
                proc.kill()
            return
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            robot.proc, robot.last_exit = None, code
            was_stopping = robot.state == "stopping"
            ran = now - robot.started
            if robot.finish:
                self._finished(robot, code, now)
                return
            # its run ended on SIGHUP (a feed changed) to go on at once: no failure
            again = was_stopping or code == EXIT_SUSPENDED
            if again or code == 0:
                robot.state = "elsewhere" if robot.elsewhere else "stopped"
                if code == EXIT_SUSPENDED:
                    log.warning("%s ended its run to resume it (exit %d)", robot.name, code)
                    if was_stopping and not robot.resuming:  # a stop came after the SIGHUP
                        self._finish(robot)
                else:
                    log.warning("%s stopped (exit %d)", robot.name, code)
                if robot.invalid:
                    robot.state = "invalid"
                elif again and (robot.finish or (robot.wanted and not self.stopping_all)):
                    robot.state, robot.next_start = "backoff", now  # a changed file: again
            elif code == EXIT_RUNNING:  # not ours: say so, and take it over once it is gone
                robot.elsewhere = True
                robot.state, robot.next_start = "elsewhere", now + ELSEWHERE_RETRY_S
                robot.problem = (
                    "another process answers at its control endpoint: this robot left "
                    "running (by a supervisor killed without down?) or another robot with "
                    "its journal.dir. To carry its run on here, end that process without a "
                    "stop (`kill -9`: a crash loses nothing) and this supervisor resumes it; "
                    f"`roboframe ctl {robot.path} stop` ends the run instead, and the one "
                    "this supervisor then starts is new and flat: the old run's position and "
                    "working orders are left unmanaged"
                )
                log.error("%s: %s", robot.name, robot.problem)
            elif code == EXIT_CONFIG:  # its file, or a strategy module saved mid-edit
                robot.state, robot.problem = "invalid", f"exit {code}: see {robot.log_path}"
                robot.strategy_mtime = _mtime(robot.strategy_file)
                log.error("%s refused its robot file (see %s)", robot.name, robot.log_path)
            elif code == EXIT_STRATEGY:
                robot.state = "failed"
                robot.strategy_mtime = _mtime(robot.strategy_file)
                changes = " or ".join(str(p) for p in (robot.path, robot.strategy_file) if p)
                robot.problem = (
                    f"{_last_error(robot.log_path)} -- not restarted: it would meet the same "
                    f"error; fix the strategy, and it starts again when {changes} changes"
                )
                log.error("%s failed: %s", robot.name, robot.problem)
            else:
                robot.failures = 1 if ran >= STABLE_S else robot.failures + 1
                delay = min(BACKOFF_MAX_S, self.backoff_first_s * 2 ** (robot.failures - 1))
                robot.state, robot.next_start = "backoff", now + delay
                robot.problem = _last_error(robot.log_path, "") if code == EXIT_FAILED else ""
                log.error(
                    "%s exited with %s after %.1fs%s; restarting in %.0fs (resumed; "
                    "`roboframe start %s` restarts it at once)",
                    robot.name,
                    f"signal {-code}" if code < 0 else f"code {code}",
                    ran,
                    f": {robot.problem}" if robot.problem else "",
                    delay,
                    robot.name,
                )
        alive = robot.proc is not None and robot.proc.poll() is None
        if robot.elsewhere and alive and now - robot.started >= ELSEWHERE_SETTLE_S:
            robot.elsewhere = False  # a retry that stayed up: the other process is gone
            robot.state, robot.problem = "running", ""
        if (
            robot.state in ("backoff", "elsewhere")
            and (robot.wanted or robot.finish)  # a stop owed is carried out, wanted or not
            and now >= robot.next_start
            and not alive  # never a second process of one robot
        ):
            if robot.last_exit not in (None, 0, EXIT_RUNNING, EXIT_SUSPENDED):
                robot.restarts += 1
            self._start(robot, now)

    @staticmethod
    def _finish(robot: Robot) -> None:
        """A stop (a change beyond the feed, ``down``) came after the SIGHUP of a
        change of the feed alone, too late: the run had already ended to be
        resumed. A resume under the changed file is refused, and the run was
        left unmanaged, its orders working whatever open_orders_on_stop said.
        It is carried out now, as asked: ``run --finish`` resumes the run under
        the robot file it started with and stops it; then, if still wanted, the
        robot starts under its file as it is."""
        robot.finish = True
        log.warning(
            "%s ended its run to resume it before a stop reached it: stopping that run "
            "as it started (run --finish)",
            robot.name,
        )

    def _finished(self, robot: Robot, code: int, now: float) -> None:
        """The end of a ``run --finish``: started again if wanted, once done. One the
        robot file or the strategy stopped (its file saved mid-edit, its strategy
        raising) is tried again when either changes, or on ``start``; one the order
        path failed, after a backoff. While everything stops, there is no again."""
        if code == 0:
            robot.finish, robot.failures = False, 0
            log.warning("%s: its last run is stopped", robot.name)
            robot.state = "backoff" if robot.wanted and not self.stopping_all else "stopped"
            robot.next_start = now
            return
        if code in (EXIT_CONFIG, EXIT_STRATEGY) or self.stopping_all:
            robot.finish = not self.stopping_all
            robot.state = "failed"
            robot.strategy_mtime = _mtime(robot.strategy_file)
            robot.problem = (
                f"its last run ended to be resumed, and could not be stopped as it started "
                f"(exit {code}: see {robot.log_path}); its position and working orders are "
                f"unmanaged until `roboframe run {robot.path} --finish` stops it (tried "
                f"again when its file or strategy changes), or `roboframe orders "
                f"{robot.name} --cancel` cancels its orders"
            )
            log.error("%s: %s", robot.name, robot.problem)
            return
        robot.failures += 1
        delay = min(BACKOFF_MAX_S, self.backoff_first_s * 2 ** (robot.failures - 1))
        robot.state, robot.next_start = "backoff", now + delay
        log.error("%s: stopping its last run failed (exit %d); again in %.0fs",
                  robot.name, code, delay)  # fmt: skip

    def _all_stopped(self) -> bool:
        """Whether no robot's process lives, nor is about to start to stop a run
        (a finish waiting for its turn; one left failed waits for no one)."""
        return not any(
            (r.finish and r.state == "backoff") or (r.proc is not None and r.proc.poll() is None)
            for r in self.robots.values()
        )

    # -- the loop -------------------------------------------------------------

    def serve(self) -> None:
        if self.sock is None:
            self.bind()
        previous = {
            s: signal.signal(s, lambda *_: self._command("down", None))
            for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while True:
                now = time.monotonic()
                if now >= self._next_scan and not self.stopping_all:
                    self._scan(now)
                    self._next_scan = now + self.scan_s
                for robot in list(self.robots.values()):
                    self._watch(robot, now)
                self._answer()
                if self.stopping_all and self._all_stopped():
                    self._answer()
                    return
                if self.sock is not None:
                    self.sock.poll(100)  # a request, or 100 ms
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def close(self) -> None:
        now = time.monotonic()
        for robot in self.robots.values():
            if robot.proc is not None and robot.proc.poll() is None:
                robot.wanted = False
                self._stop(robot, now)
        deadline = time.monotonic() + STOP_GRACE_S
        for robot in self.robots.values():
            if robot.proc is not None:
                try:
                    robot.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    robot.proc.kill()
            if robot.log_file is not None:
                robot.log_file.close()
        if self.sock is not None:
            self.sock.close()
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / SOCKET_NAME).unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / "supervisor.pid").unlink()
        if self._lock is not None:
            self._lock.close()  # the lock goes with it
        self.ctx.destroy(linger=0)


def _strategy_file(spec: Any) -> Path | None:
    """The source file of ``spec``'s strategy (already imported by its validation)."""
    from roboframe.plugins import resolve_strategy, strategy_search

    try:
        cls, _ = resolve_strategy(spec.strategy.plugin, None, strategy_search(spec.source))
        found = inspect.getsourcefile(cls)
    except (RoboframeError, TypeError, OSError):
        return None
    return Path(found) if found else None


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


RATE_AFTER_S = 1.0  # a robot's events/s is shown once it has run this long


def events_rate(status: dict) -> float | None:
    """Events a robot's process handled per second since it started, from its
    status; None in its first second (a handful of events over a few
    milliseconds of uptime showed 1,000.0 events/s after every restart)."""
    uptime = status.get("uptime_s") or 0
    if uptime < RATE_AFTER_S:
        return None
    handled = status.get("process_events", status.get("seq", 0))  # since its start
    return round(handled / uptime, 1)


def _not_a_robot(path: Path, raw: dict) -> tuple[str | None, list | None]:
    """Why the robot file at ``path`` does not validate (None when it does), and
    what it changed from the definition ``raw`` (``config_changes``; None when it
    does not validate)."""
    from roboframe.config import load_robot
    from roboframe.config.spec import config_changes

    try:
        spec = load_robot(path)
    except ConfigError as exc:
        return str(exc), None
    return None, config_changes(raw, spec.raw)


def _changed(robot: Robot) -> bool:
    """Whether a failed robot's strategy source changed since it failed."""
    return robot.strategy_file is not None and _mtime(robot.strategy_file) != robot.strategy_mtime


def _last_error(log_path: Path | None, otherwise: str = "the strategy raised") -> str:
    """The error a robot's log ends with: its run's ``Error:`` line, the loop's
    ``robot stopped:`` one, or why its feed or gateway ended the run."""
    try:
        with open(log_path, "rb") as f:  # type: ignore[arg-type]
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            lines = f.read().decode(errors="replace").splitlines()
    except (OSError, TypeError):
        return otherwise
    for line in reversed(lines):
        if "the run ended unfinished (" in line:
            return line.split("the run ended unfinished (", 1)[1].rsplit(");", 1)[0].strip()
        for mark in ("Error: ", "robot stopped: "):
            if mark in line:
                return line.split(mark, 1)[1].strip()
    return f"{otherwise} (see {log_path})" if otherwise else ""


def _answers(address: str, timeout: float = 0.5) -> bool:
    try:
        ask(address, "ps", timeout=timeout)
    except RoboframeError:
        return False
    return True


def ask(address: str, command: str, robot: str | None = None, *, timeout: float = 3.0) -> dict:
    """One request to a supervisor; its JSON reply."""
    from roboframe.control import ask_json

    reply = ask_json(address, {"command": command, "robot": robot}, timeout=timeout)
    if reply is None:
        raise RoboframeError(
            f"no supervisor answers at {address} (is 'roboframe up' running with this --state-dir?)"
        )
    return reply


def robot_rows(reply: dict, *, timeout: float = 1.0) -> list[dict]:
    """``ps`` rows: the supervisor's view of each robot plus, for running ones,
    what the robot's own control endpoint says (position, PnL, events/s)."""
    from roboframe.control import send_command

    rows = []
    for robot in reply.get("robots", []):
        row = dict(robot)
        if robot["state"] == "running" and robot.get("control"):
            try:  # the address the supervisor read from the file: no second validation
                answer = send_command(robot["control"], "status", timeout=timeout)
            except RoboframeError as exc:
                row["status_error"] = str(exc)
            else:
                status = answer.get("status") or {}
                row["robot_state"] = status.get("state")
                if "order_path" in status:  # an older robot's status has none
                    row["order_path"] = status["order_path"]
                row["events"] = status.get("seq")
                row["events_per_s"] = events_rate(status)
                row["positions"] = {
                    s: p.get("position") for s, p in (status.get("positions") or {}).items()
                }
                row["net_pnl"] = status.get("net_pnl")
        rows.append(row)
    return rows


def format_ps(rows: list[dict]) -> str:
    head = f"{'ROBOT':<18} {'STATE':<9} {'PID':>7} {'UPTIME':>8} {'RESTARTS':>8} "
    head += f"{'EVENTS/S':>9} {'NET PNL':>12}  POSITION"
    lines = [head]
    for r in rows:
        state = r.get("robot_state") or r["state"]
        if r["state"] != "running":
            state = r["state"]
        positions = ", ".join(f"{s} {q:+d}" for s, q in sorted((r.get("positions") or {}).items()))
        uptime = f"{r['uptime_s']:.0f}s" if r.get("uptime_s") is not None else "-"
        rate = f"{r['events_per_s']:,.1f}" if r.get("events_per_s") is not None else "-"
        lines.append(
            f"{r['name']:<18} {state:<9} {r['pid'] or '-':>7} {uptime:>8} {r['restarts']:>8} "
            f"{rate:>9} {r.get('net_pnl') or '-':>12}  {positions or '-'}"
        )
        if r.get("problem"):
            lines.append(f"  {r['problem'].splitlines()[0]}")
        if r["state"] == "running" and r.get("order_path") not in (None, "up"):
            lines.append(f"  order path {r['order_path']}: new orders are refused")
    return "\n".join(lines)
