"""The committed schemas: in sync with their sources and with the pydantic models."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import pytest

from cdp.contracts.build import generate
from cdp.contracts.compat import check_schemas
from cdp.contracts.events import (
    CANONICAL_SUBJECT,
    CHANNEL_SUBJECTS,
    EVENT_CHANNELS,
    PAYLOAD_MODELS,
    PAYLOAD_RECORDS,
    Event,
    Payload,
)
from cdp.contracts.registry import LocalSchemaRegistry, fingerprint
from cdp.settings import PROJECT_ROOT
from cdp.topics import Channel

SCHEMAS = PROJECT_ROOT / "schemas"
REGISTRY = LocalSchemaRegistry(SCHEMAS)


def test_committed_schemas_pass_the_check() -> None:
    assert check_schemas(SCHEMAS) == []


def test_committed_latest_versions_are_generated_from_src() -> None:
    generated = generate(SCHEMAS)
    assert sorted(generated) == sorted([*CHANNEL_SUBJECTS.values(), CANONICAL_SUBJECT])
    for subject, schema in generated.items():
        assert fingerprint(schema) == fingerprint(REGISTRY.latest(subject).raw), subject


def named_records(schema: Any, found: dict[str, dict[str, Any]], namespace: str = "") -> None:
    """Collect every record defined anywhere in ``schema`` by full name."""
    if isinstance(schema, list):
        for item in schema:
            named_records(item, found, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum"):
            ns = schema.get("namespace", namespace)
            found[f"{ns}.{schema['name']}"] = schema
            for fld in schema.get("fields", []):
                named_records(fld["type"], found, ns)
        elif kind == "array":
            named_records(schema["items"], found, namespace)
        elif kind == "map":
            named_records(schema["values"], found, namespace)


def records_of(subject: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    named_records(REGISTRY.latest(subject).raw, found)
    return found


def payload_union(subject: str) -> list[str]:
    fields = {f["name"]: f for f in REGISTRY.latest(subject).raw["fields"]}
    return [branch["namespace"] + "." + branch["name"] for branch in fields["payload"]["type"]]


def test_channel_unions_hold_exactly_their_channel_payloads() -> None:
    for channel, subject in CHANNEL_SUBJECTS.items():
        expected = sorted(PAYLOAD_RECORDS[t] for t, c in EVENT_CHANNELS.items() if c is channel)
        assert sorted(payload_union(subject)) == expected
        assert all(name.startswith(f"cdp.payload.{channel.value}.") for name in expected)
    assert sorted(payload_union(CANONICAL_SUBJECT)) == sorted(PAYLOAD_RECORDS.values())


def test_canonical_payload_records_equal_the_channel_ones() -> None:
    canonical = records_of(CANONICAL_SUBJECT)
    for subject in CHANNEL_SUBJECTS.values():
        for name, record in records_of(subject).items():
            if name.startswith("cdp.channel."):
                continue
            assert canonical[name] == record, name


def test_channel_and_canonical_envelopes_are_equal() -> None:
    def envelope(subject: str) -> list[dict[str, Any]]:
        return [f for f in REGISTRY.latest(subject).raw["fields"] if f["name"] != "payload"]

    canonical = envelope(CANONICAL_SUBJECT)
    for subject in CHANNEL_SUBJECTS.values():
        assert envelope(subject) == canonical


def avro_nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def python_nullable(annotation: Any) -> bool:
    return get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in get_args(
        annotation
    )


def literal_values(annotation: Any) -> list[str] | None:
    for arg in [annotation, *get_args(annotation)]:
        if get_origin(arg) is Literal:
            return list(get_args(arg))
    return None


@pytest.mark.parametrize("event_type", sorted(PAYLOAD_MODELS))
def test_payload_models_match_avro_records(event_type: str) -> None:
    model: type[Payload] = PAYLOAD_MODELS[event_type]
    subject = CHANNEL_SUBJECTS[EVENT_CHANNELS[event_type]]
    record = records_of(subject)[PAYLOAD_RECORDS[event_type]]
    avro_fields = {f["name"]: f for f in record["fields"]}
    assert list(avro_fields) == list(model.model_fields), event_type
    for name, info in model.model_fields.items():
        avro_type = avro_fields[name]["type"]
        assert avro_nullable(avro_type) == python_nullable(info.annotation), f"{event_type}.{name}"
        symbols = literal_values(info.annotation)
        if symbols is not None:
            assert isinstance(avro_type, dict) and avro_type["type"] == "enum"
            assert avro_type["symbols"] == symbols, f"{event_type}.{name}"


def test_envelope_matches_event_model() -> None:
    fields = {f["name"]: f for f in REGISTRY.latest(CANONICAL_SUBJECT).raw["fields"]}
    assert list(fields) == list(Event.model_fields)
    assert avro_nullable(fields["region"]["type"])
    assert fields["traits"]["default"] == {} and fields["consents"]["default"] == []
    assert fields["event_time"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}


def test_money_fields_are_decimal_18_2() -> None:
    for name, record in records_of(CANONICAL_SUBJECT).items():
        if not name.startswith("cdp.payload."):
            continue
        for fld in record.get("fields", []):
            if fld["name"] in ("value", "price", "unit_price", "amount"):
                branches = fld["type"] if isinstance(fld["type"], list) else [fld["type"]]
                decimal = next(b for b in branches if b != "null")
                assert decimal == {
                    "type": "bytes",
                    "logicalType": "decimal",
                    "precision": 18,
                    "scale": 2,
                }


def test_subjects_are_record_full_names() -> None:
    for subject in [*CHANNEL_SUBJECTS.values(), CANONICAL_SUBJECT]:
        raw = REGISTRY.latest(subject).raw
        assert f"{raw['namespace']}.{raw['name']}" == subject
    assert set(CHANNEL_SUBJECTS) == set(Channel)
