"""The dashboard: server-rendered HTML (no JavaScript, no CDN), under ``/dashboard``.

Pages: a login form, a lookup form, the profile 360 page
(``/dashboard/profiles?email=...`` or ``/dashboard/profiles/{id}``) showing
identifiers, traits with their source, consent, computed traits and -- when the
document has them -- the journey stage, owner, score and stage history as a
timeline; and the funnel page (``/dashboard/funnel``, ``?region=`` or
``?channel=``): the journey funnel as an inline SVG bar chart (stage counts and
stage-to-stage conversion), time in stage (median, p90) and the moments of
truth. The caller's field-level view applies exactly as in the API: a
section outside the view says so instead of showing data; the funnel and the
moments need the department's ``reports`` to allow them, as in the API.

Authentication: the API key, entered once in the login form (stored in an
HttpOnly, SameSite=Strict cookie scoped to ``/dashboard``), or given as
``?key=`` for the local demo (which also sets the cookie). Templates are
Jinja2 with auto-escaping, so document content cannot inject markup.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from cdp.api.access import Principal
from cdp.api.context import ApiContext, context_of, ensure_report
from cdp.api.errors import ApiError, InvalidParameters
from cdp.api.models import FunnelOut, MomentsOut
from cdp.api.routes.journey import CHANNEL_PATTERN, REGION_PATTERN, funnel_report, moments_report
from cdp.api.routes.profiles import (
    LOOKUP_PARAMETERS,
    PROFILE_ID_PATTERN,
    fetch_by_id,
    fetch_by_identifier,
    one_identifier,
    view_of,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)

COOKIE = "cdp_key"
"""Name of the cookie that holds the dashboard's API key."""

MAX_FORM_BYTES = 4096

