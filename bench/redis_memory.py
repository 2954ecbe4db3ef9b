"""Redis memory per profile: generated profiles written through the real write path.

Run on a started local stack (``cdp stack up``)::

    .venv/bin/python -m bench.redis_memory --profiles 100000 --checkpoints 10000,30000,100000

Writes ``--profiles`` generated customers into a fresh namespace as the workers
do (``bench/seed.py``: identifier links and aliases of the identity stage,
``profile_upsert`` of the ``build_profile`` document with the journey) and at
each checkpoint reports

- Redis ``used_memory`` since the start, per profile (includes the allocator's
  and the key table's overhead, but also whatever other clients of the shared
  Redis wrote meanwhile: the script counts the keys others added and says so);
- per key kind (profile hashes, identifier index, aliases, stage sets, funnel,
  stays, change stream): keys, ``MEMORY USAGE`` (``SAMPLES 0``, exact) of all
  singleton keys and of a random sample of ``--sample`` keys of each per-profile
  kind, extrapolated to all keys of the kind; bytes per profile.

**Raw baseline** (same run, same Redis): the final profiles' documents alone,
copied as plain strings (``SET {raw ns}:{profile id} <document>``) into a
second namespace: what storing just the documents costs, against which the
read model's indexes, stage sets, aggregates and change stream are overhead.
Both namespaces are deleted at the end.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from dataclasses import dataclass

import redis

from bench.common import load, namespace
from bench.seed import seed_profiles
from cdp.serve import keys
from cdp.serve.keys import KeyKind
from cdp.serve.store import SCAN_COUNT, ReadModelStore

PER_PROFILE_KINDS = (KeyKind.PROFILE, KeyKind.IDENTIFIER, KeyKind.ALIAS)
"""Kinds with a key per profile or identifier: sampled; every other kind is measured whole."""


@dataclass
class KindUsage:
    """Keys of one kind and their estimated memory."""

    keys: int = 0
    measured: int = 0
    measured_bytes: int = 0

    @property
    def estimated_bytes(self) -> float:
        """Mean MEMORY USAGE of the measured keys times the number of keys."""
        return self.measured_bytes / self.measured * self.keys if self.measured else 0.0


def used_memory(client: redis.Redis) -> int:
    """Redis ``used_memory`` in bytes."""
    return int(client.info("memory")["used_memory"])


def memory_usage(client: redis.Redis, names: list[str]) -> int:
    """Sum of ``MEMORY USAGE name SAMPLES 0`` over ``names`` (pipelined)."""
    total = 0
    for start in range(0, len(names), SCAN_COUNT):
        with client.pipeline(transaction=False) as pipe:
            for name in names[start : start + SCAN_COUNT]:
                pipe.memory_usage(name, samples=0)
            total += sum(int(n or 0) for n in pipe.execute())
    return total


def usage_by_kind(
    client: redis.Redis, namespace_name: str, sample: int, rng: random.Random
) -> dict[str, KindUsage]:
    """Keys per kind of the namespace and their MEMORY USAGE (sampled for per-profile kinds)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for raw in client.scan_iter(match=keys.namespace_pattern(namespace_name), count=SCAN_COUNT):
        name = raw.decode()
        parsed = keys.parse(namespace_name, name)
        by_kind[parsed.kind.value if parsed else "other"].append(name)
    result: dict[str, KindUsage] = {}
    for kind, names in sorted(by_kind.items()):
        chosen = names
        if kind in PER_PROFILE_KINDS and len(names) > sample:
            chosen = rng.sample(names, sample)
        result[kind] = KindUsage(len(names), len(chosen), memory_usage(client, chosen))
    return result


