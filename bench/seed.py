"""Generated customers written to a read model through the real write path (bench helper).

For each generated customer (:func:`cdp.samples.generate`) this writes what the
workers write for one resolved person:

- the identity stage (``cdp/identity/stage.py``): per usable identifier key an
  ``IdentifierLink`` to the profile and an ``AliasSet`` from the key's
  candidate id to the profile (a self-alias for the anchor);
- the profile stage (``cdp/profile/stage.py``): ``profile_upsert`` of the
  ``build_profile`` document with the default journey (stage set, funnel and
  stay aggregates, change-stream entry).

The profile id is the candidate id of the customer's strongest identifier
(``p-`` + 20 hex, like the identity stage's ids). Chunks of customers are built
in a process pool and applied with ``ReadModelStore.apply`` in order.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from cdp.identity.clustering import candidate_id, rank
from cdp.identity.config import default_identity_config
from cdp.identity.identifiers import normalize, usable_identifiers
from cdp.journey import default_journey
from cdp.profile.document import build_profile, canonical_json
from cdp.profile.facts import Fact, fact_from_event
from cdp.profile.survivorship import default_trait_config
from cdp.samples import generate
from cdp.serve import AliasSet, IdentifierLink, ReadModelStore, Write
from cdp.serve.journey import profile_upsert

VERSION = 1
"""Version of every seeded write (the workers use input offsets)."""

EVENTS_PER_CUSTOMER = 8.0
"""Events generated per customer (as the API tests' ``seed_generated``)."""


@dataclass
class Chunk:
    """The writes of a chunk of generated customers and the emails they can be looked up by."""

    customers: int
    writes: list[Write]
    emails: list[str]


def build_chunk(index: int, customers: int, seed: int, events_per_customer: float) -> Chunk:
    """Writes for ``customers`` customers (chunk ``index`` of a seeding run)."""
    journey = default_journey()
    identity, traits = default_identity_config(), default_trait_config()
    dataset = generate(
        customers,
        events_per_customer,
        seed=seed * 1_000_003 + index,
        duplicate_rate=0.0,
        late_rate=0.0,
    )
    facts: dict[str, list[Fact]] = defaultdict(list)
    found: dict[str, set[str]] = defaultdict(set)
    for event in dataset.events:
        person = dataset.truth[event.event_id]
        facts[person].append(fact_from_event(event))
        pairs = ((i.type, i.value) for i in event.identifiers)
        found[person].update(usable_identifiers(pairs, identity))
    chunk = Chunk(0, [], [])
    for customer in dataset.customers:
        identifiers = sorted(found[customer.key])
        if not identifiers:
            continue
        profile_id = candidate_id(min(identifiers, key=lambda key: rank(key, identity)))
        document = build_profile(
            profile_id, facts[customer.key], traits, identifiers=identifiers, journey=journey
        )
        chunk.writes.append(profile_upsert(document, canonical_json(document), VERSION, journey))
        for key in identifiers:
            chunk.writes.append(IdentifierLink(key, profile_id, VERSION))
            chunk.writes.append(AliasSet(candidate_id(key), profile_id, VERSION))
        if customer.email and normalize("email", customer.email, identity) in identifiers:
            chunk.emails.append(customer.email)
        chunk.customers += 1
    return chunk


def _chunks(
    total: int, chunk_size: int, seed: int, events_per_customer: float, processes: int
) -> Iterator[Chunk]:
    sizes = [min(chunk_size, total - start) for start in range(0, total, chunk_size)]
    if processes <= 1:
        for index, size in enumerate(sizes):
            yield build_chunk(index, size, seed, events_per_customer)
        return
    with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn")) as pool:
        yield from pool.map(
            build_chunk,
            range(len(sizes)),
            sizes,
            [seed] * len(sizes),
            [events_per_customer] * len(sizes),
        )


def seed_profiles(
    store: ReadModelStore,
    total: int,
    *,
    seed: int = 11,
    chunk_size: int = 2000,
    processes: int = 2,
    events_per_customer: float = EVENTS_PER_CUSTOMER,
    after_chunk: Callable[[int], None] | None = None,
) -> list[str]:
    """Write ``total`` generated profiles; return the emails they can be looked up by.

    ``after_chunk(profiles written so far)`` is called after each applied chunk
    (for progress lines and measurements at checkpoints; make ``chunk_size``
    divide the checkpoints). Prints a progress line per chunk.
    """
    started = time.monotonic()
    written = 0
    emails: list[str] = []
    for chunk in _chunks(total, chunk_size, seed, events_per_customer, processes):
        store.apply(chunk.writes)
        written += chunk.customers
        emails += chunk.emails
        print(
            f"  seeded {written:,} / {total:,} profiles ({time.monotonic() - started:.0f}s)",
            flush=True,
        )
        if after_chunk is not None:
            after_chunk(written)
    return emails
