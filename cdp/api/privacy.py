"""GDPR export and erasure of one person (admin only).

:func:`collect` gathers everything the read model stores about the person a
profile id (or an alias of it) belongs to: the document, every identifier index
entry linked to the profile, every alias that resolves to it (over any number of
hops) and the change-stream entries of those ids. Aliases and identifier entries
have no reverse index, so ``collect`` scans the namespace's alias and identifier
keys (``SCAN`` in batches): an erasure or export costs O(keys in the namespace).

:class:`Eraser` erases such a person:

1. Kafka first: a tombstone (null value) for every profile id on the compacted
   ``profile.changes`` and for every identifier key on ``identity.assignments``,
   and an audit event on ``privacy.audit`` -- sent with an idempotent
   ``acks=all`` producer, and the call waits for every acknowledgement. If any
   is missing the erasure stops before Redis is touched (503, safe to retry).
   With the tombstones in place, a rebuild from Kafka (``cdp rebuild``) cannot
   bring the person back. An erasure request on ``identity.observations``
   makes the workers forget the person as well: the identity stage removes the
   identifiers from its graph and tells the facts and profile stages to drop
   their state (see ``docs/api.md``, "Erasure").
2. Redis: ``ProfileDelete`` for the profile (and every aliased id that still
   holds a document) and ``IdentifierUnlink`` for its identifiers, versioned
   one above the stored version so they apply and leave tombstones that keep
   older replays out; then the alias keys that resolve to the profile are
   removed.

The audit event names who (department and key id), when, the profile id and
counts; never identifier values or document content. Log lines name profile
ids and counts only.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.api.access import Principal
from cdp.api.errors import Unavailable
from cdp.api.models import AliasEntry, ChangeOut, EraseReceipt, ExportOut, IdentifierEntry
from cdp.messages import ErasureRequest
from cdp.serve import keys
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import IdentifierUnlink, ProfileDelete, Write
from cdp.settings import Settings
from cdp.topics import Topics

log = logging.getLogger("cdp.api.privacy")

SCAN_BATCH = 1000
CHANGE_BATCH = 5000
KAFKA_ACK_TIMEOUT_S = 20.0


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int | None:
    text = _text(value)
    return None if text is None else int(text)


@dataclass
class Person:
    """Everything the read model stores about one person (see :func:`collect`)."""

    requested_id: str
    profile_id: str
    version: int | None
    stage: str | None
    stage_entered_ms: int | None
    document: bytes
    related_ids: set[str]
    """The profile id and every id whose alias chain resolves to it."""
    aliases: list[AliasEntry] = field(default_factory=list)
    identifiers: list[IdentifierEntry] = field(default_factory=list)
    document_identifiers: list[str] = field(default_factory=list)

    @property
    def identifier_keys(self) -> list[str]:
        """Identifier keys of the person: from the index and from the document, sorted."""
        return sorted({entry.key for entry in self.identifiers} | set(self.document_identifiers))


def _scan(store: ReadModelStore, pattern: str) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in store.client.scan_iter(match=pattern, count=SCAN_BATCH):
        batch.append(key)
        if len(batch) >= SCAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _alias_map(store: ReadModelStore) -> dict[str, tuple[str, int | None]]:
    """alias id -> (target, version), for every alias of the namespace."""
    prefix = keys.alias(store.namespace, "")
    out: dict[str, tuple[str, int | None]] = {}
    for batch in _scan(store, prefix + "*"):
        with store.client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, "to", "v")
            replies = pipe.execute()
        for key, (target, version) in zip(batch, replies, strict=True):
            to = _text(target)
            if to is not None:
                out[key.decode("utf-8")[len(prefix) :]] = (to, _int(version))
    return out


def collect(store: ReadModelStore, requested_id: str) -> Person | None:
    """Everything stored about the person ``requested_id`` resolves to; None if no profile."""
    profile_id = store.resolve(requested_id)
    if profile_id is None:
        return None
    client = store.client
    raw = client.hmget(keys.profile(store.namespace, profile_id), "v", "doc", "stage", "ms")
    version, doc, stage, ms = raw
    if doc is None:  # deleted between resolve and read
        return None
    document = doc if isinstance(doc, bytes) else str(doc).encode()

    alias_map = _alias_map(store)
    reverse: dict[str, list[str]] = {}
    for alias_id, (target, _version) in alias_map.items():
        reverse.setdefault(target, []).append(alias_id)
    related = {profile_id}
    pending = [profile_id]
    while pending:
        current = pending.pop()
        for alias_id in reverse.get(current, ()):
            if alias_id not in related:
                related.add(alias_id)
                pending.append(alias_id)
    aliases = [
        AliasEntry(alias_id=alias_id, to=target, version=version_)
        for alias_id, (target, version_) in sorted(alias_map.items())
        if target in related
    ]

    identifiers: list[IdentifierEntry] = []
    ident_prefix = keys.identifier_by_digest(store.namespace, "")
    for batch in _scan(store, ident_prefix + "*"):
        with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hmget(key, "p", "k", "v")
            replies = pipe.execute()
        for key, (target, ident, ident_version) in zip(batch, replies, strict=True):
            target_id, ident_key = _text(target), _text(ident)
            if target_id in related and ident_key is not None:
                identifiers.append(
                    IdentifierEntry(
                        key=ident_key,
                        profile_id=target_id,
                        version=_int(ident_version),
                        digest=key.decode("utf-8")[len(ident_prefix) :],
                    )
                )
    identifiers.sort(key=lambda entry: entry.key)

    try:
        parsed = json.loads(document)
        listed = parsed.get("identifiers", []) if isinstance(parsed, dict) else []
        doc_identifiers = [str(item) for item in listed if isinstance(item, str)]
    except ValueError:
        doc_identifiers = []

    return Person(
        requested_id=requested_id,
        profile_id=profile_id,
        version=_int(version),
        stage=_text(stage),
        stage_entered_ms=_int(ms),
        document=document,
        related_ids=related,
        aliases=aliases,
        identifiers=identifiers,
        document_identifiers=doc_identifiers,
    )


def person_changes(store: ReadModelStore, person: Person) -> list[ChangeOut]:
    """The change-stream entries of the person's ids still kept in the (capped) stream."""
    out: list[ChangeOut] = []
    after: str | None = None
    while True:
        batch = store.changes(after, CHANGE_BATCH)
        if not batch:
            return out
        for change in batch:
            if change.profile_id in person.related_ids:
                out.append(
                    ChangeOut(
                        id=change.id,
                        profile_id=change.profile_id,
                        version=change.version,
                        op=change.op.value,
                    )
                )
        after = batch[-1].id


