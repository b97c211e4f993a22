"""A TCP proxy a test can cut: a real network outage between a client and a server.

``cut()`` closes every connection and refuses new ones until ``restore()``;
clients see exactly what a dead server or a broken link looks like.
``drop(n)`` closes one connection alone (a NAT or a firewall dropping one flow).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._dropping: list[int] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.05):
                if key.fileobj is self.listener:
                    client, _ = self.listener.accept()
                    if not self.up.is_set():
                        client.close()
                        continue
                    try:
                        server = socket.create_connection(self.target, timeout=3)
                    except OSError:
                        client.close()
                        continue
                    with self._lock:
                        self._pairs.append((client, server))
                    sel.register(client, selectors.EVENT_READ, server)
                    sel.register(server, selectors.EVENT_READ, client)
                else:
                    src, dst = key.fileobj, key.data
                    try:
                        data = src.recv(65536)
                        if data:
                            dst.sendall(data)
                            continue
                    except OSError:
                        pass
                    self._drop(sel, src, dst)
            with self._lock:
                dropping, self._dropping = self._dropping, []
                dropped = [self._pairs[n] for n in dropping]
                self._pairs = [pair for pair in self._pairs if pair not in dropped]
            for a, b in dropped:
                self._drop(sel, a, b)
            if not self.up.is_set():
                with self._lock:
                    pairs, self._pairs = self._pairs, []
                for a, b in pairs:
                    self._drop(sel, a, b)
        sel.close()

    def _drop(self, sel, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            with contextlib.suppress(KeyError, ValueError):
                sel.unregister(sock)
            sock.close()

    def connections(self) -> int:
        """How many connections were made, less those cut or dropped here."""
        with self._lock:
            return len(self._pairs)

    def drop(self, n: int) -> None:
        """Close the ``n``-th of the connections (oldest first), the others left as
        they are: one of a client's links broken alone."""
        with self._lock:
            self._dropping.append(n)

    def cut(self) -> None:
        self.up.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()


def proxied_url(url: str, default_port: int = 5432) -> tuple[TcpProxy, str]:
    """A proxy in front of the server ``url`` names (a database URL), and ``url``
    through it: the same user, database and options, the proxy's host and port."""
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    user, at, _ = parts.netloc.rpartition("@")
    return proxy, urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1:{proxy.port}"))
