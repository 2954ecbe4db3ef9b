"""Dead letters: records a processor could not accept, kept with their context.

A dead-letter record carries the *original* key and value bytes unchanged and
describes where it came from and why it was rejected in headers
(``docs/topics.md`` has the contract):

==================  =====================================================
header              value
==================  =====================================================
``cdp.reason``      machine-readable :class:`~cdp.errors.ReasonCode`
``cdp.detail``      human-readable explanation; names fields, never values
``cdp.processor``   the processor that rejected it (``ingest``, ...)
``cdp.source.*``    ``topic``, ``partition``, ``offset``, ``timestamp``
==================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cdp.errors import ReasonCode

HEADER_PREFIX = "cdp."
_ORIGINAL_HEADER_PREFIX = "cdp.original."


@dataclass(frozen=True)
class SourceRecord:
    """A consumed Kafka record with its coordinates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class DeadLetter:
    """A rejected record plus the reason, ready to be written to the dead-letter topic."""

    source: SourceRecord
    reason: ReasonCode
    detail: str
    processor: str

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers describing the rejection (original headers kept, prefixed)."""
        src = self.source
        headers = [
            ("cdp.reason", self.reason.value.encode()),
            ("cdp.detail", self.detail.encode()),
            ("cdp.processor", self.processor.encode()),
            ("cdp.source.topic", src.topic.encode()),
            ("cdp.source.partition", str(src.partition).encode()),
            ("cdp.source.offset", str(src.offset).encode()),
        ]
        if src.timestamp_ms is not None:
            headers.append(("cdp.source.timestamp", str(src.timestamp_ms).encode()))
        headers += [(_ORIGINAL_HEADER_PREFIX + k, v) for k, v in src.headers]
        return headers

    @classmethod
    def from_kafka(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes | None]] | None,
    ) -> DeadLetter:
        """Rebuild a dead letter from a record read back from the dead-letter topic."""
        found: dict[str, bytes] = {}
        originals: list[tuple[str, bytes]] = []
        for name, raw in headers or ():
            data = raw or b""
            if name.startswith(_ORIGINAL_HEADER_PREFIX):
                originals.append((name[len(_ORIGINAL_HEADER_PREFIX) :], data))
            else:
                found[name] = data
        try:
            timestamp = found.get("cdp.source.timestamp")
            source = SourceRecord(
                topic=found["cdp.source.topic"].decode(),
                partition=int(found["cdp.source.partition"]),
                offset=int(found["cdp.source.offset"]),
                key=key,
                value=value,
                timestamp_ms=int(timestamp) if timestamp else None,
                headers=tuple(originals),
            )
            return cls(
                source=source,
                reason=ReasonCode(found["cdp.reason"].decode()),
                detail=found.get("cdp.detail", b"").decode(),
                processor=found.get("cdp.processor", b"").decode(),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a cdp dead-letter record: {exc}") from None


def headers_to_tuples(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> tuple[tuple[str, bytes], ...]:
    """Normalise Kafka client header shapes (list of pairs or dict) to a tuple of pairs."""
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), v.encode() if isinstance(v, str) else (v or b"")) for k, v in items)
