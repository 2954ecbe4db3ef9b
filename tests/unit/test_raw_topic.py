"""Records of a ``raw_topic`` become Faust events as they are (``RawSchema``)."""

from __future__ import annotations

import asyncio

import faust
from faust.types import Message

from cdp.streams import RawSchema, raw_topic


def _message(value: bytes | None) -> Message:
    return Message("t.a", 2, 41, 0.0, 0, [("cdp.event_id", b"e-1")], b"email:a", value, None)


def test_an_agents_copy_of_a_raw_topic_gives_the_record_as_it_is() -> None:
    app = faust.App("raw-topic-test", broker="kafka://127.0.0.1:1")
    channel = raw_topic(app, "t.a", "t.b").clone(is_iterator=True)  # what an agent reads
    assert isinstance(channel.schema, RawSchema)
    assert (channel.key_serializer, channel.value_serializer) == ("raw", "raw")
    message = _message(b"\x00\x01avro")
    event = asyncio.run(channel.decode(message, propagate=True))
    assert (event.key, event.value, event.message) == (b"email:a", b"\x00\x01avro", message)
    assert event.message.headers == [("cdp.event_id", b"e-1")]
    tombstone = asyncio.run(channel.decode(_message(None)))
    assert tombstone.value is None and tombstone.message.offset == 41
