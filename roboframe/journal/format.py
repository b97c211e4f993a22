"""The journal's on-disk format, version 1.

All integers are little-endian.

File header::

    magic      8 bytes   b"RFJOURNL"
    version    u16       format version (1)
    length     u32       length of the JSON header that follows
    crc        u32       CRC-32 of the JSON header bytes
    header     length bytes of UTF-8 JSON (sorted keys, no spaces)

Then frames, back to back until the end of the file::

    length     u32       payload length
    crc        u32       CRC-32 of the 17 bytes kind..recv_ns, then the payload
    kind       u8        record kind (below)
    seq        u64       sequence number
    recv_ns    i64       receive time, ns since the epoch (0 when not applicable)
    payload    length bytes

Record kinds:

- ``MESSAGE`` (1): one inbound wire message exactly as the loop received it:
  one event, or a batch whose events are numbered ``seq, seq+1, ...``.
- ``ACTIONS`` (2): what event ``seq`` made the robot do, encoded
  ``[actions, risk rejections]`` (:func:`roboframe.core.codec.encode_outputs`).
- ``NOTE`` (3): reserved for annotations and checkpoints.

A reader skips kinds it does not know. A torn last frame -- the file ends
inside it, or its checksum fails and nothing follows it -- is what a crash
mid-write leaves; readers stop before it and report it. A bad frame with
more data after it is corruption, and readers refuse the file.
"""

from __future__ import annotations

import struct

MAGIC = b"RFJOURNL"
FORMAT_VERSION = 1

FILE_HEAD = struct.Struct("<8sHII")  # magic, version, header length, header crc
FRAME_HEAD = struct.Struct("<IIBQq")  # payload length, crc, kind, seq, recv_ns
CRC_PART = struct.Struct("<BQq")  # what the crc covers before the payload
LEN_CRC = struct.Struct("<II")  # the first two fields of FRAME_HEAD

MESSAGE = 1
ACTIONS = 2
NOTE = 3

KIND_NAMES = {MESSAGE: "message", ACTIONS: "actions", NOTE: "note"}

MAX_PAYLOAD = 256 * 1024 * 1024  # larger length fields are corruption, not data
FSYNC_POLICIES = ("never", "on_close", "always")
