"""Wire models of the HTTP API, shared by the server (OpenAPI) and the client.

Pure pydantic, no FastAPI: :mod:`cdp.client` imports this module.

The profile models mirror :class:`cdp.profile.document.ProfileDocument` but are
*lenient*: every field is optional (a department's view leaves fields out) and
unknown fields are kept (``extra="allow"``), so a newer server that adds fields
to the document (the journey, segments, ...) does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    """Base of the lenient models: unknown fields are kept, nothing is required."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TraitValue(_Open):
    """A resolved trait: the winning value and its provenance."""

    value: str | None = Field(default=None, repr=False)
    source: str | None = None
    channel: str | None = None
    event_time: datetime | None = None
    event_id: str | None = None
    rule: str | None = None


class LatestValue(_Open):
    """The latest value a channel system reported (lead status, owner, ...), with provenance."""

    value: str | None = None
    ref: str | None = None
    source: str | None = None
    channel: str | None = None
    event_time: datetime | None = None
    event_id: str | None = None


class ConsentDecision(_Open):
    """The latest consent decision for one purpose and scope."""

    granted: bool | None = None
    source: str | None = None
    channel: str | None = None
    event_time: datetime | None = None
    event_id: str | None = None


class ComputedTraits(_Open):
    """Aggregates over a profile's events; ``None`` = absent or outside the view."""

    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_channel: str | None = None
    region: str | None = None
    regions: list[str] | None = None
    events_by_channel: dict[str, int] | None = None
    events_by_type: dict[str, int] | None = None
    order_count: int | None = None
    items_ordered: int | None = None
    revenue: dict[str, str] | None = None
    return_count: int | None = None
    returned_value: dict[str, str] | None = None
    tickets_total: int | None = None
    open_tickets: list[str] | None = None
    satisfaction_count: int | None = None
    avg_satisfaction: float | None = None
    lead_status: LatestValue | None = None
    opportunity_stage: LatestValue | None = None
    opportunities: dict[str, str] | None = None
    account_owner: LatestValue | None = None


class StageChange(_Open):
    """One transition of the journey's stage history (``cdp.journey.engine.Transition``)."""

    from_stage: str | None = None
    to_stage: str | None = None
    at: datetime | None = None
    event_id: str | None = None
    channel: str | None = None
    rule: str | None = None


class MomentOccurrence(_Open):
    """One occurrence of a moment of truth."""

    name: str | None = None
    event_id: str | None = None
    at: datetime | None = None
    stage: str | None = None
    channel: str | None = None


class Journey(_Open):
    """The profile's journey state (``cdp.journey.engine.JourneyState``), every field optional."""

    journey: str | None = None
    stage: str | None = None
    owner: str | None = None
    entered_at: datetime | None = None
    region: str | None = None
    history: list[StageChange] | None = None
    moments: list[MomentOccurrence] | None = None
    score: float | None = None
    scored_at: datetime | None = None
    qualified: bool | None = None
    excluded: str | None = None
    qualified_at: datetime | None = None
    qualification_event_id: str | None = None
    qualification_id: str | None = None


class Profile(_Open):
    """A profile document as a department sees it (its view's fields only)."""

    profile_id: str
    identifiers: list[str] | None = Field(default=None, repr=False)
    traits: dict[str, TraitValue] | None = Field(default=None, repr=False)
    computed: ComputedTraits | None = None
    consent: dict[str, dict[str, ConsentDecision]] | None = None
    sources: list[str] | None = None
    event_count: int | None = None
    journey: Journey | None = None


class ProfileResponse(BaseModel):
    """``GET /v1/profiles/{id}`` and the identifier lookup."""

    model_config = ConfigDict(extra="allow", frozen=True)

    requested_id: str | None = Field(
        default=None, description="The id asked for (null for an identifier lookup)."
    )
    profile_id: str = Field(description="The id the document lives under (aliases followed).")
    department: str = Field(description="The department whose view was applied.")
    fields: list[str] = Field(description="The field paths the response may contain.")
    profile: Profile


class StageMemberOut(BaseModel):
    """A profile in a stage and when it entered it."""

    profile_id: str
    entered_ms: int = Field(description="Entered-at, epoch milliseconds.")
    entered_at: datetime = Field(description="Entered-at, ISO 8601 UTC.")


