"""Avro codec: records <-> Confluent wire-format bytes.

Records are the plain Python data fastavro reads and writes: dicts for
records, :class:`~decimal.Decimal` for decimals, aware :class:`~datetime.datetime`
for timestamps, and ``(full record name, dict)`` tuples for union branches that
are records (so the branch is explicit when writing and visible when reading).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from cdp.contracts.registry import RegisteredSchema, SchemaRegistry
from cdp.contracts.wire import header, unframe
from cdp.errors import CdpError, EventError, ReasonCode


class EncodeError(CdpError):
    """A record does not fit the schema of its subject; the message names fields, not values."""

    def __init__(self, subject: str, problems: list[str]) -> None:
        super().__init__(f"record does not fit {subject}: " + "; ".join(problems))
        self.subject = subject
        self.problems = problems


class AvroCodec:
    """Encodes records with the latest version of a subject; decodes any registered version.

    Decoding resolves the writer's schema (found by the id in the wire header)
    against the latest version of the same subject, so data written with older
    versions comes out in the latest shape (new fields get their defaults).
    Schemas are parsed once by the registry; the codec also caches the wire
    headers, so a call costs one ``BytesIO`` and one fastavro read or write.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._headers: dict[int, bytes] = {}

    def encode(self, subject: str, record: dict[str, Any]) -> bytes:
        """Serialize ``record`` with the latest version of ``subject``, wire-framed.

        Raises :class:`EncodeError` when the record does not fit the schema.
        """
        schema = self.registry.latest(subject)
        return self.encode_with(schema, record)

    def encode_with(self, schema: RegisteredSchema, record: dict[str, Any]) -> bytes:
        """Serialize ``record`` with a given schema version (tools, tests, old writers)."""
        head = self._headers.get(schema.id)
        if head is None:
            head = self._headers[schema.id] = header(schema.id)
        buffer = BytesIO()
        buffer.write(head)
        try:
            schemaless_writer(buffer, schema.parsed, record)
        except Exception as exc:
            raise EncodeError(schema.subject, _explain(schema, record, exc)) from None
        return buffer.getvalue()

    def decode(
        self, data: bytes | bytearray | memoryview | None
    ) -> tuple[RegisteredSchema, dict[str, Any]]:
        """Read a wire-framed record; return the writer's schema and the record.

        The record has the shape of the subject's latest version. Raises
        :class:`~cdp.errors.EventError` with ``NOT_WIRE_FORMAT`` (bad header),
        ``UNKNOWN_SCHEMA_ID`` (id not registered) or ``AVRO_DECODE_ERROR``
        (body is not valid Avro for that schema, or has trailing bytes).
        """
        schema_id, body = unframe(data)
        writer = self.registry.by_id(schema_id)
        try:
            reader = self.registry.latest(writer.subject)
        except CdpError:
            reader = writer
        buffer = BytesIO(body)
        try:
            record = schemaless_reader(
                buffer,
                writer.parsed,
                None if reader is writer or reader.id == writer.id else reader.parsed,
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:
            raise EventError(
                ReasonCode.AVRO_DECODE_ERROR,
                f"body is not valid Avro for {writer.subject} v{writer.version}"
                f" (schema id {schema_id}): {type(exc).__name__}",
            ) from None
        if buffer.tell() != len(body):
            raise EventError(
                ReasonCode.AVRO_DECODE_ERROR,
                f"{len(body) - buffer.tell()} trailing bytes after the {writer.subject} record"
                f" (schema id {schema_id})",
            )
        if not isinstance(record, dict):
            raise EventError(
                ReasonCode.AVRO_DECODE_ERROR,
                f"schema id {schema_id} does not describe a record",
            )
        return writer, record


def _explain(schema: RegisteredSchema, record: Any, exc: Exception) -> list[str]:
    """Field-level reasons a record does not fit, without the record's values."""
    if not isinstance(record, dict):
        return [f"expected a dict, got {type(record).__name__}"]
    try:
        validate(record, schema.parsed, raise_errors=True)
    except ValidationError as error:
        problems = []
        for item in error.errors:
            expected = _type_label(getattr(item, "schema", None))
            field = getattr(item, "field", None) or "<record>"
            got = type(getattr(item, "datum", None)).__name__
            problems.append(f"{field}: expected {expected}, got {got}")
        if problems:
            return sorted(set(problems))
    except Exception:  # validation itself failed; fall back to the writer's error
        pass
    return [f"{type(exc).__name__}: {exc}"]


def _type_label(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "|".join(_type_label(branch) for branch in schema)
    if isinstance(schema, dict):
        if "logicalType" in schema:
            return str(schema["logicalType"])
        if "name" in schema:
            return str(schema["name"])
        return str(schema.get("type"))
    return type(schema).__name__
