"""``/v1/profiles``: profile by id, lookup by identifier, GDPR export and erase.

The two reads are coroutines that call Redis inline: one round trip to a
nearby Redis (:func:`~cdp.serve.reader.read_profile`) costs less than the
thread-pool hop FastAPI makes for a plain function, which dominated their
latency (see ``docs/benchmarks.md``). The API's Redis client has a socket
timeout, so a hung Redis cannot hold the event loop for long.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cdp.api import privacy
from cdp.api.access import Principal
from cdp.api.context import Admin, ApiContext, Caller, Context
from cdp.api.errors import ERROR_RESPONSES, Forbidden, InvalidParameters, NotFound
from cdp.api.models import EraseReceipt, ExportOut, ProfileResponse
from cdp.api.views import FieldNotInView, parse_fields
from cdp.identity.identifiers import Verdict, classify
from cdp.serve.reader import read_profile
from cdp.serve.store import ReadModelError

router = APIRouter(prefix="/v1/profiles", tags=["profiles"], responses=ERROR_RESPONSES)

PROFILE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""What a profile id in a path may look like (ids are ``p-`` + hex; tests use short ones)."""

LOOKUP_PARAMETERS = ("email", "phone", "customer_id", "crm_contact_id", "anonymous_id")
"""The identifier types ``GET /v1/profiles`` looks up, one per request."""

_PATH = r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}"
FIELDS_PATTERN = rf"^{_PATH}(,{_PATH})*$"
"""``?fields=``: comma-separated field paths (see :mod:`cdp.api.views`)."""

ProfileIdPath = Annotated[
    str, Path(pattern=PROFILE_ID_PATTERN, description="A profile id or an id aliased to one.")
]
FieldsQuery = Annotated[
    str | None,
    Query(
        max_length=2000,
        pattern=FIELDS_PATTERN,
        description="Comma-separated field paths to return (default: the whole view). "
        "A path outside the caller's view is a 403.",
        examples=["traits,journey.stage"],
    ),
]
IdentifierQuery = Annotated[str | None, Query(min_length=1, max_length=320)]


def requested_fields(principal: Principal, fields: str | None) -> list[str] | None:
    """Parse ``?fields=`` (422 if malformed) and check it against the view (403 if outside)."""
    try:
        requested = parse_fields(fields)
    except ValueError as exc:
        raise InvalidParameters(
            str(exc), details=[{"loc": ["query", "fields"], "msg": str(exc)}]
        ) from None
    try:
        principal.view.effective(requested)
    except FieldNotInView as exc:
        raise Forbidden(
            f"field(s) outside the {principal.department} view: {', '.join(exc.paths)}",
            code="field_not_in_view",
            details={"fields": exc.paths, "department": principal.department},
        ) from None
    return requested


def load_document(document: bytes) -> dict[str, Any]:
    """Parse a stored document; :class:`ReadModelError` if it is not a JSON object."""
    try:
        parsed = json.loads(document)
    except ValueError:
        raise ReadModelError("a stored profile document is not JSON") from None
    if not isinstance(parsed, dict):
        raise ReadModelError("a stored profile document is not a JSON object")
    return parsed


def view_of(
    principal: Principal, requested: list[str] | None, document: bytes
) -> tuple[dict[str, Any], list[str]]:
    """The projected document and the field paths it may hold."""
    return (
        principal.view.project(load_document(document), requested),
        principal.view.effective(requested),
    )


def _profile_payload(
    principal: Principal,
    requested: list[str] | None,
    requested_id: str | None,
    profile_id: str,
    document: bytes,
) -> dict[str, Any]:
    projected, paths = view_of(principal, requested, document)
    projected["profile_id"] = profile_id
    return {
        "requested_id": requested_id,
        "profile_id": profile_id,
        "department": principal.department,
        "fields": paths,
        "profile": projected,
    }


def fetch_by_id(ctx: ApiContext, profile_id: str) -> tuple[str, bytes]:
    """``(resolved id, document)`` of ``profile_id``; :class:`NotFound` if it has none."""
    found = read_profile(ctx.store, profile_id=profile_id)
    if found is None:
        raise NotFound("no profile with this id", code="profile_not_found")
    return found


