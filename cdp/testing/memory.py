"""The pipeline in memory: the real decisions of every stage, without a broker or Redis.

Events go through what the worker runs, minus Kafka: ingest (encode to the
wire format, :class:`~cdp.ingest.stage.IngestStage` decodes and validates),
identity (:class:`~cdp.identity.graph.IdentityGraph`), facts per identifier,
profiles (:func:`~cdp.profile.document.build_profile` with the journey), and the
processors (:mod:`cdp.processors.steps`), whose derived facts are folded in
like the facts stage does until no processor has anything left to change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import Event, decode_canonical, encode_event, partition_key
from cdp.contracts.registry import registry_from_settings
from cdp.deadletter import DeadLetter, SourceRecord
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.identity.graph import IdentityGraph
from cdp.identity.identifiers import IdentifierKey
from cdp.ingest.stage import Accepted, IngestStage
from cdp.journey.definition import load_journey_or_default
from cdp.processors.api import Input, Processor, ProcessorError
from cdp.processors.steps import Emission, on_event, on_profile
from cdp.profile.document import ProfileDocument, build_profile, canonical_json
from cdp.profile.facts import Fact, fact_from_event
from cdp.profile.stage import change_record
from cdp.profile.survivorship import load_trait_config
from cdp.settings import Settings, load_settings
from cdp.streams import failure_letter
from cdp.testing.result import PipelineResult, Record, records_by_topic
from cdp.topics import Topics

MAX_ROUNDS = 20
"""Profile processors re-run on changed profiles at most this often (more: a feedback loop)."""


@dataclass
class _Run:
    settings: Settings
    topics: Topics
    codec: AvroCodec
    records: defaultdict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    facts: defaultdict[str, dict[str, Fact]] = field(default_factory=lambda: defaultdict(dict))

    def write(self, topic: str, key: str | None, value: bytes | None) -> int:
        """Note a record on ``{ns}.<topic>``; return its offset."""
        kept = self.records[topic]
        kept.append(Record(topic, key, value))
        return len(kept) - 1

    def reject(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)
        self.write("deadletter", _text(letter.source.key), letter.source.value)

    def emit(self, emissions: Iterable[Emission]) -> set[str]:
        """Fold derived facts in like the facts stage; return the keys whose facts changed."""
        changed = set()
        for emission in emissions:
            self.write("profile.computed", emission.key, emission.to_bytes())
            known = self.facts[emission.key]
            if known.get(emission.fact.event_id) != emission.fact:
                known[emission.fact.event_id] = emission.fact
                changed.add(emission.key)
        return changed


def run_in_memory(
    events: Iterable[Event],
    processors: Iterable[Processor] = (),
    *,
    settings: Settings | None = None,
) -> PipelineResult:
    """Feed ``events`` (in this order) through the pipeline and ``processors``; no broker, no Redis.

    ``settings`` (default: from ``CDP_*`` variables) give the namespace and the
    identity, trait and journey configurations. Raises :class:`ProcessorError`
    when profile processors keep changing each other's input (a feedback loop).
    """
    settings = settings or load_settings()
    topics = Topics(settings.namespace)
    run = _Run(settings, topics, AvroCodec(registry_from_settings(settings)))
    identity = load_identity_config(settings.identity_config)
    canonical, members = _ingest_and_resolve(run, events, identity)
    chosen = list(processors)
    for processor in chosen:
        if processor.input is Input.EVENTS:
            _run_event_processor(run, processor, canonical)
    traits = load_trait_config(settings.trait_config)
    journey = load_journey_or_default(settings.journey_config)
    profiles: dict[str, ProfileDocument] = {}
    offsets: dict[str, int] = {}

    def render(profile_id: str) -> None:
        keys = members[profile_id]
        facts = [fact for key in keys for fact in run.facts[key].values()]
        document = build_profile(profile_id, facts, traits, identifiers=keys, journey=journey)
        profiles[profile_id] = document
        value = change_record(len(run.records["profile.changes"]), canonical_json(document))
        offsets[profile_id] = run.write("profile.changes", profile_id, value)

    dirty = set(members)
    profile_of = {key: owner for owner, keys in members.items() for key in keys}
    on_profiles = [p for p in chosen if p.input is Input.PROFILES]
    for _round in range(MAX_ROUNDS + 1):
        for profile_id in sorted(dirty):
            render(profile_id)
        changed_keys: set[str] = set()
        for processor in on_profiles:
            for profile_id in sorted(dirty):
                changed_keys |= _run_profile_processor(
                    run, processor, profiles[profile_id], offsets[profile_id]
                )
        dirty = {profile_of[key] for key in changed_keys if key in profile_of}
        if not dirty:
            return PipelineResult(
                profiles, run.dead_letters, identity, records_by_topic(run.records)
            )
    names = ", ".join(p.name for p in on_profiles)
    raise ProcessorError(
        f"profile processors {names} still change profiles after {MAX_ROUNDS} rounds"
    )


def _ingest_and_resolve(
    run: _Run, events: Iterable[Event], identity: IdentityConfig
) -> tuple[list[Accepted], dict[str, list[str]]]:
    """Ingest and identity: the accepted records, their facts, and the members per profile."""
    ingest = IngestStage(run.codec, run.topics, identity)
    graph = IdentityGraph(identity)
    canonical: list[Accepted] = []
    for offset, event in enumerate(events):
        record = SourceRecord(
            run.topics.channel(event.channel),
            0,
            offset,
            partition_key(event),
            encode_event(run.codec, event),
        )
        result = ingest.process(record)
        if isinstance(result, DeadLetter):
            run.reject(result)
            continue
        canonical.append(result)
        run.write("events.canonical", result.key.decode(), result.value)
        observation = result.observation
        graph.add_keys(
            observation.event_id,
            observation.event_time,
            (IdentifierKey(key) for key in observation.keys),
        )
        fact = fact_from_event(result.event)
        run.facts[result.key.decode()][fact.event_id] = fact
    members: dict[str, list[str]] = {}
    for key, owner in graph.snapshot().items():
        members.setdefault(str(owner), []).append(str(key))
    return canonical, members


def _run_event_processor(run: _Run, processor: Processor, canonical: list[Accepted]) -> None:
    states: dict[str, dict[str, object]] = {}
    for offset, accepted in enumerate(canonical):
        key = accepted.key.decode()
        try:
            event = decode_canonical(run.codec, accepted.value)
            emissions, state = on_event(processor, key, event, states.get(key))
        except Exception as exc:
            source = SourceRecord(run.topics.canonical, 0, offset, accepted.key, accepted.value)
            run.reject(failure_letter(source, f"processor:{processor.name}", exc))
            continue
        if state is not None:
            states[key] = state
        run.emit(emissions)


def _run_profile_processor(
    run: _Run, processor: Processor, profile: ProfileDocument, offset: int
) -> set[str]:
    try:
        return run.emit(on_profile(processor, profile))
    except Exception as exc:
        value = run.records["profile.changes"][offset].value
        source = SourceRecord(run.topics.profiles, 0, offset, profile.profile_id.encode(), value)
        run.reject(failure_letter(source, f"processor:{processor.name}", exc))
        return set()


def _text(key: bytes | None) -> str | None:
    return None if key is None else key.decode(errors="replace")
