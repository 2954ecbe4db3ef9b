"""``/v1/changes``: the change feed as server-sent events, resumable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from cdp.api.changes import change_events
from cdp.api.context import Caller, Context
from cdp.api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["changes"], responses=ERROR_RESPONSES)

STREAM_ID = r"^\d{1,20}-\d{1,20}$"


@router.get(
    "/changes",
    response_class=StreamingResponse,
    summary="Change feed (server-sent events)",
    description="One SSE event `change` per profile write (`data`: id, profile_id, version, "
    "op). Resume after the last id seen with the `Last-Event-ID` header or `?after=`; "
    "without either the feed starts at the current end. `after=0-0` replays what is kept. "
    "An event `reset` means entries may have been trimmed since the position: resync.",
    responses={
        200: {
            "description": "An endless `text/event-stream` (ends with max_events/timeout).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def changes(
    request: Request,
    ctx: Context,
    _caller: Caller,
    after: Annotated[
        str | None, Query(pattern=STREAM_ID, description="Stream id to resume after.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", pattern=STREAM_ID, description="Wins over ?after=."),
    ] = None,
    max_events: Annotated[
        int | None, Query(ge=1, le=100_000, description="End the stream after this many events.")
    ] = None,
    timeout: Annotated[
        float | None, Query(gt=0, le=86_400, description="End the stream after this many seconds.")
    ] = None,
) -> StreamingResponse:
    """Stream the changes after the given position."""
    position = last_event_id or after
    return StreamingResponse(
        change_events(
            ctx.store,
            position,
            is_disconnected=request.is_disconnected,
            metrics=ctx.metrics,
            max_events=max_events,
            timeout_s=timeout,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