class StagePage(BaseModel):
    """``GET /v1/stages/{stage}/profiles``: one page, newest first."""

    stage: str = Field(description="A stage of the configured journey.")
    profiles: list[StageMemberOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


class StageMetricsOut(_Open):
    """Funnel numbers of one stage (``cdp.journey.funnel.StageMetrics``)."""

    stage: str
    owner: str | None = Field(default=None, description="The stage's owning department.")
    current: int = Field(default=0, description="Profiles now in the stage.")
    reached: int = Field(
        default=0, description="Profiles that got to the stage or beyond (entered or skipped it)."
    )
    converted: int = Field(default=0, description="Of those, the ones that got to the next stage.")
    conversion: float | None = Field(
        default=None,
        description="converted / reached; null for the last stage or when nobody reached it.",
    )
    stays: int = Field(default=0, description="Closed stays measured for the time in stage.")
    median_seconds: float | None = Field(
        default=None, description="Median time in stage (nearest rank), seconds."
    )
    p90_seconds: float | None = Field(
        default=None, description="90th percentile time in stage (nearest rank), seconds."
    )


class FunnelSegmentOut(_Open):
    """The funnel of one set of profiles (``cdp.journey.funnel.FunnelSegment``)."""

    profiles: int = Field(default=0, description="Profiles in the segment (current + unstaged).")
    unstaged: int = Field(default=0, description="Profiles without a stage (0 per channel).")
    stages: list[StageMetricsOut] = Field(default_factory=list, description="In journey order.")


class SegmentOut(BaseModel):
    """Which profiles a funnel covers."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["all", "region", "channel"] = Field(
        description="all profiles, one region's (the profile's region), or one channel's "
        "(the channel of the transition that did it)."
    )
    value: str | None = Field(default=None, description="The region or channel; null for all.")


class FunnelOut(_Open):
    """``GET /v1/funnel``: the journey funnel of one segment and the segments there are."""

    journey: str = Field(description="Name of the journey definition.")
    stages: list[str] = Field(description="Stage names in journey order.")
    segment: SegmentOut
    funnel: FunnelSegmentOut = Field(description="The funnel of the selected segment.")
    regions: list[str] = Field(
        default_factory=list, description="Regions with a funnel (`?region=`), sorted."
    )
    channels: list[str] = Field(
        default_factory=list, description="Channels with a funnel (`?channel=`), sorted."
    )


class MomentCountOut(_Open):
    """Occurrences of one moment of truth, in total and by the stage right after it."""

    name: str
    total: int = 0
    by_stage: dict[str, int] = Field(
        default_factory=dict,
        description="Stage the profile was in right after the moment -> occurrences "
        "(`none`: no stage yet).",
    )


class MomentsOut(_Open):
    """``GET /v1/moments``: counts of every moment of truth over all profiles."""

    journey: str = Field(description="Name of the journey definition.")
    total: int = Field(description="Occurrences of all moments.")
    moments: list[MomentCountOut] = Field(
        description="The journey's moments in file order (zeros included), then any others."
    )


class ChangeOut(BaseModel):
    """One change-feed event (the SSE ``data`` of an event ``change``)."""

    id: str = Field(description="Stream position; resume after it with Last-Event-ID or ?after=.")
    profile_id: str
    version: int
    op: str = Field(description="upsert or delete")


class IdentifierEntry(BaseModel):
    """An identifier index entry of an exported profile."""

    key: str = Field(description="The identifier key, e.g. email:anna@example.com.")
    profile_id: str | None = Field(description="The profile id the index links it to.")
    version: int | None = None
    digest: str = Field(description="The digest naming the Redis index key.")


class AliasEntry(BaseModel):
    """An alias that resolves (possibly over several hops) to the exported profile."""

    alias_id: str
    to: str
    version: int | None = None


class ExportOut(BaseModel):
    """``GET /v1/profiles/{id}/export``: everything stored about the person."""

    requested_id: str
    profile_id: str
    exported_at: datetime
    version: int | None = Field(description="Version of the stored document.")
    stage: str | None = None
    stage_entered_ms: int | None = None
    document: dict[str, Any]
    identifiers: list[IdentifierEntry]
    aliases: list[AliasEntry]
    changes: list[ChangeOut]


class EraseReceipt(BaseModel):
    """``DELETE /v1/profiles/{id}``: what the erasure did (no PII)."""

    audit_id: str
    profile_id: str
    requested_id: str
    erased_at: datetime
    department: str
    identifier_count: int
    alias_count: int
    profile_ids_deleted: list[str] = Field(
        description="Profile ids whose documents were deleted and tombstoned."
    )
    tombstones: dict[str, int] = Field(description="Kafka topic -> tombstones written (acked).")
    audit_topic: str


class ErrorDetail(BaseModel):
    """The machine-readable part of every error response."""

    code: str = Field(description="Stable machine-readable code, e.g. field_not_in_view.")
    message: str = Field(description="Human-readable explanation (never contains PII).")
    details: Any | None = Field(default=None, description="Code-specific extra data.")


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx response: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /healthz``."""

    status: str


class Readiness(BaseModel):
    """``GET /readyz`` when ready (a failed check answers 503 with the error body)."""

    status: str
    checks: dict[str, str]
