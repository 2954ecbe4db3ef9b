"""Journey parts of the read model: stage sets, funnel counters, stays, moment counts.

A profile's write (:func:`profile_upsert`) carries its stage and its *share*
of the aggregates (:func:`aggregate_entries`), both derived from the journey
state inside its document. The apply script swaps the profile's previous
share for the new one in the same atomic step, so the aggregates always equal
the sum over the stored profiles: they survive re-deliveries, merges (the
merged-away profile's delete removes its share) and a rebuild from Kafka.

Counter fields of ``{ns}:v1:funnel`` (``{seg}`` is ``all``, ``region=DE`` or
``channel=web``; see :mod:`cdp.journey.funnel` for the definitions)::

    {seg}|unstaged                 profiles without a stage (all, region only)
    {seg}|current|{stage}          profiles now in the stage
    {seg}|reached|{stage}          profiles that got to the stage or beyond
    {seg}|converted|{stage}        ... and also to the next stage
    moment|{name}                  occurrences of a moment of truth
    moment|{name}|{stage}          ... by the stage right after it

Stays: ``{ns}:v1:stays:{seg}|{stage}`` sorted sets, member
``{profile_id}:{n}``, score = seconds in the stage (closed stays only).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

from cdp.journey.definition import JourneyDefinition
from cdp.journey.engine import JourneyState
from cdp.journey.funnel import (
    Funnel,
    FunnelSegment,
    StageMetrics,
    funnel_contribution,
)
from cdp.profile.document import ProfileDocument
from cdp.serve import keys
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import ProfileUpsert

ALL = "all"
"""Segment of every profile."""


def region_segment(region: str) -> str:
    """Segment name of a region."""
    return f"region={region}"


def channel_segment(channel: str) -> str:
    """Segment name of a channel."""
    return f"channel={channel}"


def aggregate_entries(
    profile_id: str, state: JourneyState | None, definition: JourneyDefinition
) -> bytes:
    """The profile's share of the aggregates as the apply script's JSON (``b""``: none)."""
    if state is None:
        return b""
    item = funnel_contribution(state, definition)
    counters: list[str] = []
    region = region_segment(item.region)
    if item.stage is None:
        counters += [f"{ALL}|unstaged", f"{region}|unstaged"]
    else:
        counters += [f"{ALL}|current|{item.stage}", f"{region}|current|{item.stage}"]
        if item.stage_channel is not None:
            counters.append(f"{channel_segment(item.stage_channel)}|current|{item.stage}")
    for position, arrival in enumerate(item.arrivals):
        converted = position + 1 < len(item.arrivals)
        for segment in (ALL, region, channel_segment(arrival.channel)):
            counters.append(f"{segment}|reached|{arrival.stage}")
            if converted:
                counters.append(f"{segment}|converted|{arrival.stage}")
    for moment in state.moments:
        counters += [f"moment|{moment.name}", f"moment|{moment.name}|{moment.stage or ''}"]
    stays: list[list[Any]] = []
    for index, stay in enumerate(item.stays):
        member = f"{profile_id}:{index}"
        for segment in (ALL, region, channel_segment(stay.channel)):
            stays.append([f"{segment}|{stay.stage}", member, stay.seconds])
    if not counters and not stays:
        return b""
    return json.dumps({"h": counters, "z": stays}, separators=(",", ":")).encode()


def profile_upsert(
    document: ProfileDocument, encoded: bytes, version: int, definition: JourneyDefinition
) -> ProfileUpsert:
    """The read-model write of a profile document (``encoded`` = its canonical JSON)."""
    state = document.journey
    stage = None if state is None else state.stage
    entered = None if state is None or state.entered_at is None else state.entered_at
    return ProfileUpsert(
        document.profile_id,
        version,
        encoded,
        stage,
        None if stage is None or entered is None else int(entered.timestamp() * 1000),
        aggregate_entries(document.profile_id, state, definition),
    )


def _percentile_at(store: ReadModelStore, key: str, count: int, q: float) -> float | None:
    """Nearest-rank percentile of a stays set (the same rule as :func:`cdp.journey.percentile`)."""
    if count == 0:
        return None
    rank = max(1, math.ceil(q * count))
    rows = store.client.zrange(key, rank - 1, rank - 1, withscores=True)
    return float(rows[0][1]) if rows else None


def read_funnel(store: ReadModelStore, definition: JourneyDefinition) -> Funnel:
    """The funnel as the stream keeps it in Redis (equal to :func:`cdp.journey.compute_funnel`)."""
    raw = store.client.hgetall(keys.funnel(store.namespace))
    counters = {_text(f): int(n) for f, n in raw.items()}
    segments: dict[str, dict[str, int]] = defaultdict(dict)
    for name, count in counters.items():
        segment, _, rest = name.partition("|")
        if segment != "moment":
            segments[segment][rest] = count
    segments.setdefault(ALL, {})

    def build(segment: str) -> FunnelSegment:
        values = segments.get(segment, {})
        rows = []
        last = definition.stage_names[-1]
        for stage in definition.stages:
            reached = values.get(f"reached|{stage.name}", 0)
            converted = values.get(f"converted|{stage.name}", 0)
            key = keys.stays(store.namespace, segment, stage.name)
            stays = int(store.client.zcard(key))
            rows.append(
                StageMetrics(
                    stage=stage.name,
                    owner=stage.owner,
                    current=values.get(f"current|{stage.name}", 0),
                    reached=reached,
                    converted=converted,
                    conversion=None if stage.name == last or not reached else converted / reached,
                    stays=stays,
                    median_seconds=_percentile_at(store, key, stays, 0.5),
                    p90_seconds=_percentile_at(store, key, stays, 0.9),
                )
            )
        unstaged = values.get("unstaged", 0)
        profiles = sum(r.current for r in rows) + unstaged
        return FunnelSegment(profiles=profiles, unstaged=unstaged, stages=tuple(rows))

    regions = sorted(s.removeprefix("region=") for s in segments if s.startswith("region="))
    channels = sorted(s.removeprefix("channel=") for s in segments if s.startswith("channel="))
    return Funnel(
        journey=definition.name,
        stages=definition.stage_names,
        overall=build(ALL),
        by_region={r: build(region_segment(r)) for r in regions},
        by_channel={c: build(channel_segment(c)) for c in channels},
    )


def read_moments(store: ReadModelStore) -> dict[str, dict[str, int]]:
    """Moment-of-truth counts: ``{name: {"total": n, "<stage>": n, ...}}``, names sorted."""
    raw = store.client.hgetall(keys.funnel(store.namespace))
    moments: dict[str, dict[str, int]] = defaultdict(dict)
    for field, count in raw.items():
        parts = _text(field).split("|")
        if parts[0] != "moment":
            continue
        if len(parts) == 2:
            moments[parts[1]]["total"] = int(count)
        else:
            moments[parts[1]][parts[2] or "none"] = int(count)
    return {name: dict(sorted(moments[name].items())) for name in sorted(moments)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
