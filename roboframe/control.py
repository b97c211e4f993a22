"""The client side of a robot's control endpoint (``roboframe ctl``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import zmq

from roboframe.curve import ipc_too_long, make_client
from roboframe.errors import ConfigError, RoboframeError

log = logging.getLogger(__name__)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignments(assignments: tuple[str, ...] | list[str]) -> dict:
    """``key=value`` items as ``set`` args; a dotted key names a nested param
    (``levels.stop=25`` is ``{"levels": {"stop": 25}}``, merged into ``levels``)."""
    args: dict = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        names = key.split(".")
        if not sep or not all(names):
            raise ConfigError(f"expected key=value (or a.b=value for a nested param), got {item!r}")
        place = args
        for name in names[:-1]:
            inner = place.setdefault(name, {})
            if not isinstance(inner, dict):
                raise ConfigError(f"{item!r}: {name} is given a value and nested params both")
            place = inner
        if isinstance(place.get(names[-1]), dict):
            raise ConfigError(f"{item!r}: {key} is given a value and nested params both")
        place[names[-1]] = _parse_value(value)
    return args


def control_address(target: str, state_dir: Path | None = None) -> str:
    """``target`` itself when it is an address; else the control address of that robot
    file; else, for a bare name that is no file, that of the robot the supervisor of
    ``state_dir`` runs under that name (``roboframe ctl si stop`` under ``up``).

    A robot file without ``control.address`` has the default endpoint,
    ``ipc://<journal.dir>/control.sock`` (``journal.dir`` relative to the cwd).
    """
    if "://" in target:
        return target
    from roboframe.config import load_robot

    path = Path(target)
    if state_dir is not None and is_bare_name(target) and not path.exists():
        return supervised_address(target, state_dir)
    try:
        address = load_robot(path).control.address
    except ConfigError as exc:
        found, address = _address_read_from(path)
        if not found or not address:
            raise
        log.warning(
            "%s\n(the file does not validate; its control address %s is used)", exc, address
        )
    if not address:
        raise ConfigError(f"{target}: the robot has no control endpoint (control.address: null)")
    return address


def _address_read_from(path: Path) -> tuple[bool, str | None]:
    """The control address of a robot file that does not validate, read from the fields
    that make it alone (``control.address``, else ``journal.dir`` or ``name``) as the
    loader would: ``(True, address)``, ``(True, None)`` for ``control.address: null``,
    ``(False, None)`` when those fields are not there to read.

    A robot running from a file its trader is editing (a typo elsewhere, a strategy
    module that does not import yet) must still take ``ctl ... flatten``.
    """
    from roboframe.config.spec import default_control_address
    from roboframe.config.yamlload import raw_mapping

    data = raw_mapping(path)
    if data is None:
        return False, None
    control = data.get("control") or {}
    if isinstance(control, dict) and "address" in control:
        address = control["address"]
        if address is None:
            return True, None
        return (True, address) if isinstance(address, str) and "://" in address else (False, None)
    journal = data.get("journal") or {}
    folder = journal.get("dir") if isinstance(journal, dict) else None
    if folder is None and isinstance(data.get("name"), str):
        folder = f"runs/{data['name']}"
    if not isinstance(folder, str) or not folder:
        return False, None
    return True, default_control_address(folder)


def is_bare_name(target: str) -> bool:
    """``si``, not ``robots/si.yaml``: what a robot is called under ``roboframe up``."""
    return "/" not in target and Path(target).suffix not in (".yaml", ".yml")


def supervised_address(name: str, state_dir: Path) -> str:
    """The control address of the robot ``name`` that the supervisor of ``state_dir`` runs."""
    robot = supervised_robot(name, state_dir)
    # "elsewhere": another process runs it (one left by a killed supervisor): it answers
    if robot.get("state") not in ("running", "elsewhere"):
        raise RoboframeError(
            f"{name} is {robot.get('state')} under the supervisor: nothing answers commands"
            "\n  hint: 'roboframe ps' shows why"
        )
    if not robot.get("control"):
        raise ConfigError(f"{name}: the robot has no control endpoint (control.address: null)")
    return robot["control"]


def supervised_robot(name: str, state_dir: Path) -> dict:
    """The ``ps`` row (file, state, control address ...) of the robot ``name`` that
    the supervisor of ``state_dir`` runs, whatever its state."""
    from roboframe.supervisor import supervisor_address

    address = supervisor_address(state_dir)
    reply = None if ipc_too_long(address) else ask_json(address, {"command": "ps"}, timeout=1.0)
    if reply is None:
        raise ConfigError(
            f"{name}: no such robot file, and no supervisor answers at {address} to look the "
            f"name up\n  hint: give the robot file or its control address, or the --state-dir "
            f"of the 'roboframe up' that runs {name}"
        )
    robots = {r["name"]: r for r in reply.get("robots", []) if r.get("name")}
    robot = robots.get(name)
    if robot is None:
        known = ", ".join(sorted(robots)) or "none"
        raise ConfigError(f"no robot {name!r} under the supervisor at {state_dir}; robots: {known}")
    return robot


def send_command(
    target: str,
    command: str,
    assignments=(),
    *,
    timeout: float = 3.0,
    key: str | Path | None = None,
    server_key: str | Path | None = None,
    state_dir: Path | None = None,
) -> dict:
    """Send one command; return the robot's JSON reply.

    ``key`` (this client's ``NAME.key_secret``) and ``server_key`` (the
    robot's public ``NAME.key``) make the connection a CURVE client; a
    ``tcp://`` endpoint needs them. ``state_dir``: where to ask a supervisor
    for a robot given by name.
    """
    address = control_address(target, state_dir)
    too_long = ipc_too_long(address)
    if too_long:
        raise ConfigError(f"{address}: {too_long}")
    if (key is None) != (server_key is None):
        raise ConfigError("CURVE needs both --key (your NAME.key_secret) and --server-key")
    if address.startswith("tcp://") and key is None:
        raise ConfigError(
            f"{address}: a tcp:// control endpoint uses CURVE: give --key YOUR.key_secret "
            "--server-key ROBOT.key\n  hint: run 'roboframe keys generate --name me' and "
            "add me.key to the robot's control.curve.clients folder"
        )
    request = {"command": command, "args": parse_assignments(assignments)}
    curve = (key, server_key) if key is not None else None
    expected = expected_robot(target)
    if expected is None:
        reply = ask_json(address, request, timeout=timeout, curve=curve)
    else:  # the right robot, before it acts: who answers (its status) first
        status = request if command == "status" else {"command": "status"}
        reply = ask_json(address, status, timeout=timeout, curve=curve)
        if reply is not None:
            _same_robot(reply, expected, target, address)
            if command != "status":
                reply = ask_json(address, request, timeout=timeout, curve=curve)
    if reply is None:
        message = f"no answer from {address} within {timeout:g}s"
        if _endpoint_free(address):
            message += " (the robot is not running: nothing holds its endpoint)"
        elif key is not None:
            message += (
                " (with CURVE a refused key gets no answer: check that the robot allows"
                " --key's public key and that --server-key is the robot's)"
            )
        raise RoboframeError(message)
    return reply


def expected_robot(target: str) -> str | None:
    """The name of the robot ``target`` means: a bare name is one, a robot file
    says it (read as it stands, valid or not); an address names none."""
    if "://" in target:
        return None
    path = Path(target)
    if is_bare_name(target) and not path.exists():
        return target
    from roboframe.config.yamlload import raw_mapping

    name = (raw_mapping(path) or {}).get("name")
    return name if isinstance(name, str) else None


def _same_robot(reply: dict, expected: str, target: str, address: str) -> None:
    """Refuse an answer from another robot: two robot files with one journal.dir
    (a file copied, its name changed) share one control endpoint, and ``ctl
    b.yaml flatten`` flattened robot a -- as ``ps`` advised for b, "elsewhere"."""
    status = reply.get("status")
    robot = status.get("robot") if isinstance(status, dict) else None
    if isinstance(robot, str) and robot != expected:
        raise ConfigError(
            f"{target}: the robot answering at {address} is {robot!r}, not {expected!r}; "
            "nothing was sent\n  hint: two robots share this control endpoint (the same "
            "journal.dir or control.address): give each its own; a robot renamed in its "
            f"file since it started is reached by its address: roboframe ctl {address} ..."
        )


def _endpoint_free(address: str) -> bool:
    """True when no process holds ``address``'s lock (an ipc endpoint: a running
    robot holds ``<socket>.lock``, see ``core.robot``): nobody runs there."""
    import fcntl

    from roboframe.curve import ipc_path

    path = ipc_path(address)
    if path is None:
        return False  # tcp://: who knows
    try:
        with open(f"{path}.lock", "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when closed
    except FileNotFoundError:
        return True
    except OSError:  # held (BlockingIOError), or a file system without locks
        return False
    return True


def ask_json(
    address: str, request: dict, *, timeout: float, curve: tuple[Path, Path] | None = None
) -> dict | None:
    """One JSON request over a fresh REQ socket; the JSON reply, or None on timeout."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(timeout * 1000))
    try:
        if curve is not None:
            make_client(sock, *curve, "ctl")
        sock.connect(address)
        sock.send(json.dumps(request).encode())
        return json.loads(sock.recv())
    except zmq.Again:
        return None
    finally:
        sock.close()