def export(store: ReadModelStore, person: Person) -> ExportOut:
    """The export of ``person``: document, index entries, aliases and change entries."""
    try:
        document = json.loads(person.document)
    except ValueError:
        document = {"raw": person.document.decode("utf-8", "replace")}
    if not isinstance(document, dict):
        document = {"raw": document}
    return ExportOut(
        requested_id=person.requested_id,
        profile_id=person.profile_id,
        exported_at=datetime.now(UTC),
        version=person.version,
        stage=person.stage,
        stage_entered_ms=person.stage_entered_ms,
        document=document,
        identifiers=person.identifiers,
        aliases=person.aliases,
        changes=person_changes(store, person),
    )


class Eraser:
    """Erases people: Kafka tombstones and an audit event (acknowledged), then Redis."""

    def __init__(self, settings: Settings, store: ReadModelStore) -> None:
        self.settings = settings
        self.store = store
        self.topics = Topics(settings.namespace)
        self._producer: Any = None
        self._lock = threading.Lock()

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                from confluent_kafka import Producer

                self._producer = Producer(
                    {
                        "bootstrap.servers": self.settings.kafka_bootstrap,
                        "client.id": f"cdp-api-{self.settings.namespace}",
                        "enable.idempotence": True,
                        "acks": "all",
                        # The workers' partitioner (cdp/outputs.py): a tombstone must land in
                        # the partition of the record it deletes, or compaction keeps both.
                        "partitioner": "murmur2_random",
                        "linger.ms": 0,
                        "message.timeout.ms": int(KAFKA_ACK_TIMEOUT_S * 1000) - 2000,
                    }
                )
            return self._producer

    def close(self) -> None:
        """Flush and drop the producer (if one was made)."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(5.0)
                self._producer = None

    def erase(self, person: Person, principal: Principal) -> EraseReceipt:
        """Erase ``person`` (module docstring); :class:`Unavailable` if Kafka does not ack."""
        now = datetime.now(UTC)
        audit_id = uuid.uuid4().hex
        profile_ids = sorted(person.related_ids)
        identifier_keys = person.identifier_keys
        audit = {
            "type": "profile_erased",
            "audit_id": audit_id,
            "at": now.isoformat().replace("+00:00", "Z"),
            "department": principal.department,
            "key_id": principal.key_id,
            "profile_id": person.profile_id,
            "identifier_count": len(identifier_keys),
            "alias_count": len(person.aliases),
            "profile_id_count": len(profile_ids),
        }
        records: list[tuple[str, bytes, bytes | None]] = [
            (self.topics.profiles, pid.encode("utf-8"), None) for pid in profile_ids
        ]
        records += [(self.topics.assignments, key.encode("utf-8"), None) for key in identifier_keys]
        # The workers forget the person too (identity graph, facts, profile state), so
        # neither a restart nor a replay can write it to Redis again.
        records.append(
            (
                self.topics.observations,
                audit_id.encode("utf-8"),
                ErasureRequest(tuple(identifier_keys), audit_id).to_bytes(),
            )
        )
        records.append(
            (
                self.topics.privacy_audit,
                person.profile_id.encode("utf-8"),
                json.dumps(audit, sort_keys=True, separators=(",", ":")).encode("utf-8"),
            )
        )
        self._send_and_wait(records)
        deleted = self._erase_redis(person, profile_ids, identifier_keys)
        log.info(
            "erased profile %s: %d identifiers, %d aliases, audit %s",
            person.profile_id,
            len(identifier_keys),
            len(person.aliases),
            audit_id,
        )
        return EraseReceipt(
            audit_id=audit_id,
            profile_id=person.profile_id,
            requested_id=person.requested_id,
            erased_at=now,
            department=principal.department,
            identifier_count=len(identifier_keys),
            alias_count=len(person.aliases),
            profile_ids_deleted=deleted,
            tombstones={
                self.topics.profiles: len(profile_ids),
                self.topics.assignments: len(identifier_keys),
            },
            audit_topic=self.topics.privacy_audit,
        )

    def _send_and_wait(self, records: list[tuple[str, bytes, bytes | None]]) -> None:
        """Produce ``records`` and wait for every acknowledgement; :class:`Unavailable` if not."""
        try:
            producer = self._get_producer()
        except Exception as exc:
            raise Unavailable("Kafka producer cannot be created") from exc
        failures: list[str] = []
        acked = 0
        done = threading.Lock()

        def on_delivery(err: Any, _msg: Any) -> None:
            nonlocal acked
            with done:
                if err is None:
                    acked += 1
                else:
                    failures.append(str(err.name()))

        try:
            for topic, key, value in records:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        except Exception as exc:
            raise Unavailable(
                "Kafka did not accept the erasure records", details={"error": type(exc).__name__}
            ) from exc
        producer.flush(KAFKA_ACK_TIMEOUT_S)
        with done:
            if failures or acked < len(records):
                log.warning(
                    "erasure: %d of %d Kafka records acknowledged (%s)",
                    acked,
                    len(records),
                    ",".join(sorted(set(failures))) or "timeout",
                )
                raise Unavailable(
                    "Kafka did not acknowledge the erasure; nothing was removed, retry",
                    details={"errors": sorted(set(failures)) or ["timeout"]},
                )

    def _erase_redis(
        self, person: Person, profile_ids: list[str], identifier_keys: list[str]
    ) -> list[str]:
        client, ns = self.store.client, self.store.namespace
        with client.pipeline(transaction=False) as pipe:
            for pid in profile_ids:
                pipe.hmget(keys.profile(ns, pid), "v", "doc")
            for key in identifier_keys:
                pipe.hget(keys.identifier(ns, key), "v")
            replies = pipe.execute()
        writes: list[Write] = []
        deleted: list[str] = []
        for pid, (version, doc) in zip(profile_ids, replies[: len(profile_ids)], strict=True):
            if doc is not None:
                writes.append(ProfileDelete(pid, (_int(version) or 0) + 1))
                deleted.append(pid)
        for key, version in zip(identifier_keys, replies[len(profile_ids) :], strict=True):
            if version is not None:
                writes.append(IdentifierUnlink(key, (_int(version) or 0) + 1))
        self.store.apply(writes)
        alias_keys = [keys.alias(ns, entry.alias_id) for entry in person.aliases]
        for start in range(0, len(alias_keys), SCAN_BATCH):
            client.unlink(*alias_keys[start : start + SCAN_BATCH])
        return deleted
