"""Reading what a ZeroMQ socket holds, without an exception per read.

A non-blocking read of an empty socket raises ``zmq.Again``; building that
exception costs about twice what asking the socket (``ZMQ_EVENTS``) does, and
the order path reads its sockets dry at every hop. :func:`messages` reads one
message, then asks before each next read.
"""

from __future__ import annotations

from collections.abc import Iterator

import zmq

ADDRESS_PATTERN = r"^((inproc|ipc)://.+|tcp://.+:[0-9]+)$"
"""A ZeroMQ address for the robot file's schema. A tcp:// one needs its port:
``tcp://127.0.0.1`` passed validate, and a feed connecting to it failed only
as the run started, leaving the run unfinished."""

_EVENTS, _POLLIN, _NOBLOCK = zmq.EVENTS, zmq.POLLIN, zmq.NOBLOCK


def readable(sock: zmq.Socket) -> bool:
    """Whether ``sock`` has a message to read now."""
    return bool(sock.get(_EVENTS) & _POLLIN)


def messages(sock: zmq.Socket) -> Iterator[list[bytes]]:
    """The messages ``sock`` holds now (each a list of frames), until it is empty.
    The first read is tried as is: the callers come on a poll that saw one."""
    recv = sock.recv_multipart
    get = sock.get
    while True:
        try:
            yield recv(_NOBLOCK)
        except zmq.Again:
            return
        if not get(_EVENTS) & _POLLIN:
            return
