"""Local and Confluent schema registries (the Confluent client is mocked)."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import CANONICAL_SUBJECT, CHANNEL_SUBJECTS, encode_event
from cdp.contracts.examples import example_events
from cdp.contracts.registry import (
    ConfluentSchemaRegistry,
    LocalSchemaRegistry,
    RegisteredSchema,
    SchemaRegistryError,
    read_manifest,
    registry_from_settings,
)
from cdp.contracts.wire import unframe
from cdp.errors import EventError, ReasonCode
from cdp.settings import PROJECT_ROOT, load_settings

SCHEMAS = PROJECT_ROOT / "schemas"
ALL_SUBJECTS = sorted([*CHANNEL_SUBJECTS.values(), CANONICAL_SUBJECT])


# ------------------------------------------------------------------ local


def test_local_registry_knows_every_subject() -> None:
    registry = LocalSchemaRegistry(SCHEMAS)
    assert registry.subjects() == ALL_SUBJECTS
    ids = set()
    for subject in ALL_SUBJECTS:
        latest = registry.latest(subject)
        assert isinstance(latest, RegisteredSchema)
        assert latest.subject == subject
        assert latest.version == len(registry.versions(subject))
        assert registry.by_id(latest.id) is latest
        assert latest.parsed["type"] == "record"
        assert json.loads(latest.schema_str) == latest.raw
        ids.add(latest.id)
    assert len(ids) == len(ALL_SUBJECTS)


def test_local_registry_errors(tmp_path: Path) -> None:
    registry = LocalSchemaRegistry(SCHEMAS)
    with pytest.raises(EventError) as caught:
        registry.by_id(424242)
    assert caught.value.reason is ReasonCode.UNKNOWN_SCHEMA_ID
    with pytest.raises(SchemaRegistryError, match="unknown subject"):
        registry.latest("cdp.Nope")
    with pytest.raises(SchemaRegistryError, match="does not exist"):
        LocalSchemaRegistry(tmp_path)
    (tmp_path / "registry.json").write_text('{"schemas": [{"id": "x"}]}')
    with pytest.raises(SchemaRegistryError, match="malformed"):
        LocalSchemaRegistry(tmp_path)


def test_local_registry_rejects_duplicate_ids(tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    manifest = json.loads((target / "registry.json").read_text())
    manifest["schemas"][1]["id"] = manifest["schemas"][0]["id"]
    (target / "registry.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaRegistryError, match="used twice"):
        LocalSchemaRegistry(target)


def test_registry_from_settings_local_by_default() -> None:
    registry = registry_from_settings(load_settings(schema_registry_url=None))
    assert isinstance(registry, LocalSchemaRegistry)


# ------------------------------------------------------------------ confluent (mocked)


class FakeRegistryError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.http_status_code = status


class FakeSchema:
    def __init__(self, schema_str: str, schema_type: str = "AVRO") -> None:
        self.schema_str = schema_str
        self.schema_type = schema_type


class FakeClient:
    """In-memory stand-in for confluent_kafka's SchemaRegistryClient."""

    instances: ClassVar[list[FakeClient]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, FakeSchema] = {}
        self.calls: list[tuple[str, Any]] = []
        self.next_id = 100
        FakeClient.instances.append(self)

    def register_schema(self, subject: str, schema: FakeSchema) -> int:
        self.calls.append(("register", subject))
        key = f"{subject}|{schema.schema_str}"
        if key not in self.ids:
            self.ids[key] = self.next_id
            self.schemas[self.next_id] = schema
            self.next_id += 1
        return self.ids[key]

    def lookup_schema(self, subject: str, schema: FakeSchema) -> Any:
        self.calls.append(("lookup", subject))
        key = f"{subject}|{schema.schema_str}"
        if key not in self.ids:
            raise FakeRegistryError(404)
        return types.SimpleNamespace(schema_id=self.ids[key])

    def get_schema(self, schema_id: int) -> FakeSchema:
        self.calls.append(("get", schema_id))
        if schema_id not in self.schemas:
            raise FakeRegistryError(404)
        return self.schemas[schema_id]


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("confluent_kafka.schema_registry")
    module.SchemaRegistryClient = FakeClient  # type: ignore[attr-defined]
    module.Schema = FakeSchema  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "confluent_kafka.schema_registry", module)
    FakeClient.instances.clear()
    return module