_env = Environment(
    loader=PackageLoader("cdp.api", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_time(value: Any) -> str:
    """An ISO 8601 time as ``2026-03-02 09:17:00 UTC``; anything else as text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 10**11:
        value = datetime.fromtimestamp(value / 1000, UTC).isoformat()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        suffix = " UTC" if parsed.utcoffset() is not None and not parsed.utcoffset() else ""
        return parsed.strftime("%Y-%m-%d %H:%M:%S") + suffix
    return "" if value is None else str(value)


def _format_duration(value: Any) -> str:
    """Seconds as ``3 d 4 h``, ``5 h 12 min``, ``12 min 5 s`` or ``40 s``; ``—`` for none."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    seconds = round(value)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _format_percent(value: Any) -> str:
    """A ratio as ``62.5 %``; ``—`` for none."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value * 100:.1f} %"


_env.filters["time"] = _format_time
_env.filters["duration"] = _format_duration
_env.filters["percent"] = _format_percent


KNOWN_JOURNEY_FIELDS = frozenset(
    {
        "journey",
        "stage",
        "owner",
        "entered_at",
        "region",
        "history",
        "moments",
        "score",
        "scored_at",
        "qualified",
        "excluded",
        "qualified_at",
        "qualification_event_id",
        "qualification_id",
    }
)
"""Journey fields the profile page lays out; other scalar fields are listed as they are."""


def _render(
    name: str, status: int = 200, stages: tuple[str, ...] = (), **context: Any
) -> HTMLResponse:
    html = _env.get_template(name).render(
        stages=list(stages),
        known_journey_fields=KNOWN_JOURNEY_FIELDS,
        page="funnel" if name == "funnel.html" else "profiles",
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _key_of(request: Request, key: str | None) -> str | None:
    return key or request.cookies.get(COOKIE)


def _with_cookie(response: Response, request: Request, key: str | None) -> Response:
    if key:
        response.set_cookie(
            COOKIE,
            key,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/dashboard",
        )
    return response


def _principal(ctx: ApiContext, key: str | None) -> Principal | None:
    return ctx.access.authenticate(key) if key else None


def _login(message: str | None = None, status: int = 200) -> HTMLResponse:
    return _render("login.html", status=status, message=message, principal=None)


@router.get("", response_class=HTMLResponse)
def home(request: Request, key: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """The lookup form (or the login form when not signed in)."""
    ctx = context_of(request)
    principal = _principal(ctx, _key_of(request, key))
    if principal is None:
        return _login("That key is not valid." if key else None, 401 if key else 200)
    page = _render("search.html", principal=principal, message=None, types=LOOKUP_PARAMETERS)
    return _with_cookie(page, request, key)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the key from the form; set the cookie and go to the lookup page."""
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    ctx = context_of(request)
    if _principal(ctx, key) is None:
        return _login("That key is not valid.", 401)
    return _with_cookie(RedirectResponse("/dashboard", status_code=303), request, key)


@router.post("/logout")
def logout() -> Response:
    """Forget the key cookie."""
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


def _profile_page(
    ctx: ApiContext, principal: Principal, requested_id: str | None, found: tuple[str, bytes]
) -> HTMLResponse:
    resolved, document = found
    profile, paths = view_of(principal, None, document)
    profile["profile_id"] = resolved
    view = principal.view
    return _render(
        "profile.html",
        stages=ctx.journey.stage_names,
        principal=principal,
        profile=profile,
        requested_id=requested_id,
        resolved_id=resolved,
        visible={
            name: view.covers(name) or any(p.startswith(name + ".") for p in paths)
            for name in ("identifiers", "traits", "consent", "computed", "journey", "sources")
        },
        journey=profile.get("journey") if isinstance(profile.get("journey"), dict) else None,
        types=LOOKUP_PARAMETERS,
    )


def _error_page(principal: Principal, exc: ApiError) -> HTMLResponse:
    return _render(
        "search.html",
        status=exc.status,
        principal=principal,
        message=exc.message,
        types=LOOKUP_PARAMETERS,
    )


@router.get("/profiles", response_class=HTMLResponse)
def lookup_page(
    request: Request,
    key: Annotated[str | None, Query(max_length=512)] = None,
    type: Annotated[str | None, Query(max_length=32)] = None,
    value: Annotated[str | None, Query(max_length=320)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=320)] = None,
    customer_id: Annotated[str | None, Query(max_length=320)] = None,
    crm_contact_id: Annotated[str | None, Query(max_length=320)] = None,
    anonymous_id: Annotated[str | None, Query(max_length=320)] = None,
) -> Response:
    """Profile 360 by identifier: ``?email=`` (etc.) or the form's ``?type=&value=``."""
    ctx = context_of(request)
    principal = _principal(ctx, _key_of(request, key))
    if principal is None:
        return _login("Sign in with your department's API key.", 401)
    given = {
        "email": email,
        "phone": phone,
        "customer_id": customer_id,
        "crm_contact_id": crm_contact_id,
        "anonymous_id": anonymous_id,
    }
    try:
        if type == "profile_id" and value:
            if not re.match(PROFILE_ID_PATTERN, value.strip()):
                raise InvalidParameters("That is not a profile id.")
            page = _profile_page(ctx, principal, value.strip(), fetch_by_id(ctx, value.strip()))
            return _with_cookie(page, request, key)
        if type is not None and value is not None:
            if type not in given:
                raise InvalidParameters("Unknown identifier type.")
            given[type] = value
        id_type, id_value = one_identifier(given)
        found = fetch_by_identifier(ctx, id_type, id_value)
    except ApiError as exc:
        return _with_cookie(_error_page(principal, exc), request, key)
    return _with_cookie(_profile_page(ctx, principal, None, found), request, key)


@router.get("/profiles/{profile_id}", response_class=HTMLResponse)
def profile_page(
    request: Request,
    profile_id: str,
    key: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Profile 360 by profile id (aliases followed)."""
    ctx = context_of(request)
    principal = _principal(ctx, _key_of(request, key))
    if principal is None:
        return _login("Sign in with your department's API key.", 401)
    try:
        if not re.match(PROFILE_ID_PATTERN, profile_id):
            raise InvalidParameters("That is not a profile id.")
        found = fetch_by_id(ctx, profile_id)
    except ApiError as exc:
        return _with_cookie(_error_page(principal, exc), request, key)
    return _with_cookie(_profile_page(ctx, principal, profile_id, found), request, key)


CHART_WIDTH = 760
CHART_LABEL = 150
CHART_BAR = 430
CHART_ROW = 58
"""Geometry of the funnel chart (SVG user units): label column, bar length, row height."""


def funnel_chart(report: FunnelOut) -> dict[str, Any]:
    """Rows of the SVG bar chart: per stage its bars (reached, current) and the conversion
    to the next stage. Bar lengths are relative to the largest ``reached``."""
    metrics = report.funnel.stages
    scale = max([m.reached for m in metrics] + [m.current for m in metrics] + [1])
    rows = []
    for index, m in enumerate(metrics):
        rows.append(
            {
                "stage": m.stage,
                "owner": m.owner,
                "current": m.current,
                "reached": m.reached,
                "converted": m.converted,
                "conversion": m.conversion,
                "next": metrics[index + 1].stage if index + 1 < len(metrics) else None,
                "y": index * CHART_ROW,
                "reached_width": round(CHART_BAR * m.reached / scale, 1),
                "current_width": round(CHART_BAR * m.current / scale, 1),
            }
        )
    return {
        "rows": rows,
        "width": CHART_WIDTH,
        "height": max(1, len(rows)) * CHART_ROW,
        "label": CHART_LABEL,
        "bar": CHART_BAR,
        "row": CHART_ROW,
    }


def _segment_param(value: str | None, pattern: str, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not re.match(pattern, value):
        raise InvalidParameters(f"That is not a {name}.")
    return value


@router.get("/funnel", response_class=HTMLResponse)
def funnel_page(
    request: Request,
    key: Annotated[str | None, Query(max_length=512)] = None,
    region: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The journey funnel (all profiles, ``?region=`` or ``?channel=``) and moments of truth."""
    ctx = context_of(request)
    principal = _principal(ctx, _key_of(request, key))
    if principal is None:
        return _login("Sign in with your department's API key.", 401)
    report: FunnelOut | None = None
    moments: MomentsOut | None = None
    segments: FunnelOut | None = None
    status, message = 200, None
    try:
        ensure_report(principal, "funnel")
        selected_region = _segment_param(region, REGION_PATTERN, "region")
        selected_channel = _segment_param(channel, CHANNEL_PATTERN, "channel")
        report = funnel_report(ctx, selected_region, selected_channel)
    except ApiError as exc:
        status, message = exc.status, exc.message
        if exc.status == 404:  # unknown segment: still offer the segments there are
            segments = funnel_report(ctx, None, None)
    if "moments" in principal.reports:
        moments = moments_report(ctx)
    page = _render(
        "funnel.html",
        status=status,
        stages=ctx.journey.stage_names,
        principal=principal,
        message=message,
        journey=ctx.journey,
        report=report,
        segments=report or segments,
        chart=funnel_chart(report) if report is not None else None,
        moments=moments,
        may_read_funnel="funnel" in principal.reports,
    )
    return _with_cookie(page, request, key)
