"""What a pipeline run gives back: profiles, records per topic, dead letters (both runners)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdp.deadletter import DeadLetter
from cdp.errors import CdpError
from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import normalize, split_key
from cdp.profile.document import ProfileDocument


@dataclass(frozen=True)
class Record:
    """One record a stage wrote: topic suffix (``profile.computed``), key and value bytes."""

    topic: str
    key: str | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def json(self) -> Any:
        """The value parsed as JSON (for the JSON topics)."""
        return None if self.value is None else json.loads(self.value)


@dataclass
class PipelineResult:
    """The outcome of feeding events through the pipeline (in memory or on the real stack).

    ``profiles`` maps profile id to document; :meth:`profile` and :meth:`trait`
    find a person by any identifier; :meth:`records` lists what a topic holds;
    ``dead_letters`` are the rejected records (ingest and processors).
    """

    profiles: dict[str, ProfileDocument]
    dead_letters: list[DeadLetter]
    identity: IdentityConfig = field(repr=False)
    _records: Callable[[str], Sequence[Record]] = field(repr=False)

    def profile(self, identifier: str) -> ProfileDocument:
        """The profile of an identifier key (``"email:anna@example.com"``; normalised here).

        Raises :class:`LookupError` when no profile has it.
        """
        wanted = self._key(identifier)
        for document in self.profiles.values():
            if wanted in document.identifiers:
                return document
        raise LookupError(f"no profile has identifier {identifier!r}")

    def trait(self, identifier: str, name: str) -> str | None:
        """The value of trait ``name`` on the profile of ``identifier`` (None: not set)."""
        value = self.profile(identifier).traits.get(name)
        return None if value is None else value.value

    def records(self, topic: str) -> list[Record]:
        """The records written to ``{ns}.<topic>`` (``"profile.computed"``, ...)."""
        return list(self._records(topic))

    def dead_letters_of(self, processor: str) -> list[DeadLetter]:
        """Dead letters of one processor (``"processor:churn_risk"``, ``"ingest"``, ...)."""
        return [letter for letter in self.dead_letters if letter.processor == processor]

    def _key(self, identifier: str) -> str:
        id_type, _, value = identifier.partition(":")
        if not value:
            raise CdpError(f"expected an identifier key type:value, got {identifier!r}")
        key = normalize(id_type, value, self.identity)
        return key if key is not None else ":".join(split_key(identifier))


def records_by_topic(
    records: Mapping[str, Sequence[Record]],
) -> Callable[[str], Sequence[Record]]:
    """A records lookup over records kept in memory."""
    return lambda topic: records.get(topic, ())
