"""Lead hand-off: each qualified person goes to sales exactly once.

The profile stage sends a :class:`QualificationCandidate` to the
single-partition ``journey.qualified`` topic whenever a profile's journey
state shows a qualification it has not sent before. Candidates repeat: after
a crash (at-least-once), and after a merge, when the merged profile's
qualification is a new one although its person was already handed off.

The hand-off stage owns the one partition, so it sees every candidate. A
candidate is a *new* lead only if none of its identifier keys was part of a
lead handed off before (identity only ever grows a person's identifiers, so
a later profile of the same person contains an earlier one's). The stage
publishes the hand-off to ``journey.handoffs`` and awaits the broker's ack
before Faust acks the candidate. Its memory of handed-off identifiers is the
hand-off topic itself, re-read whenever the partition is (re)assigned: what is
on the topic was handed off, whatever crashed in between. So a hand-off is
published once per person, also across restarts, without Kafka transactions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import faust

from cdp.messages import dumps
from cdp.outputs import Outputs
from cdp.settings import Settings
from cdp.streams import raw_topic, stage_agent
from cdp.topic_reader import read_topic
from cdp.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualificationCandidate:
    """A profile crossed the qualification threshold (``journey.qualified``)."""

    qualification_id: str
    profile_id: str
    members: tuple[str, ...]
    """The profile's identifier keys (PII: never logged)."""
    score: float
    stage: str | None
    owner: str | None
    region: str | None
    qualified_at: datetime | None

    def to_bytes(self) -> bytes:
        """Serialise (also the value of the hand-off record)."""
        return dumps(
            {
                "qualification_id": self.qualification_id,
                "profile_id": self.profile_id,
                "members": list(self.members),
                "score": self.score,
                "stage": self.stage,
                "owner": self.owner,
                "region": self.region,
                "qualified_at": None
                if self.qualified_at is None
                else self.qualified_at.isoformat().replace("+00:00", "Z"),
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> QualificationCandidate:
        """Deserialise."""
        raw = json.loads(data)
        at = raw.get("qualified_at")
        return cls(
            qualification_id=raw["qualification_id"],
            profile_id=raw["profile_id"],
            members=tuple(raw["members"]),
            score=float(raw["score"]),
            stage=raw.get("stage"),
            owner=raw.get("owner"),
            region=raw.get("region"),
            qualified_at=None if at is None else datetime.fromisoformat(at),
        )


@dataclass
class HandedOff:
    """Identifier keys of every person handed off so far."""

    members: set[str] = field(default_factory=set)
    loaded: bool = False

    def is_new(self, candidate: QualificationCandidate) -> bool:
        """Whether no identifier of the candidate belongs to an earlier hand-off."""
        return self.members.isdisjoint(candidate.members)

    def add(self, candidate: QualificationCandidate) -> None:
        """Remember a hand-off."""
        self.members.update(candidate.members)


def read_handoffs(settings: Settings) -> Iterator[QualificationCandidate]:
    """Every hand-off record on the topic, up to its current end."""
    for _key, value in read_topic(settings, Topics(settings.namespace).handoffs):
        if value is not None:
            yield QualificationCandidate.parse(value)


def register_handoff(app: faust.App, settings: Settings, topics: Topics, outputs: Outputs) -> Any:
    """Attach the hand-off agent (one partition) to ``app``; return the agent."""
    source = raw_topic(app, topics.qualified, partitions=1)
    handed = HandedOff()

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        handed.loaded = False  # another worker may have handed off meanwhile: re-read

    app.on_partitions_assigned.connect(on_assigned)

    async def load() -> None:
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(None, lambda: list(read_handoffs(settings)))
        handed.members = set()
        for record in records:
            handed.add(record)
        handed.loaded = True
        log.info("hand-off: %d earlier hand-offs loaded", len(records))

    async def handoff(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.05):
            if not handed.loaded:
                await load()
            out = outputs.batch()
            for event in batch:
                candidate = QualificationCandidate.parse(event.message.value)
                if handed.is_new(candidate):
                    handed.add(candidate)
                    out.send(topics.handoffs, candidate.profile_id.encode(), candidate.to_bytes())
            await out.delivered()

    return stage_agent(app, source, f"{topics.namespace}.handoff", handoff)
