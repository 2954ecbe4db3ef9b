"""The Redis read model: version-guarded batched writes and the reads the API serves.

Redis is a read model, Kafka the source of truth (``docs/specs/redis-layout.md``):
every write is guarded by a version so replays and late writes never overwrite
newer state, and :meth:`ReadModelStore.wipe` + a replay from Kafka rebuilds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, cast

import redis
from redis.exceptions import NoScriptError, ResponseError

from cdp.errors import CdpError
from cdp.serve import keys
from cdp.serve.keys import KeyKind
from cdp.serve.scripts import (
    APPLY_SHA,
    APPLY_SOURCE,
    LAYOUT_ERROR_PREFIX,
    Outcome,
    ScriptCall,
    decode,
    encode,
)
from cdp.serve.writes import Write
from cdp.settings import Settings

DEFAULT_CHANGE_STREAM_MAXLEN = 100_000
"""Approximate cap of the change stream (``XADD MAXLEN ~``)."""

DEFAULT_WRITES_PER_CALL = 500
"""Writes per script call; a batch is split into calls that share one pipeline round trip.

Measured on Redis 7.0 (``docs/specs/redis-layout.md``, "Write path"): 100 or more
writes per call run 1.5-3.5x as fast as one ``EVALSHA`` per write (and spend less
server time); from about 100 on, the call size makes no measurable difference.
500 keeps each call (Redis runs nothing else meanwhile) at a few milliseconds.
"""

MAX_ALIAS_HOPS = 32
"""Longest alias chain a read follows before it gives up (:class:`AliasCycleError`)."""

SCAN_COUNT = 1000
"""``COUNT`` hint of SCAN and the size of UNLINK / read pipelines in wipe and dump."""

_STREAM_ID = re.compile(r"^\d+-\d+$")


class ReadModelError(CdpError):
    """The read model cannot do what was asked (layout mismatch, corrupt data, ...)."""


class LayoutMismatchError(ReadModelError):
    """The namespace holds another layout version than this code writes (migrate or wipe)."""


class AliasCycleError(ReadModelError):
    """An alias chain loops or is longer than :data:`MAX_ALIAS_HOPS` (a writer bug)."""


class ChangeOp(StrEnum):
    """What a change-stream entry records."""

    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One change-stream entry: a profile write that changed the read model."""

    id: str
    """Stream entry id (``"<ms>-<seq>"``); pass it as ``after_id`` to resume."""
    profile_id: str
    version: int
    op: ChangeOp


@dataclass(frozen=True, slots=True)
class StageMember:
    """A profile in a journey stage and when it entered it (epoch ms)."""

    profile_id: str
    entered_ms: int


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """Per-write outcomes of :meth:`ReadModelStore.apply`, in batch order, and their counts."""

    outcomes: tuple[Outcome, ...] = ()

    @property
    def applied(self) -> int:
        """Writes applied: newer than the stored version, or equal (replayed)."""
        return sum(1 for o in self.outcomes if o is not Outcome.STALE)

    @property
    def replayed(self) -> int:
        """Of :attr:`applied`, the writes whose version equalled the stored one."""
        return sum(1 for o in self.outcomes if o is Outcome.REPLAYED)

    @property
    def stale(self) -> int:
        """Writes skipped because the stored version is newer."""
        return sum(1 for o in self.outcomes if o is Outcome.STALE)


@dataclass
class _Snapshot:
    """Everything stored in a namespace, decoded (the basis of dump and consistency checks)."""

    layout: int | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile_tombstones: dict[str, int] = field(default_factory=dict)
    identifiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    identifier_tombstones: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    stage_registry: list[str] = field(default_factory=list)
    funnel: dict[str, int] = field(default_factory=dict)
    stays: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    unknown_keys: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _text(value: bytes | str | None) -> str:
    """A reply value as text; a missing value means the stored data is broken."""
    if value is None:
        raise ReadModelError("a field the layout requires is missing")
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


def _field(mapping: Mapping[Any, Any] | None, name: str) -> Any:
    """A field of a hash or stream entry reply (names come back as bytes)."""
    if mapping is None:
        return None
    if name.encode() in mapping:
        return mapping[name.encode()]
    return mapping.get(name)


