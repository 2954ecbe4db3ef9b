"""Rebuild the Redis read model from Kafka (``cdp rebuild``).

Redis is a read model; Kafka is the source of truth. The rebuild wipes every
key of the namespace, then replays the two compacted topics the live stages
write alongside Redis:

* ``profile.changes`` (profile id -> latest document and its version, null =
  deleted) gives the profile documents (and tombstones), and
* ``identity.assignments`` (identifier key -> profile id and version) gives the
  identifier index and the aliases, exactly as the identity stage writes them.

Each topic is read from its beginning up to the end offsets taken when the
rebuild starts; the last record per key wins. The writes go through the same
version-guarded store as the live stages, in batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp.messages import Assignment
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import Write
from cdp.settings import Settings
from cdp.topic_reader import read_topic
from cdp.topics import Topics

Progress = Callable[[str], None]
BATCH = 2000


@dataclass(frozen=True)
class RebuildStats:
    """What a rebuild did."""

    wiped_keys: int
    profiles: int
    deleted_profiles: int
    identifiers: int
    seconds: float


def rebuild(settings: Settings, progress: Progress = lambda _line: None) -> RebuildStats:
    """Wipe the namespace in Redis and rebuild it from the compacted Kafka topics."""
    from cdp.identity.stage import identity_writes
    from cdp.journey.definition import load_journey_or_default
    from cdp.profile.document import profile_from_json
    from cdp.serve.journey import profile_upsert

    journey = load_journey_or_default(settings.journey_config)
    started = time.monotonic()
    topics = Topics(settings.namespace)
    with ReadModelStore.from_settings(settings) as store:
        wiped = store.wipe()
        progress(f"wiped {wiped} keys of namespace {settings.namespace!r}")

        profiles: dict[str, tuple[int, bytes] | None] = {}
        for key, value in read_topic(settings, topics.profiles, progress):
            if value is None:
                profiles[key] = None
            else:
                record = json.loads(value)
                profiles[key] = (int(record["v"]), _document(value))
        writes: list[Write] = []
        deleted = 0
        for _profile_id, entry in sorted(profiles.items()):
            if entry is None:
                deleted += 1  # a tombstone without a version: nothing older can be in Redis now
                continue
            document = profile_from_json(entry[1])
            writes.append(profile_upsert(document, entry[1], entry[0], journey))
        _apply(store, writes, "profiles", progress)

        # Last record per key first, then drop the nulls: a tombstone (GDPR erasure) must
        # win over the assignment before it.
        latest = dict(read_topic(settings, topics.assignments, progress))
        assignments = {
            key: Assignment.parse(value) for key, value in latest.items() if value is not None
        }
        writes = []
        for identifier, assignment in sorted(assignments.items()):
            writes += identity_writes(identifier, assignment.profile_id, assignment.version)
        _apply(store, writes, "identifier index and aliases", progress)

    return RebuildStats(
        wiped_keys=wiped,
        profiles=len(profiles) - deleted,
        deleted_profiles=deleted,
        identifiers=len(assignments),
        seconds=time.monotonic() - started,
    )


def _document(change_value: bytes) -> bytes:
    """The document bytes inside a ``{"doc": <document>, "v": N}`` change record, unchanged."""
    start = change_value.index(b'{"doc":') + len(b'{"doc":')
    end = change_value.rindex(b',"v":')
    return change_value[start:end]


def _apply(store: ReadModelStore, writes: list[Write], what: str, progress: Progress) -> None:
    for start in range(0, len(writes), BATCH):
        store.apply(writes[start : start + BATCH])
    progress(f"wrote {len(writes)} writes for {what}")
