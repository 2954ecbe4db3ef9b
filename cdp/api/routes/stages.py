"""``/v1/stages/{stage}/profiles``: the profiles in a journey stage, newest first, paged.

The stages are those of the journey definition (``CDP_JOURNEY_CONFIG``); any
other name is a 422 listing the stages there are.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Path, Query

from cdp.api.context import Caller, Context
from cdp.api.errors import ERROR_RESPONSES, InvalidParameters
from cdp.api.models import StageMemberOut, StagePage
from cdp.journey.definition import JourneyDefinition
from cdp.serve import keys
from cdp.serve.store import ReadModelStore

router = APIRouter(prefix="/v1/stages", tags=["stages"], responses=ERROR_RESPONSES)

MAX_LIMIT = 500

STAGE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""What a stage name looks like (``cdp.journey.definition.Name``)."""

StagePath = Annotated[
    str,
    Path(
        pattern=STAGE_PATTERN,
        description="A stage of the journey definition (`need`, `search`, ... for the default).",
    ),
]


def check_stage(definition: JourneyDefinition, stage: str) -> str:
    """``stage`` if the journey has it; :class:`InvalidParameters` (422) naming the stages."""
    if stage not in definition.stage_names:
        raise InvalidParameters(
            f"not a stage of the journey {definition.name!r}",
            code="invalid_parameters",
            details=[
                {
                    "loc": ["path", "stage"],
                    "msg": "expected one of: " + ", ".join(definition.stage_names),
                    "type": "enum",
                }
            ],
        )
    return stage


def encode_cursor(entered_ms: int, profile_id: str) -> str:
    """The opaque cursor after ``(entered_ms, profile_id)``."""
    return base64.urlsafe_b64encode(f"{entered_ms}:{profile_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(entered_ms, profile_id)`` of a cursor; :class:`InvalidParameters` if malformed."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        ms, sep, profile_id = text.partition(":")
        if not sep or not profile_id or not ms.isdigit():
            raise ValueError
        return int(ms), profile_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidParameters(
            "the cursor is not one this API returned",
            code="invalid_cursor",
            details=[{"loc": ["query", "cursor"], "msg": "malformed cursor"}],
        ) from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def page_after(
    store: ReadModelStore, stage: str, limit: int, cursor: tuple[int, str] | None
) -> list[tuple[str, int]]:
    """Up to ``limit`` members after ``cursor``, newest first (ties: greater id first).

    Keyset paging: a page does not shift when profiles enter the stage meanwhile
    (they come before the cursor), so nothing is skipped or repeated.
    """
    if cursor is None:
        return [(m.profile_id, m.entered_ms) for m in store.stage_members(stage, 0, limit)]
    ms, after_id = cursor
    key = keys.stage(store.namespace, stage)
    client = store.client
    members = cast("list[bytes]", client.zrangebyscore(key, ms, ms))
    ties = sorted((_text(m) for m in members), reverse=True)
    out = [(member, ms) for member in ties if member < after_id][:limit]
    if len(out) < limit:
        rows = cast(
            "list[tuple[bytes, float]]",
            client.zrevrangebyscore(
                key, f"({ms}", "-inf", start=0, num=limit - len(out), withscores=True
            ),
        )
        out += [(_text(member), int(score)) for member, score in rows]
    return out


@router.get(
    "/{stage}/profiles",
    response_model=StagePage,
    summary="Profiles in a journey stage, newest first",
    description="Paged by an opaque cursor (keyset: stable while profiles enter the stage).",
)
def stage_profiles(
    ctx: Context,
    _caller: Caller,
    stage: StagePath,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9_-]{1,400}$", description="next_cursor of the previous page"),
    ] = None,
) -> StagePage:
    """One page of the profiles in ``stage``, by entered-at, newest first."""
    check_stage(ctx.journey, stage)
    after = None if cursor is None else decode_cursor(cursor)
    rows = page_after(ctx.store, stage, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return StagePage(
        stage=stage,
        profiles=[
            StageMemberOut(
                profile_id=pid,
                entered_ms=ms,
                entered_at=datetime.fromtimestamp(ms / 1000, UTC),
            )
            for pid, ms in rows
        ],
        next_cursor=encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None,
    )
