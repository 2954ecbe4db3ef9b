"""``/v1/funnel`` and ``/v1/moments``: the journey funnel and the moments of truth.

Both are reports over all profiles, read from the aggregates the profile stage
keeps in Redis (:func:`cdp.serve.journey.read_funnel`, :func:`read_moments`):
counts and durations, no profile ids or field values. A department reads them
if its ``reports`` allow (default: every department; see :mod:`cdp.api.access`).
Definitions (current, reached, converted, conversion, time in stage) are those
of :mod:`cdp.journey.funnel`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cdp.api.access import Principal
from cdp.api.context import ApiContext, Context, require_report
from cdp.api.errors import ERROR_RESPONSES, InvalidParameters, NotFound
from cdp.api.models import (
    FunnelOut,
    FunnelSegmentOut,
    MomentCountOut,
    MomentsOut,
    SegmentOut,
)
from cdp.journey.funnel import Funnel, FunnelSegment
from cdp.serve.journey import read_funnel, read_moments

router = APIRouter(prefix="/v1", tags=["journey"], responses=ERROR_RESPONSES)

REGION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
"""A region as the funnel keys it (``DE``, ``CH``; ``unknown`` for profiles without one)."""
CHANNEL_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
"""A channel (``web``, ``ecommerce``, ``callcenter``, ``crm``)."""

NO_STAGE = "none"
"""``by_stage`` key of moments that happened before the profile had a stage."""

FunnelReader = Annotated[Principal, Depends(require_report("funnel"))]
MomentsReader = Annotated[Principal, Depends(require_report("moments"))]
RegionQuery = Annotated[
    str | None,
    Query(
        pattern=REGION_PATTERN,
        description="Only the profiles of this region (`unknown`: profiles without one).",
        examples=["DE"],
    ),
]
ChannelQuery = Annotated[
    str | None,
    Query(
        pattern=CHANNEL_PATTERN,
        description="Only what happened via this channel (the channel of each transition).",
        examples=["web"],
    ),
]


def segment_out(segment: FunnelSegment) -> FunnelSegmentOut:
    """The wire form of a funnel segment (same fields)."""
    return FunnelSegmentOut.model_validate(segment.model_dump(mode="json"))


def check_one_segment(region: str | None, channel: str | None) -> None:
    """:class:`InvalidParameters` (422) if both ``region`` and ``channel`` are given."""
    if region is not None and channel is not None:
        raise InvalidParameters(
            "give at most one of: region, channel",
            details=[
                {
                    "loc": ["query", "channel"],
                    "msg": "region and channel exclude each other",
                    "type": "value_error",
                }
            ],
        )


def select_segment(
    funnel: Funnel, region: str | None, channel: str | None
) -> tuple[SegmentOut, FunnelSegment]:
    """The segment ``?region=`` / ``?channel=`` select (neither: all profiles).

    :class:`InvalidParameters` (422) for both at once; :class:`NotFound` (404
    ``segment_not_found``) for a region or channel the funnel has no profile of.
    Messages and details name the parameter and the segments there are, never the
    value sent.
    """
    check_one_segment(region, channel)
    choices = (
        ("region", region, funnel.by_region, "no profile of this region in the funnel"),
        ("channel", channel, funnel.by_channel, "no profile reached a stage via this channel"),
    )
    for kind, value, segments, missing in choices:
        if value is None:
            continue
        found = segments.get(value)
        if found is None:
            raise NotFound(
                missing,
                code="segment_not_found",
                details={"parameter": kind, "available": sorted(segments)},
            )
        return SegmentOut(kind=kind, value=value), found
    return SegmentOut(kind="all"), funnel.overall


def funnel_report(ctx: ApiContext, region: str | None, channel: str | None) -> FunnelOut:
    """The funnel of the selected segment, as ``GET /v1/funnel`` answers it."""
    check_one_segment(region, channel)  # before reading Redis
    funnel = read_funnel(ctx.store, ctx.journey)
    segment, selected = select_segment(funnel, region, channel)
    return FunnelOut(
        journey=funnel.journey,
        stages=list(funnel.stages),
        segment=segment,
        funnel=segment_out(selected),
        regions=sorted(funnel.by_region),
        channels=sorted(funnel.by_channel),
    )


def moments_report(ctx: ApiContext) -> MomentsOut:
    """Moment-of-truth counts, as ``GET /v1/moments`` answers them.

    Every moment the journey defines is listed (in file order, zeros included),
    then moments counted but no longer defined (sorted). ``by_stage`` follows the
    journey's stage order, then ``none``, then unknown stages.
    """
    counted = read_moments(ctx.store)
    names = list(dict.fromkeys(m.name for m in ctx.journey.moments))
    names += [name for name in counted if name not in names]
    order = {stage: index for index, stage in enumerate((*ctx.journey.stage_names, NO_STAGE))}

    def position(item: tuple[str, int]) -> tuple[int, str]:
        return order.get(item[0], len(order)), item[0]

    moments = []
    for name in names:
        counts = counted.get(name, {})
        by_stage = sorted(((k, v) for k, v in counts.items() if k != "total"), key=position)
        moments.append(
            MomentCountOut(name=name, total=counts.get("total", 0), by_stage=dict(by_stage))
        )
    return MomentsOut(
        journey=ctx.journey.name, total=sum(m.total for m in moments), moments=moments
    )


@router.get(
    "/funnel",
    response_model=FunnelOut,
    summary="The journey funnel: stage counts, conversion, time in stage",
    description="Over all profiles, or one segment: `?region=` (the profile's region) or "
    "`?channel=` (the channel of each transition). Per stage: current, reached, converted, "
    "conversion, closed stays and their median and p90 seconds. 404 `segment_not_found` for a "
    "region or channel without profiles; 422 for both at once or a malformed value.",
)
def get_funnel(
    ctx: Context, _reader: FunnelReader, region: RegionQuery = None, channel: ChannelQuery = None
) -> FunnelOut:
    """The funnel of the selected segment and the segments there are."""
    return funnel_report(ctx, region, channel)


@router.get(
    "/moments",
    response_model=MomentsOut,
    summary="Moments of truth: occurrences in total and by stage",
)
def get_moments(ctx: Context, _reader: MomentsReader) -> MomentsOut:
    """Counts of every moment of truth over all profiles."""
    return moments_report(ctx)
