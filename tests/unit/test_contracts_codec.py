"""AvroCodec: framing, decode errors, encode errors, old-version upgrade."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.contracts.build import build
from cdp.contracts.codec import AvroCodec, EncodeError
from cdp.contracts.events import (
    CANONICAL_SUBJECT,
    CHANNEL_SUBJECTS,
    Identifier,
    PageView,
    PageViewPayload,
    decode_channel_event,
    encode_event,
    event_to_avro,
)
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.contracts.wire import frame, unframe
from cdp.errors import EventError, ReasonCode
from cdp.settings import PROJECT_ROOT
from cdp.topics import Channel

SCHEMAS = PROJECT_ROOT / "schemas"
WEB = CHANNEL_SUBJECTS[Channel.WEB]


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(LocalSchemaRegistry(SCHEMAS))


def page_view(email: str = "jane.secret@example.com") -> PageView:
    return PageView(
        source="website",
        identifiers=[Identifier.email(email)],
        payload=PageViewPayload(url="https://www.example.com/pricing", page_category="pricing"),
    )


def reason(codec: AvroCodec, data: Any) -> EventError:
    with pytest.raises(EventError) as caught:
        codec.decode(data)
    return caught.value


def test_encode_uses_latest_version_and_wire_format(codec: AvroCodec) -> None:
    data = codec.encode(WEB, event_to_avro(page_view()))
    schema_id, _ = unframe(data)
    assert schema_id == codec.registry.latest(WEB).id
    schema, record = codec.decode(data)
    assert schema.subject == WEB
    assert record["payload"][0] == "cdp.payload.web.PageView"


@pytest.mark.parametrize(
    "data", [None, b"", b"\x00\x00", b"\x07\x00\x00\x00\x01abc", b"hello world"]
)
def test_not_wire_format(codec: AvroCodec, data: bytes | None) -> None:
    assert reason(codec, data).reason is ReasonCode.NOT_WIRE_FORMAT


def test_unknown_schema_id(codec: AvroCodec) -> None:
    body = bytes(unframe(codec.encode(WEB, event_to_avro(page_view())))[1])
    error = reason(codec, frame(999_999, body))
    assert error.reason is ReasonCode.UNKNOWN_SCHEMA_ID
    assert "999999" in error.detail


def test_truncated_body(codec: AvroCodec) -> None:
    data = codec.encode(WEB, event_to_avro(page_view()))
    for cut in (5, 6, len(data) // 2, len(data) - 1):
        assert reason(codec, data[:cut]).reason is ReasonCode.AVRO_DECODE_ERROR


def test_trailing_garbage(codec: AvroCodec) -> None:
    data = codec.encode(WEB, event_to_avro(page_view()))
    error = reason(codec, data + b"\x00garbage")
    assert error.reason is ReasonCode.AVRO_DECODE_ERROR
    assert "trailing" in error.detail


def test_garbage_body(codec: AvroCodec) -> None:
    error = reason(codec, frame(codec.registry.latest(WEB).id, b"\xff" * 40))
    assert error.reason is ReasonCode.AVRO_DECODE_ERROR


def test_decode_error_detail_has_no_values(codec: AvroCodec) -> None:
    data = codec.encode(WEB, event_to_avro(page_view()))
    error = reason(codec, data[:-3])
    assert "jane" not in str(error)


@settings(max_examples=500)
@given(st.sampled_from([1, 2, 3, 4, 5]), st.binary(max_size=200))
def test_random_bodies_only_raise_event_errors(schema_id: int, body: bytes) -> None:
    codec = AvroCodec(_REGISTRY)
    try:
        codec.decode(frame(schema_id, body))
    except EventError as error:
        assert error.reason is ReasonCode.AVRO_DECODE_ERROR


_REGISTRY = LocalSchemaRegistry(SCHEMAS)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_event_errors(data: bytes) -> None:
    with contextlib.suppress(EventError):
        AvroCodec(_REGISTRY).decode(data)


def test_encode_error_names_fields_not_values(codec: AvroCodec) -> None:
    record = event_to_avro(page_view())
    del record["source"]
    with pytest.raises(EncodeError) as caught:
        codec.encode(WEB, record)
    assert str(caught.value).startswith(f"record does not fit {WEB}:")
    assert "source: expected string" in str(caught.value)

    record = event_to_avro(page_view())
    record["identifiers"] = [{"type": "email", "value": 12345}]
    with pytest.raises(EncodeError) as caught:
        codec.encode(WEB, record)
    message = str(caught.value)
    assert "value: expected string, got int" in message
    assert "12345" not in message and "jane" not in message


def test_encode_error_for_wrong_union_branch(codec: AvroCodec) -> None:
    record = event_to_avro(example_events()[8])  # an order
    with pytest.raises(EncodeError, match="payload"):
        codec.encode(WEB, record)


def test_encode_error_for_non_dict(codec: AvroCodec) -> None:
    with pytest.raises(EncodeError, match="expected a dict"):
        codec.encode(WEB, [1, 2])  # type: ignore[arg-type]


def test_schemas_are_parsed_once(codec: AvroCodec) -> None:
    first = codec.registry.latest(CANONICAL_SUBJECT)
    assert codec.registry.latest(CANONICAL_SUBJECT).parsed is first.parsed
    assert codec.registry.by_id(first.id).parsed is first.parsed


# ------------------------------------------------------------------ schema evolution


def evolved_schemas(tmp_path: Path) -> Path:
    """A copy of the schemas where PageView gained an optional ``language`` (a new version)."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    before = LocalSchemaRegistry(target)
    web, canonical = before.latest(WEB).version, before.latest(CANONICAL_SUBJECT).version
    path = target / "src" / "types" / "cdp.payload.web.PageView.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append(
        {"name": "language", "type": ["null", "string"], "default": None, "doc": "Page language."}
    )
    path.write_text(json.dumps(schema, indent=2))
    added = build(target)
    assert {(n.subject, n.version) for n in added} == {
        (WEB, web + 1),
        (CANONICAL_SUBJECT, canonical + 1),
    }
    return target


def test_old_version_is_upgraded_to_latest(tmp_path: Path, codec: AvroCodec) -> None:
    old_bytes = encode_event(codec, page_view())  # written by an old producer
    old_version = codec.registry.latest(WEB).version
    new_codec = AvroCodec(LocalSchemaRegistry(evolved_schemas(tmp_path)))
    assert new_codec.registry.latest(WEB).version == old_version + 1
    writer, record = new_codec.decode(old_bytes)
    assert (writer.subject, writer.version) == (WEB, old_version)
    name, payload = record["payload"]
    assert name == "cdp.payload.web.PageView"
    assert payload["language"] is None  # the v2 default
    assert payload["url"] == "https://www.example.com/pricing"

    # new writers use v2, whose ids come after the v1 ids
    new_bytes = new_codec.encode(WEB, {**record, "payload": (name, {**payload, "language": "de"})})
    assert unframe(new_bytes)[0] == new_codec.registry.latest(WEB).id > writer.id
    assert new_codec.decode(new_bytes)[1]["payload"][1]["language"] == "de"


def test_old_version_decodes_into_the_current_model(codec: AvroCodec) -> None:
    v1 = codec.registry.by_id(codec.registry.latest(WEB).id)
    data = codec.encode_with(v1, event_to_avro(page_view()))
    assert decode_channel_event(codec, data, Channel.WEB).payload == page_view().payload