def print_checkpoint(
    profiles: int, kinds: dict[str, KindUsage], delta: int, foreign_keys: int
) -> float:
    """Print the table of one checkpoint; return the MEMORY USAGE estimate per profile."""
    total = sum(kind.estimated_bytes for kind in kinds.values())
    print(f"\n{profiles:,} profiles ({load()})", flush=True)
    print(f"  {'kind':<10} {'keys':>10} {'measured':>9} {'bytes':>14} {'bytes/profile':>14}")
    for name, kind in kinds.items():
        print(
            f"  {name:<10} {kind.keys:>10,} {kind.measured:>9,} {kind.estimated_bytes:>14,.0f}"
            f" {kind.estimated_bytes / profiles:>14,.0f}"
        )
    print(f"  {'total':<10} {'':>10} {'':>9} {total:>14,.0f} {total / profiles:>14,.0f}")
    note = ""
    if foreign_keys:
        note = f"  (other clients changed the key count by {foreign_keys:+,} meanwhile: unreliable)"
    print(f"  used_memory delta {delta:,} B = {delta / profiles:,.0f} B/profile{note}", flush=True)
    return total / profiles


def raw_baseline(store: ReadModelStore, raw_namespace: str, profiles: int) -> tuple[float, float]:
    """Copy each profile document to a plain string key; per profile: used_memory, MEMORY USAGE."""
    client = store.client
    names = [
        raw.decode()
        for raw in client.scan_iter(
            match=keys.profile(store.namespace, "*"), count=SCAN_COUNT, _type="hash"
        )
    ]
    before = used_memory(client)
    copied: list[str] = []
    for start in range(0, len(names), SCAN_COUNT):
        chunk = names[start : start + SCAN_COUNT]
        with client.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.hget(name, "doc")
            documents = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for name, document in zip(chunk, documents, strict=True):
                raw_name = f"{raw_namespace}:{name.rsplit(':', 1)[1]}"
                pipe.set(raw_name, document)
                copied.append(raw_name)
            pipe.execute()
    delta = used_memory(client) - before
    sample = random.Random(1).sample(copied, min(len(copied), 5000))
    usage = memory_usage(client, sample) / max(len(sample), 1)
    print(
        f"\nraw baseline: {len(copied):,} documents as plain strings: used_memory delta"
        f" {delta / profiles:,.0f} B/profile, MEMORY USAGE {usage:,.0f} B/profile",
        flush=True,
    )
    return delta / profiles, usage


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument(
        "--checkpoints", default="10000,30000,100000", help="comma-separated profile counts"
    )
    parser.add_argument("--sample", type=int, default=2000, help="keys measured per kind")
    parser.add_argument("--chunk", type=int, default=2000, help="customers per built chunk")
    parser.add_argument("--processes", type=int, default=2, help="processes building chunks")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c} | {args.profiles})
    checkpoints = [c for c in checkpoints if c <= args.profiles]

    print(f"start: {load()}", flush=True)
    started = time.monotonic()
    rng = random.Random(args.seed)
    curve: list[tuple[int, float, float]] = []
    with (
        namespace("benchmem", topics=False) as settings,
        namespace("benchmemraw", topics=False) as raw_settings,
        ReadModelStore.from_settings(settings) as store,
    ):
        client = store.client
        memory_before, keys_before = used_memory(client), int(client.dbsize())

        def checkpoint(written: int) -> None:
            if written not in checkpoints:
                return
            delta = used_memory(client) - memory_before
            kinds = usage_by_kind(client, settings.namespace, args.sample, rng)
            mine = sum(kind.keys for kind in kinds.values())
            foreign = int(client.dbsize()) - keys_before - mine
            per_profile = print_checkpoint(written, kinds, delta, foreign)
            curve.append((written, per_profile, delta / written))

        seed_profiles(
            store,
            args.profiles,
            seed=args.seed,
            chunk_size=args.chunk,
            processes=args.processes,
            after_chunk=checkpoint,
        )
        raw_delta, raw_usage = raw_baseline(store, raw_settings.namespace, args.profiles)
    print(f"\nscaling curve ({time.monotonic() - started:.0f}s, end: {load()})")
    print(f"  {'profiles':>10} {'MEMORY USAGE B/profile':>24} {'used_memory B/profile':>22}")
    for written, per_profile, delta in curve:
        print(f"  {written:>10,} {per_profile:>24,.0f} {delta:>22,.0f}")
    print(
        f"  raw baseline (documents only): MEMORY USAGE {raw_usage:,.0f} B/profile,"
        f" used_memory {raw_delta:,.0f} B/profile"
    )


if __name__ == "__main__":
    main()