def events_in_profiles(dump: Mapping[str, Any]) -> int:
    """Events folded into the profiles of a :meth:`ReadModelStore.dump` (their ``event_count``s)."""
    return sum(json.loads(entry["document"])["event_count"] for entry in dump["profiles"].values())


class ReadModelStore:
    """The read model of one namespace in one Redis database.

    ``client`` is a synchronous redis-py client that returns bytes (the default;
    ``decode_responses=True`` is refused because documents are opaque bytes). The
    store is thread-safe as far as the client is (redis-py's pool is).
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        change_stream_maxlen: int = DEFAULT_CHANGE_STREAM_MAXLEN,
        writes_per_call: int = DEFAULT_WRITES_PER_CALL,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("ReadModelStore needs a client with decode_responses=False")
        if change_stream_maxlen < 1:
            raise ValueError("change_stream_maxlen must be >= 1")
        if writes_per_call < 1:
            raise ValueError("writes_per_call must be >= 1")
        self.namespace = keys.check_namespace(namespace)
        self.change_stream_maxlen = change_stream_maxlen
        self.writes_per_call = writes_per_call
        self._client = client
        self._owns_client = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        change_stream_maxlen: int = DEFAULT_CHANGE_STREAM_MAXLEN,
        writes_per_call: int = DEFAULT_WRITES_PER_CALL,
    ) -> ReadModelStore:
        """A store on ``settings.redis_url`` for ``settings.namespace`` that owns its client."""
        store = cls(
            # a Redis that stops answering (not one that closes connections) must not
            # hang a worker's event loop: the outage path retries on TimeoutError
            redis.Redis.from_url(settings.redis_url, socket_timeout=30, socket_connect_timeout=5),
            settings.namespace,
            change_stream_maxlen=change_stream_maxlen,
            writes_per_call=writes_per_call,
        )
        store._owns_client = True
        return store

    @property
    def client(self) -> redis.Redis:
        """The redis-py client the store uses."""
        return self._client

    def close(self) -> None:
        """Close the client if :meth:`from_settings` created it (a passed-in client stays open)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ReadModelStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def apply(self, batch: Sequence[Write]) -> ApplyResult:
        """Apply ``batch`` in order, each write atomic and version-guarded on its key.

        A write applies if its version is >= the version stored on its key (equal:
        idempotent replay). The batch is split into script calls of
        :attr:`writes_per_call` writes, all sent in one non-transactional pipeline
        (one round trip). The batch as a whole is not atomic: if the connection
        drops, some calls may have run; applying the batch again is safe. Calls
        that hit NOSCRIPT are rerun after the others (harmless under the guard).
        Raises :class:`LayoutMismatchError` if the namespace holds another layout
        version, and redis-py's errors on connection problems.
        """
        if not batch:
            return ApplyResult()
        calls = encode(
            self.namespace,
            batch,
            maxlen=self.change_stream_maxlen,
            writes_per_call=self.writes_per_call,
        )
        outcomes: list[Outcome] = []
        for call, reply in zip(calls, self._run(calls), strict=True):
            outcomes.extend(decode(reply, call.writes))
        return ApplyResult(tuple(outcomes))

    def _run(self, calls: list[ScriptCall]) -> list[Any]:
        """Run script calls in one pipeline; on NOSCRIPT load the script, rerun those calls."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _attempt in range(2):
            with self._client.pipeline(transaction=False) as pipe:
                for index in pending:
                    call = calls[index]
                    pipe.evalsha(APPLY_SHA, len(call.keys), *call.keys, *call.args)
                results = pipe.execute(raise_on_error=False)
            missing: list[int] = []
            for index, result in zip(pending, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(index)
                elif isinstance(result, ResponseError):
                    message = str(result)
                    if LAYOUT_ERROR_PREFIX in message:
                        raise LayoutMismatchError(message) from result
                    raise ReadModelError(f"apply script failed: {message}") from result
                else:
                    replies[index] = result
            if not missing:
                return replies
            loaded = self._client.script_load(APPLY_SOURCE)
            if loaded != APPLY_SHA:
                raise ReadModelError(f"Redis hashed the apply script to {loaded}, not {APPLY_SHA}")
            pending = missing
        raise ReadModelError("the apply script vanished again right after SCRIPT LOAD")

    # ------------------------------------------------------------------- reads

    def get_profile(self, profile_id: str, follow_aliases: bool = True) -> bytes | None:
        """The profile document, or None (unknown or deleted).

        With ``follow_aliases`` an id that was merged away is followed to the
        surviving profile (an alias wins over a document still stored under the
        id). Raises :class:`AliasCycleError` on a looping or overlong chain.
        """
        if not follow_aliases:
            return _bytes(self._client.hget(keys.profile(self.namespace, profile_id), "doc"))
        return self._follow(profile_id)[1]

    def resolve(self, profile_id: str) -> str | None:
        """The id whose document serves ``profile_id`` (aliases followed), None if it has none."""
        final_id, doc = self._follow(profile_id)
        return final_id if doc is not None else None

    def _follow(self, profile_id: str) -> tuple[str, bytes | None]:
        """Follow aliases from ``profile_id``: final id and its document (a round trip a hop)."""
        current = profile_id
        seen = {current}
        for _hop in range(MAX_ALIAS_HOPS + 1):
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hget(keys.alias(self.namespace, current), "to")
                pipe.hget(keys.profile(self.namespace, current), "doc")
                target, doc = pipe.execute()
            if target is None or _text(target) == current:  # a self-alias: the id is current
                return current, _bytes(doc)
            current = _text(target)
            if current in seen:
                raise AliasCycleError(f"alias cycle through {current} (starting at {profile_id})")
            seen.add(current)
        raise AliasCycleError(f"alias chain from {profile_id} longer than {MAX_ALIAS_HOPS} hops")

    def profile_version(self, profile_id: str) -> int | None:
        """The version stored for ``profile_id`` (also of a tombstone), None if never written."""
        value = self._client.hget(keys.profile(self.namespace, profile_id), "v")
        return None if value is None else int(value)

    def lookup(self, identifier_key: str) -> str | None:
        """The profile id an identifier key is linked to (not alias-resolved), or None."""
        value = self._client.hget(keys.identifier(self.namespace, identifier_key), "p")
        return None if value is None else _text(value)

    def alias_target(self, alias_id: str) -> str | None:
        """The profile id ``alias_id`` points to directly (one hop), or None."""
        value = self._client.hget(keys.alias(self.namespace, alias_id), "to")
        return None if value is None else _text(value)

    def stage_members(
        self, stage: str, offset: int = 0, limit: int = 100, newest_first: bool = True
    ) -> list[StageMember]:
        """A page of the profiles in ``stage``, ordered by entered-at (ties: by profile id)."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must be >= 0")
        if limit == 0:
            return []
        rows = self._client.zrange(
            keys.stage(self.namespace, stage),
            offset,
            offset + limit - 1,
            desc=newest_first,
            withscores=True,
        )
        # RESP2 replies (member, score) tuples, RESP3 [member, score] lists.
        pairs = cast("list[tuple[bytes, float]]", rows)
        return [StageMember(_text(member), int(score)) for member, score in pairs]

    def stage_counts(self) -> dict[str, int]:
        """Number of profiles per stage, for every stage that has any (sorted by stage name)."""
        names = sorted(_text(n) for n in self._client.smembers(keys.stages(self.namespace)))
        if not names:
            return {}
        with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(keys.stage(self.namespace, name))
            counts = pipe.execute()
        return {name: int(count) for name, count in zip(names, counts, strict=True) if count}

    def changes(self, after_id: str | None = None, count: int = 100) -> list[Change]:
        """Up to ``count`` change-stream entries after ``after_id`` (None: from the oldest kept).

        The stream is capped; if ``after_id`` is older than :meth:`first_change_id`
        entries may have been trimmed in between and the reader should resync.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        if after_id is None:
            start = "-"
        elif _STREAM_ID.match(after_id):
            start = f"({after_id}"
        else:
            raise ValueError(f"after_id must look like '<ms>-<seq>', got {after_id!r}")
        rows = self._client.xrange(keys.changes(self.namespace), start, "+", count=count)
        return [
            Change(
                id=_text(entry_id),
                profile_id=_text(_field(fields, "p")),
                version=int(_field(fields, "v")),
                op=ChangeOp(_text(_field(fields, "op"))),
            )
            for entry_id, fields in rows or []
        ]

    def first_change_id(self) -> str | None:
        """Id of the oldest change-stream entry still kept, None if the stream is empty."""
        rows = self._client.xrange(keys.changes(self.namespace), "-", "+", count=1)
        return _text(rows[0][0]) if rows else None

    def layout_version(self) -> int | None:
        """The layout version recorded in the namespace's meta key, None before the first write."""
        value = self._client.hget(keys.meta(self.namespace), keys.META_LAYOUT_FIELD)
        return None if value is None else int(value)

    # ------------------------------------------------------------ maintenance

    def _scan(self) -> Iterator[str]:
        for key in self._client.scan_iter(
            match=keys.namespace_pattern(self.namespace), count=SCAN_COUNT
        ):
            yield _text(key)

    def wipe(self) -> int:
        """Delete every key of the namespace (SCAN + UNLINK in batches); return how many.

        Never FLUSHDB: other namespaces in the database stay. Stop the writers
        first; keys written while the wipe runs may survive it.
        """
        deleted = 0
        chunk: list[str] = []
        for key in self._scan():
            chunk.append(key)
            if len(chunk) >= SCAN_COUNT:
                deleted += int(self._client.unlink(*chunk))
                chunk.clear()
        if chunk:
            deleted += int(self._client.unlink(*chunk))
        return deleted

    def dump(self, include_versions: bool = False) -> dict[str, Any]:
        """A canonical, sorted dump of the namespace for comparing two read models.

        Left out because they depend on history, not on the final state: the
        change stream (entry ids are arrival times; trimming; replays) and meta
        fields other than ``layout``. Without ``include_versions`` (default) the
        dump holds what readers can see — documents, stages, identifier links,
        aliases — so a rebuild from Kafka that used other offsets as versions
        compares equal to the live run. With it, every entry also carries its
        version and the tombstones (profile and identifier) are included.

        Keys::

            layout             int | None
            profiles           {profile_id: {document, stage, stage_entered_ms[, version]}}
            identifiers        {identifier_key: {profile_id[, version]}}
            aliases            {alias_id: {profile_id[, version]}}
            stages             {stage: [[profile_id, entered_ms], ...]}  (by entered_ms, id)
            stage_registry     [stage, ...]
            funnel             {counter field: count}  (funnel and moment counters)
            stays              {segment|stage: [[member, seconds], ...]}
            unknown_keys       [key, ...]  (keys under the namespace this layout does not define)
            profile_tombstones {profile_id: version}        (include_versions only)
            identifier_tombstones {digest: version}         (include_versions only)
        """
        snap = self._snapshot()

        def strip(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            if include_versions:
                return entries
            return {k: {f: v for f, v in e.items() if f != "version"} for k, e in entries.items()}

        result: dict[str, Any] = {
            "layout": snap.layout,
            "profiles": strip(snap.profiles),
            "identifiers": strip(snap.identifiers),
            "aliases": strip(snap.aliases),
            "stages": {s: [[p, ms] for p, ms in members] for s, members in snap.stages.items()},
            "stage_registry": snap.stage_registry,
            "funnel": snap.funnel,
            "stays": {k: [[m, sec] for m, sec in rows] for k, rows in snap.stays.items()},
            "unknown_keys": snap.unknown_keys,
        }
        if include_versions:
            result["profile_tombstones"] = snap.profile_tombstones
            result["identifier_tombstones"] = snap.identifier_tombstones
        return result

    def consistency_problems(self) -> list[str]:
        """Broken invariants of the stored layout (empty when consistent); for tests and ops.

        Checks: every staged profile is in its stage set with its entered-at score
        and in no other; every stage-set member is a live profile in that stage;
        the stage registry names exactly the non-empty stage sets; identifier
        keys match their digest; no unknown keys; hashes have the fields they need.
        """
        snap = self._snapshot()
        problems = list(snap.problems)
        members: dict[str, dict[str, int]] = {
            stage: dict(rows) for stage, rows in snap.stages.items()
        }
        for pid, entry in snap.profiles.items():
            stage = entry["stage"]
            if stage is not None and members.get(stage, {}).get(pid) != entry["stage_entered_ms"]:
                problems.append(f"profile {pid} in stage {stage} is missing from its stage set")
        for stage, rows in members.items():
            for pid in rows:
                staged = snap.profiles.get(pid)
                if staged is None or staged["stage"] != stage:
                    problems.append(f"stage set {stage} holds {pid}, which is not in that stage")
        non_empty = sorted(stage for stage, rows in members.items() if rows)
        if snap.stage_registry != non_empty:
            problems.append(f"stage registry {snap.stage_registry} != non-empty sets {non_empty}")
        problems.extend(f"unknown key {key}" for key in snap.unknown_keys)
        return problems

    def _snapshot(self) -> _Snapshot:
        snap = _Snapshot()
        parsed: list[tuple[str, keys.ParsedKey]] = []
        for key in sorted(set(self._scan())):
            info = keys.parse(self.namespace, key)
            if info is None:
                snap.unknown_keys.append(key)
            elif info.kind is not KeyKind.CHANGES:
                parsed.append((key, info))
        for start in range(0, len(parsed), SCAN_COUNT):
            chunk = parsed[start : start + SCAN_COUNT]
            with self._client.pipeline(transaction=False) as pipe:
                for key, info in chunk:
                    if info.kind in (KeyKind.STAGE, KeyKind.STAYS):
                        pipe.zrange(key, 0, -1, withscores=True)
                    elif info.kind is KeyKind.STAGES:
                        pipe.smembers(key)
                    else:
                        pipe.hgetall(key)
                replies = pipe.execute()
            for (key, info), reply in zip(chunk, replies, strict=True):
                self._add(snap, key, info, reply)
        snap.stage_registry.sort()
        snap.profiles = dict(sorted(snap.profiles.items()))
        snap.profile_tombstones = dict(sorted(snap.profile_tombstones.items()))
        snap.identifiers = dict(sorted(snap.identifiers.items()))
        snap.identifier_tombstones = dict(sorted(snap.identifier_tombstones.items()))
        snap.aliases = dict(sorted(snap.aliases.items()))
        snap.stages = dict(sorted(snap.stages.items()))
        snap.funnel = dict(sorted(snap.funnel.items()))
        snap.stays = dict(sorted(snap.stays.items()))
        return snap

    def _add(self, snap: _Snapshot, key: str, info: keys.ParsedKey, reply: Any) -> None:
        """Decode one key's reply into the snapshot."""
        if info.kind is KeyKind.STAGE:
            snap.stages[info.ident] = [(_text(m), int(s)) for m, s in reply]
            return
        if info.kind is KeyKind.STAGES:
            snap.stage_registry.extend(_text(m) for m in reply)
            return
        if info.kind is KeyKind.STAYS:
            snap.stays[info.ident] = [(_text(m), float(s)) for m, s in reply]
            return
        if info.kind is KeyKind.FUNNEL:
            snap.funnel = {_text(f): int(n) for f, n in reply.items()}
            return
        if info.kind is KeyKind.META:
            layout = _field(reply, keys.META_LAYOUT_FIELD)
            snap.layout = None if layout is None else int(layout)
            return
        raw_version = _field(reply, "v")
        if raw_version is None:
            snap.problems.append(f"{key} has no version field")
            snap.unknown_keys.append(key)
            return
        version = int(raw_version)
        if info.kind is KeyKind.PROFILE:
            doc = _field(reply, "doc")
            if doc is None:
                snap.profile_tombstones[info.ident] = version
                return
            stage = _field(reply, "stage")
            entered = _field(reply, "ms")
            snap.profiles[info.ident] = {
                "document": doc,
                "stage": None if stage is None else _text(stage),
                "stage_entered_ms": None if entered is None else int(entered),
                "version": version,
            }
        elif info.kind is KeyKind.IDENTIFIER:
            target = _field(reply, "p")
            if target is None:
                snap.identifier_tombstones[info.ident] = version
                return
            identifier_key = _text(_field(reply, "k"))
            if keys.identifier_digest(identifier_key) != info.ident:
                snap.problems.append(f"{key} holds an identifier whose digest differs")
            snap.identifiers[identifier_key] = {"profile_id": _text(target), "version": version}
        elif info.kind is KeyKind.ALIAS:
            snap.aliases[info.ident] = {
                "profile_id": _text(_field(reply, "to")),
                "version": version,
            }