def test_confluent_registers_all_versions_once(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry(
        "http://registry:8081", SCHEMAS, client_config={"timeout": 5}
    )
    client = FakeClient.instances[0]
    assert client.conf == {"url": "http://registry:8081", "timeout": 5}
    web = CHANNEL_SUBJECTS[next(iter(CHANNEL_SUBJECTS))]
    versions = sum(1 for e in read_manifest(SCHEMAS) if e.subject == web)
    latest = registry.latest(web)
    assert latest.id == 100 + versions - 1  # the registry's id, not the manifest's
    assert latest.subject == web and latest.version == versions
    assert registry.latest(web) is latest
    registered = [("register", web)] * versions  # every version, in order, once
    assert client.calls == registered
    assert registry.by_id(latest.id) is latest  # from the cache, no request
    assert client.calls == registered


def test_confluent_codec_round_trip(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS)
    codec = AvroCodec(registry)
    event = example_events()[0]
    data = encode_event(codec, event)
    versions = sum(
        1 for e in read_manifest(SCHEMAS) if e.subject == CHANNEL_SUBJECTS[event.channel]
    )
    assert unframe(data)[0] == 100 + versions - 1

    # another process (fresh cache) decodes by asking the registry
    other = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS, client=FakeClient.instances[0])
    schema, record = AvroCodec(other).decode(data)
    assert schema.subject == CHANNEL_SUBJECTS[event.channel]
    assert schema.version == versions  # matched with the committed version
    assert record["event_id"] == event.event_id


def test_confluent_unknown_id_is_cached(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS)
    client = FakeClient.instances[0]
    for _ in range(3):
        with pytest.raises(EventError) as caught:
            registry.by_id(7)
        assert caught.value.reason is ReasonCode.UNKNOWN_SCHEMA_ID
    assert client.calls == [("get", 7)]


def test_confluent_outage_is_not_a_dead_letter(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS)
    client = FakeClient.instances[0]

    def broken(schema_id: int) -> Any:
        raise FakeRegistryError(503)

    client.get_schema = broken  # type: ignore[method-assign]
    with pytest.raises(SchemaRegistryError, match="could not fetch"):
        registry.by_id(7)

    def refuse(subject: str, schema: Any) -> int:
        raise FakeRegistryError(409)

    client.register_schema = refuse  # type: ignore[method-assign]
    with pytest.raises(SchemaRegistryError, match="could not register"):
        registry.latest(CANONICAL_SUBJECT)


def test_confluent_non_avro_or_broken_schema(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS)
    client = FakeClient.instances[0]
    client.schemas[5] = FakeSchema('{"type": "object"}', "JSON")
    client.schemas[6] = FakeSchema("not json")
    for schema_id in (5, 6):
        with pytest.raises(EventError) as caught:
            registry.by_id(schema_id)
        assert caught.value.reason is ReasonCode.UNKNOWN_SCHEMA_ID


def test_confluent_lookup_only(fake_module: types.ModuleType) -> None:
    registry = ConfluentSchemaRegistry("http://registry:8081", SCHEMAS, auto_register=False)
    with pytest.raises(SchemaRegistryError, match="could not look up"):
        registry.latest(CANONICAL_SUBJECT)
    writer = ConfluentSchemaRegistry(
        "http://registry:8081", SCHEMAS, client=FakeClient.instances[0]
    )
    registered = writer.latest(CANONICAL_SUBJECT)
    again = ConfluentSchemaRegistry(
        "http://registry:8081", SCHEMAS, client=FakeClient.instances[0], auto_register=False
    )
    assert again.latest(CANONICAL_SUBJECT).id == registered.id


def test_registry_from_settings_picks_confluent(fake_module: types.ModuleType) -> None:
    settings = load_settings(schema_registry_url="http://registry:8081")
    registry = registry_from_settings(settings)
    assert isinstance(registry, ConfluentSchemaRegistry)
    assert registry.url == "http://registry:8081"


def test_missing_client_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka.schema_registry", None)
    with pytest.raises(SchemaRegistryError, match="schemaregistry"):
        ConfluentSchemaRegistry("http://registry:8081", SCHEMAS)