def identifier_key(ctx: ApiContext, id_type: str, value: str) -> str:
    """Normalise a looked-up identifier like ingest does; 422 invalid, 404 blocked."""
    verdict, key = classify(id_type, value, ctx.identity)
    if verdict is Verdict.INVALID or key is None:
        raise InvalidParameters(
            f"the {id_type} is not a valid {id_type} identifier",
            code="invalid_identifier",
            details=[{"loc": ["query", id_type], "msg": "not a valid identifier"}],
        )
    if verdict is Verdict.BLOCKED:
        raise NotFound(f"no profile for this {id_type}", code="identifier_not_found")
    return key


def fetch_by_identifier(ctx: ApiContext, id_type: str, value: str) -> tuple[str, bytes]:
    """``(resolved id, document)`` for an identifier; 422 if invalid, 404 if unknown."""
    found = read_profile(ctx.store, identifier_key=identifier_key(ctx, id_type, value))
    if found is None:
        raise NotFound(f"no profile for this {id_type}", code="identifier_not_found")
    return found


def one_identifier(given: dict[str, str | None]) -> tuple[str, str]:
    """The one identifier parameter of a lookup; 422 unless exactly one was given."""
    present = [(name, value) for name, value in given.items() if value is not None]
    if len(present) != 1:
        raise InvalidParameters(
            "give exactly one of: " + ", ".join(LOOKUP_PARAMETERS),
            code="invalid_parameters",
            details={
                "expected_one_of": list(LOOKUP_PARAMETERS),
                "given": [name for name, _ in present],
            },
        )
    return present[0][0], str(present[0][1])


@router.get(
    "",
    response_model=ProfileResponse,
    summary="Look up a profile by one identifier",
    description="Exactly one identifier parameter, normalised like ingest (emails lower-cased, "
    "phones to E.164, ...). 422 if none, several or an invalid one; 404 if no profile has it.",
)
async def lookup_profile(
    ctx: Context,
    principal: Caller,
    email: IdentifierQuery = None,
    phone: IdentifierQuery = None,
    customer_id: IdentifierQuery = None,
    crm_contact_id: IdentifierQuery = None,
    anonymous_id: IdentifierQuery = None,
    fields: FieldsQuery = None,
) -> JSONResponse:
    """Look up the profile an identifier belongs to, in the caller's view."""
    id_type, value = one_identifier(
        {
            "email": email,
            "phone": phone,
            "customer_id": customer_id,
            "crm_contact_id": crm_contact_id,
            "anonymous_id": anonymous_id,
        }
    )
    requested = requested_fields(principal, fields)
    resolved, document = fetch_by_identifier(ctx, id_type, value)
    return JSONResponse(_profile_payload(principal, requested, None, resolved, document))


@router.get(
    "/{profile_id}",
    response_model=ProfileResponse,
    summary="Get a profile by id (aliases followed)",
)
async def get_profile(
    ctx: Context, principal: Caller, profile_id: ProfileIdPath, fields: FieldsQuery = None
) -> JSONResponse:
    """The profile ``profile_id`` resolves to, in the caller's view; says the resolved id."""
    requested = requested_fields(principal, fields)
    resolved, document = fetch_by_id(ctx, profile_id)
    return JSONResponse(_profile_payload(principal, requested, profile_id, resolved, document))


@router.get(
    "/{profile_id}/export",
    response_model=ExportOut,
    summary="GDPR export: everything stored about the person (admin)",
)
def export_profile(ctx: Context, _admin: Admin, profile_id: ProfileIdPath) -> JSONResponse:
    """Document, identifier index entries, aliases and change-stream entries of the person."""
    person = privacy.collect(ctx.store, profile_id)
    if person is None:
        raise NotFound("no profile with this id", code="profile_not_found")
    return JSONResponse(privacy.export(ctx.store, person).model_dump(mode="json"))


@router.delete(
    "/{profile_id}",
    response_model=EraseReceipt,
    summary="GDPR erase: remove the person from Redis, tombstone Kafka, audit (admin)",
)
async def erase_profile(ctx: Context, admin: Admin, profile_id: ProfileIdPath) -> JSONResponse:
    """Erase the person ``profile_id`` resolves to; answers with a receipt (no PII)."""

    def run() -> EraseReceipt:
        person = privacy.collect(ctx.store, profile_id)
        if person is None:
            raise NotFound("no profile with this id", code="profile_not_found")
        return ctx.eraser.erase(person, admin)

    receipt = await run_in_threadpool(run)
    ctx.metrics.erasures.inc()
    return JSONResponse(receipt.model_dump(mode="json"))
