"""Shared test data for the API tests (unit and integration): documents and seeding.

Documents are written through the real write path (``ReadModelStore.apply`` with
``ProfileUpsert`` / ``IdentifierLink`` / ``AliasSet``), as the workers do.
:func:`seed_generated` writes whole generated customers (``cdp.samples``) with
their journey state and their share of the funnel aggregates, as the profile
stage does.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from cdp.identity.clustering import candidate_id
from cdp.identity.config import default_identity_config
from cdp.identity.identifiers import usable_identifiers
from cdp.journey import JourneyDefinition, default_journey
from cdp.profile.document import ProfileDocument, build_profile, canonical_json
from cdp.profile.facts import Fact, fact_from_event
from cdp.profile.survivorship import default_trait_config
from cdp.samples import Customer, Dataset, generate
from cdp.serve import AliasSet, IdentifierLink, ProfileUpsert, ReadModelStore, Write
from cdp.serve.journey import profile_upsert

ADMIN = "cdp-dev-admin-key"
MARKETING = "cdp-dev-marketing-key"
SALES = "cdp-dev-sales-key"
SERVICE = "cdp-dev-service-key"
"""The dev-only demo keys of ``cdp/api/dev_access.yaml``."""

ENTERED_MS = 1_772_442_000_000  # 2026-03-02T09:00:00Z


def provenance(
    source: str = "crm", channel: str = "crm", at: str = "2026-03-02T09:14:00Z"
) -> dict[str, str]:
    """The provenance fields of a trait or decision."""
    return {"source": source, "channel": channel, "event_time": at, "event_id": "e-" + source}


def document(
    profile_id: str,
    identifiers: list[str],
    *,
    first_name: str = "Anna",
    stage: str | None = "search",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A profile document like the profile stage writes, with a journey and an unknown field."""
    doc: dict[str, Any] = {
        "profile_id": profile_id,
        "identifiers": sorted(identifiers),
        "traits": {
            "first_name": {"value": first_name, "rule": "source_priority", **provenance()},
            "last_name": {"value": "Berg", "rule": "source_priority", **provenance()},
            "industry": {"value": "Chemicals", "rule": "source_priority", **provenance()},
        },
        "computed": {
            "first_seen": "2026-03-01T10:00:00Z",
            "last_seen": "2026-03-02T09:14:00Z",
            "order_count": 1,
            "revenue": {"EUR": "4497.00"},
            "tickets_total": 2,
            "open_tickets": ["T-4711"],
            "avg_satisfaction": 9.0,
            "satisfaction_count": 1,
            "lead_status": {"value": "qualified", "ref": None, **provenance()},
        },
        "consent": {
            "newsletter": {"email": {"granted": True, **provenance("website", "web")}},
        },
        "sources": ["crm", "website"],
        "event_count": 7,
        "segments": ["b2b-chemicals"],
    }
    if stage is not None:  # the shape of cdp.journey.engine.JourneyState
        doc["journey"] = {
            "journey": "b2b",
            "stage": stage,
            "owner": "marketing",
            "entered_at": "2026-03-02T09:00:00Z",
            "region": "DE",
            "history": [
                {
                    "from_stage": None,
                    "to_stage": "need",
                    "at": "2026-03-01T10:00:00Z",
                    "event_id": "e-1",
                    "channel": "web",
                    "rule": "first-visit",
                },
                {
                    "from_stage": "need",
                    "to_stage": stage,
                    "at": "2026-03-02T09:00:00Z",
                    "event_id": "e-2",
                    "channel": "web",
                    "rule": "repeat-visits",
                },
            ],
            "moments": [
                {
                    "name": "first_contact",
                    "event_id": "e-1",
                    "at": "2026-03-01T10:00:00Z",
                    "stage": "need",
                    "channel": "web",
                },
            ],
            "score": 42.5,
            "scored_at": "2026-03-02T09:14:00Z",
            "qualified": False,
            "excluded": None,
            "qualified_at": None,
            "qualification_event_id": None,
            "qualification_id": None,
        }
    doc.update(extra or {})
    return doc


def seed_person(
    store: ReadModelStore,
    profile_id: str,
    identifiers: list[str],
    *,
    version: int = 10,
    stage: str | None = "search",
    entered_ms: int = ENTERED_MS,
    aliases: tuple[str, ...] = (),
    first_name: str = "Anna",
) -> dict[str, Any]:
    """Write one person through the real write path; return the document."""
    doc = document(profile_id, identifiers, first_name=first_name, stage=stage)
    writes: list[Write] = [
        ProfileUpsert(
            profile_id,
            version,
            json.dumps(doc, sort_keys=True).encode(),
            stage,
            entered_ms if stage is not None else None,
        )
    ]
    for key in identifiers:
        writes += [
            IdentifierLink(key, profile_id, version),
            AliasSet(candidate_id(key), profile_id, version),
        ]
    writes += [AliasSet(alias, profile_id, version) for alias in aliases]
    store.apply(writes)
    return doc


@dataclass
class Generated:
    """Generated customers written to a read model, one profile each."""

    dataset: Dataset
    documents: dict[str, ProfileDocument]
    """customer key -> the profile document written for them."""

    def customer(self, key: str) -> Customer:
        return next(c for c in self.dataset.customers if c.key == key)


def seed_generated(
    store: ReadModelStore,
    customers: int = 40,
    *,
    seed: int = 5,
    definition: JourneyDefinition | None = None,
    version: int = 1,
) -> Generated:
    """Generate customers (``cdp.samples.generate``), build each one's profile document
    from the facts of their events (``build_profile`` with the journey) and write it with
    its identifier links through ``profile_upsert`` (stage set, funnel aggregates)."""
    journey = definition or default_journey()
    identity, traits = default_identity_config(), default_trait_config()
    dataset = generate(customers, 8, seed=seed, duplicate_rate=0.0, late_rate=0.0)
    facts: dict[str, list[Fact]] = defaultdict(list)
    keys: dict[str, set[str]] = defaultdict(set)
    for event in dataset.events:
        owner = dataset.truth[event.event_id]
        facts[owner].append(fact_from_event(event))
        keys[owner].update(
            usable_identifiers(((i.type, i.value) for i in event.identifiers), identity)
        )
    documents: dict[str, ProfileDocument] = {}
    writes: list[Write] = []
    for customer in dataset.customers:
        profile_id = "p-" + customer.key
        document = build_profile(
            profile_id, facts[customer.key], traits, identifiers=keys[customer.key], journey=journey
        )
        documents[customer.key] = document
        writes.append(profile_upsert(document, canonical_json(document), version, journey))
        writes += [IdentifierLink(key, profile_id, version) for key in sorted(keys[customer.key])]
    store.apply(writes)
    return Generated(dataset, documents)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread on a free port; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
