"""Rendering a profile on each new event: full journey replay against resumed folds.

No stack needed::

    .venv/bin/python -m bench.render_fold

The profiles stage rebuilds a profile's document on every change. This times,
per render over generated customers whose facts arrive one at a time in time
order (each render sees one more fact), ``build_profile`` with a full journey
replay (the raw baseline) and with the stage's :class:`~cdp.journey.engine.JourneyFolds`,
which replays only the new fact while traits and region stay the same.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict

from cdp.journey import default_journey
from cdp.journey.engine import JourneyFolds
from cdp.profile.document import build_profile
from cdp.profile.facts import Fact, fact_from_event, sort_facts
from cdp.profile.survivorship import default_trait_config
from cdp.samples import generate


def _render_all(profiles: list[tuple[str, list[Fact]]], folds: JourneyFolds | None) -> float:
    traits, journey = default_trait_config(), default_journey()
    started = time.perf_counter()
    for profile_id, facts in profiles:
        for end in range(1, len(facts) + 1):
            build_profile(
                profile_id,
                facts[:end],
                traits,
                identifiers=[profile_id],
                journey=journey,
                folds=folds,
            )
    return time.perf_counter() - started


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300, help="generated customers")
    parser.add_argument("--events", type=float, default=10, help="events per customer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dataset = generate(args.customers, args.events, seed=1)
    by_customer: defaultdict[str, dict[str, Fact]] = defaultdict(dict)
    for event in dataset.events:
        by_customer[dataset.truth[event.event_id]][event.event_id] = fact_from_event(event)
    profiles = [(key, sort_facts(facts.values())) for key, facts in by_customer.items()]
    renders = sum(len(facts) for _key, facts in profiles)
    print(f"{len(profiles):,} profiles, {renders:,} renders (one new fact each)")
    for round_ in range(1, args.rounds + 1):
        gc.collect()
        full = _render_all(profiles, None) / renders
        gc.collect()
        folded = _render_all(profiles, JourneyFolds()) / renders
        print(
            f"round {round_}: full replay {full * 1e6:.1f} µs/render (raw baseline),"
            f" resumed folds {folded * 1e6:.1f} µs/render ({folded / full:.0%})"
        )


if __name__ == "__main__":
    main()
