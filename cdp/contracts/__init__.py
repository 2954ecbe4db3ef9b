"""Event contracts: Avro schemas, the wire format, the codec and the typed event models.

* :mod:`cdp.contracts.wire` -- Confluent wire framing (magic byte + schema id).
* :mod:`cdp.contracts.registry` -- schema ids: local manifest or Confluent registry.
* :mod:`cdp.contracts.codec` -- :class:`AvroCodec`, records <-> framed bytes.
* :mod:`cdp.contracts.events` -- pydantic event models and Avro conversions.
* :mod:`cdp.contracts.build` / :mod:`cdp.contracts.compat` -- schema generation and CI check.

The contract itself is specified in ``docs/specs/events.md``.
"""

from cdp.contracts.codec import AvroCodec, EncodeError
from cdp.contracts.registry import (
    ConfluentSchemaRegistry,
    LocalSchemaRegistry,
    RegisteredSchema,
    SchemaRegistry,
    SchemaRegistryError,
    registry_from_settings,
)
from cdp.contracts.wire import MAGIC_BYTE, frame, unframe

__all__ = [
    "MAGIC_BYTE",
    "AvroCodec",
    "ConfluentSchemaRegistry",
    "EncodeError",
    "LocalSchemaRegistry",
    "RegisteredSchema",
    "SchemaRegistry",
    "SchemaRegistryError",
    "frame",
    "registry_from_settings",
    "unframe",
]
