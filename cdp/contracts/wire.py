"""Confluent wire format: one magic byte, a 4-byte big-endian schema id, the Avro body.

::

    +------+----------------+-------------------------------+
    | 0x00 | schema id (BE) | Avro binary (schemaless) body |
    +------+----------------+-------------------------------+
      1 B        4 B                  rest

This is the framing every Confluent serializer uses, so topics written by the
platform can be read by standard tools and vice versa.
"""

from __future__ import annotations

import struct

from cdp.errors import EventError, ReasonCode

MAGIC_BYTE = 0
"""First byte of every framed message."""

HEADER_SIZE = 5
"""Magic byte plus the 4-byte schema id."""

MAX_SCHEMA_ID = 2**31 - 1
"""Largest schema id (Confluent ids are signed 32-bit integers)."""

_HEADER = struct.Struct(">bI")


def header(schema_id: int) -> bytes:
    """The 5-byte wire header for ``schema_id`` (codecs cache it per schema)."""
    if not 0 <= schema_id <= MAX_SCHEMA_ID:
        raise ValueError(f"schema id out of range: {schema_id}")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix ``body`` with the magic byte and the big-endian ``schema_id``."""
    return header(schema_id) + body


def unframe(data: bytes | bytearray | memoryview | None) -> tuple[int, memoryview]:
    """Split a framed message into ``(schema_id, body)`` without copying the body.

    Raises :class:`~cdp.errors.EventError` with ``NOT_WIRE_FORMAT`` when the
    message is shorter than the header (a ``None`` tombstone included) or does
    not start with the magic byte.
    """
    if data is None or len(data) < HEADER_SIZE:
        size = 0 if data is None else len(data)
        raise EventError(
            ReasonCode.NOT_WIRE_FORMAT,
            f"message has {size} bytes, the wire header alone needs {HEADER_SIZE}",
        )
    view = memoryview(data)
    if view[0] != MAGIC_BYTE:
        raise EventError(
            ReasonCode.NOT_WIRE_FORMAT,
            f"first byte is {view[0]:#04x}, expected magic byte {MAGIC_BYTE:#04x}",
        )
    schema_id = int.from_bytes(view[1:HEADER_SIZE], "big")
    return schema_id, view[HEADER_SIZE:]
