"""CURVE security for ZeroMQ endpoints, and the ipc socket files' permissions.

ZeroMQ's own CURVE (libzmq with libsodium) encrypts a ``tcp://`` connection
and proves both ends' keys. Key files are the ones ``zmq.auth`` writes
(``roboframe keys generate``): ``NAME.key`` holds the public key and may be
copied anywhere; ``NAME.key_secret`` holds both keys and stays with its
owner, mode 0600.

The binding side (a robot's control endpoint, ``roboframe feed publish``) is
the CURVE *server*: it has a secret key file and a folder of the public keys
it allows (``clients``); a :class:`zmq.auth.thread.ThreadAuthenticator` on its
context refuses every other key, and the refusal is logged as a warning. The
connecting side (``roboframe ctl``, the ``zmq`` feed) is a *client*: its own
secret key file and the server's public key file (``server_key``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from roboframe.errors import ConfigError

log = logging.getLogger(__name__)

IPC_PATH_MAX = 107
"""Longest ipc:// socket path in bytes (``sun_path`` is 108 with its NUL)."""

KEYS_HINT = "run 'roboframe keys generate --dir keys --name NAME' to make a key pair"
_WARN_EVERY_S = 60.0


def generate_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (mode 0600) in ``directory``."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"--name: {name!r} is not a file name")
    directory = Path(directory)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing:
        shown = ", ".join(existing)
        raise ConfigError(f"will not overwrite {shown}; remove them or pick another --name")
    old = os.umask(0o077)  # the secret file is never readable by others, not even briefly
    try:
        directory.mkdir(parents=True, exist_ok=True)
        public_file, secret_file = zmq.auth.create_certificates(directory, name)
    except OSError as exc:
        raise ConfigError(f"--dir: cannot write keys in {directory}: {exc.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(secret_file, 0o600)
    os.chmod(public_file, 0o644)
    return Path(public_file), Path(secret_file)


def load_secret(path: str | Path, what: str) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``.key_secret`` file; :class:`ConfigError` if unusable."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        message = f"{what}: cannot read CURVE secret key {path}: {exc}\n  hint: {KEYS_HINT}"
        raise ConfigError(message) from None
    if not secret:
        raise ConfigError(
            f"{what}: {path} holds only a public key\n"
            "  hint: give the NAME.key_secret file, not NAME.key"
        )
    return public, secret


def load_public(path: str | Path, what: str) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        message = f"{what}: cannot read CURVE public key {path}: {exc}\n  hint: {KEYS_HINT}"
        raise ConfigError(message) from None
    return public


def allowed_keys(directory: str | Path, what: str) -> frozenset[bytes]:
    """The public keys (z85) of every ``*.key`` file in ``directory``."""
    try:
        keys = zmq.auth.load_certificates(directory)
    except (OSError, ValueError) as exc:
        message = f"{what}: cannot read the allowed client keys in {directory}: {exc}"
        raise ConfigError(message) from None
    if not keys:
        raise ConfigError(
            f"{what}: no public keys (*.key) in {directory}: no client could connect\n"
            "  hint: copy each client's NAME.key file there"
        )
    return frozenset(keys)


def client_schema(description: str, server: str) -> dict:
    """JSON Schema of a plugin's ``curve: {secret_key, server_key}`` client params."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["secret_key", "server_key"],
        "description": description,
        "properties": {
            "secret_key": {
                "type": "string",
                "minLength": 1,
                "description": "the robot's NAME.key_secret file",
            },
            "server_key": {
                "type": "string",
                "minLength": 1,
                "description": f"the {server}'s public NAME.key file",
            },
        },
    }


@dataclass(frozen=True)
class ServerKeys:
    """A CURVE server's key pair and the public keys of the clients it lets in."""

    public: bytes
    secret: bytes
    clients: frozenset[bytes]


def load_server_keys(secret_key: str | Path, clients: str | Path, what: str) -> ServerKeys:
    """Read a server's key files now, so a missing one stops a start, not a run."""
    public, secret = load_secret(secret_key, what)
    return ServerKeys(public, secret, allowed_keys(clients, what))


def make_server(sock: zmq.Socket, keys: ServerKeys) -> None:
    """Make ``sock`` (before it binds) a CURVE server."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_client(
    sock: zmq.Socket, secret_key: str | Path, server_key: str | Path, what: str
) -> None:
    """Make ``sock`` (before it connects) a CURVE client of the server ``server_key``."""
    public, secret = load_secret(secret_key, what)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = load_public(server_key, what)


class _AllowList:
    """The authenticator's credentials provider: known keys pass, others are logged."""

    def __init__(self, keys: frozenset[bytes], what: str) -> None:
        self.keys = keys
        self.what = what
        self._warned: dict[bytes, float] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        now = time.monotonic()
        if now - self._warned.get(key, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            self._warned[key] = now  # a refused client retries every few ms: say it once a minute
            log.warning(
                "%s: refused a client with an unknown CURVE key %s", self.what, key.decode()
            )
        return False


def start_authenticator(context: zmq.Context, keys: ServerKeys, what: str) -> ThreadAuthenticator:
    """A ZAP handler on ``context`` that lets in only ``keys.clients``.

    Start it before the CURVE server binds (libzmq lets every key in while a
    context has no ZAP handler) and stop it (``auth.stop()``) before the
    context is destroyed.
    """
    auth = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.zap"))
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(keys.clients, what))
    return auth


def ipc_path(address: str) -> str | None:
    """The file of an ``ipc://`` address; None for other transports and abstract sockets."""
    if not address.startswith("ipc://"):
        return None
    path = address[len("ipc://") :]
    return None if path.startswith("@") else path


def ipc_too_long(address: str) -> str | None:
    """A message when ``address`` is an ipc path longer than the OS allows."""
    path = ipc_path(address)
    if path is None or len(path.encode()) <= IPC_PATH_MAX:
        return None
    return f"the ipc socket path {path} is {len(path.encode())} bytes; the limit is {IPC_PATH_MAX}"


def bind_owner_only(sock: zmq.Socket, address: str) -> None:
    """Bind ``sock``; an ``ipc://`` socket file is created mode 0600 (owner only),
    never open to other users, not even between the bind and a chmod. The umask
    is the process's: while it is held, files other threads create are only
    more private, never less."""
    if ipc_path(address) is None:
        sock.bind(address)
        return
    old = os.umask(0o177)
    try:
        sock.bind(address)  # libzmq makes the socket file in the calling thread
    finally:
        os.umask(old)
