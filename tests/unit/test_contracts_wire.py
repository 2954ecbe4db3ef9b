"""Confluent wire framing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.contracts.wire import MAGIC_BYTE, frame, unframe
from cdp.errors import EventError, ReasonCode


def test_frame_layout() -> None:
    assert MAGIC_BYTE == 0
    assert frame(1, b"body") == b"\x00\x00\x00\x00\x01body"
    assert frame(0x01020304, b"") == b"\x00\x01\x02\x03\x04"


@given(st.integers(0, 2**31 - 1), st.binary(max_size=64))
def test_frame_unframe_round_trip(schema_id: int, body: bytes) -> None:
    got_id, got_body = unframe(frame(schema_id, body))
    assert got_id == schema_id
    assert bytes(got_body) == body


def test_unframe_does_not_copy_body() -> None:
    data = frame(7, b"x" * 100)
    _, body = unframe(data)
    assert isinstance(body, memoryview)
    assert body.obj is data


@pytest.mark.parametrize("data", [None, b"", b"\x00", b"\x00\x00\x00\x01"])
def test_too_short_is_not_wire_format(data: bytes | None) -> None:
    with pytest.raises(EventError) as caught:
        unframe(data)
    assert caught.value.reason is ReasonCode.NOT_WIRE_FORMAT


@pytest.mark.parametrize("data", [b"\x01\x00\x00\x00\x01body", b'{"json": true}'])
def test_wrong_magic_is_not_wire_format(data: bytes) -> None:
    with pytest.raises(EventError) as caught:
        unframe(data)
    assert caught.value.reason is ReasonCode.NOT_WIRE_FORMAT
    assert "magic" in caught.value.detail


@pytest.mark.parametrize("schema_id", [-1, 2**31])
def test_frame_rejects_out_of_range_ids(schema_id: int) -> None:
    with pytest.raises(ValueError):
        frame(schema_id, b"")
