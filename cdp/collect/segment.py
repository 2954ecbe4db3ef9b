"""Segment tracking-spec calls -> cdp events: pure functions, no I/O.

:func:`map_call` turns one Segment message (``identify``, ``track``, ``page``,
``screen``, ``group``, ``alias``) into one web-channel :class:`~cdp.contracts.events.Event`,
or raises :class:`InvalidMessage` with a machine-readable code and the Segment
field at fault. Messages and details never quote values (PII). The mapping
table is in ``docs/collector.md``:

* ``userId`` -> ``customer_id``, ``anonymousId`` -> ``anonymous_id``, an email or
  phone in ``traits`` (identify) or ``context.traits`` -> ``email`` / ``phone``
  identifiers; an alias's ``previousId`` -> ``anonymous_id``;
* traits -> lower_snake_case profile traits (``firstName`` -> ``first_name``,
  ``title`` -> ``job_title``, ``company.name`` -> ``company``, nested objects
  flattened with ``_``);
* ``context.consent.categoryPreferences`` -> consent decisions;
* the event id is a UUID5 over the sender's source and the ``messageId``, so a
  retried message is the same event (the pipeline dedupes by event id).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cdp.collect.keys import Sender
from cdp.contracts import events as ev
from cdp.contracts.events import (
    MAX_CONSENTS,
    MAX_TRAITS,
    NAME_PATTERN,
    Consent,
    Event,
    Identifier,
    error_detail,
)

CALL_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "group", "alias")
"""The Segment calls the collector accepts."""

EVENT_ID_NAMESPACE = uuid.UUID("5b0f8a52-3c1e-4f0e-9a77-0c9d3e1f6a21")
"""UUID5 namespace of collector event ids (fixed forever: changing it breaks dedupe)."""

MAX_TRAIT_VALUE = 4096
"""Longest trait value (the event contract's limit)."""

TRAIT_RENAMES: dict[str, str] = {
    "title": "job_title",
    "company_name": "company",
    "company_industry": "industry",
}
"""Segment reserved traits whose cdp name differs (after snake-casing and flattening)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(NAME_PATTERN)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH = 3


class InvalidMessage(ValueError):
    """A message the collector cannot accept: a code, the Segment field at fault, a text."""

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class MessageError:
    """Why one message of a request was refused (an item of the 400 body)."""

    index: int
    code: str
    field: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """``{"index", "code", "field", "message"}``."""
        return {
            "index": self.index,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


# --------------------------------------------------------------------------- small readers


def _id_text(message: Mapping[str, Any], name: str) -> str | None:
    """A Segment id field (string or integer) as text; None when absent or blank."""
    value = message.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage("invalid_field", name, f"{name} must be a string")
    text = str(value)
    if len(text) > 512:
        raise InvalidMessage("invalid_field", name, f"{name} is longer than 512 characters")
    return text if text.strip() else None


def _object(message: Mapping[str, Any], name: str, where: str | None = None) -> dict[str, Any]:
    """An optional JSON object field ({} when absent or null)."""
    value = message.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        field = f"{where}.{name}" if where else name
        raise InvalidMessage("invalid_field", field, f"{field} must be an object")
    return value


def _text(value: object) -> str | None:
    """A non-blank string, or None."""
    return value if isinstance(value, str) and value.strip() else None


def _json_text(value: dict[str, Any]) -> str | None:
    """Compact JSON text of a non-empty object (None for an empty one)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else None


def snake_name(key: str) -> str | None:
    """A Segment key as a cdp name: ``firstName`` -> ``first_name``; None if none fits."""
    name = _NON_WORD.sub("_", _CAMEL.sub("_", key).lower()).strip("_")
    return name if len(name) <= 64 and _NAME.match(name) else None


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else None
    return None


def _flatten(raw: Mapping[str, Any], prefix: str, depth: int, out: dict[str, str]) -> None:
    for key, value in raw.items():
        name = snake_name(f"{prefix}_{key}" if prefix else str(key))
        if name is None or value is None:
            continue
        if isinstance(value, dict):
            if depth < _MAX_DEPTH:
                _flatten(value, name, depth + 1, out)
            else:
                out[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            continue
        text = _scalar_text(value)
        if text is not None:
            out[name] = text


def profile_traits(raw: Mapping[str, Any]) -> dict[str, str]:
    """Segment traits as cdp traits: snake_case names, text values, objects flattened.

    ``{"firstName": "Anna", "company": {"name": "X AG"}, "title": "CTO"}`` ->
    ``{"first_name": "Anna", "company": "X AG", "job_title": "CTO"}``. Numbers and
    booleans become their JSON text, lists their JSON; null and blank values and
    keys that give no valid name are left out. Raises :class:`InvalidMessage` for a
    value longer than :data:`MAX_TRAIT_VALUE` or more than ``MAX_TRAITS`` traits.
    """
    flat: dict[str, str] = {}
    _flatten(raw, "", 1, flat)
    traits: dict[str, str] = {}
    for name, value in flat.items():
        target = TRAIT_RENAMES.get(name, name)
        if target != name and target in flat:
            continue  # an explicit trait of that name wins over the renamed one
        traits[target] = value
    if any(len(value) > MAX_TRAIT_VALUE for value in traits.values()):
        raise InvalidMessage(
            "invalid_field", "traits", f"a trait value is longer than {MAX_TRAIT_VALUE} characters"
        )
    if len(traits) > MAX_TRAITS:
        raise InvalidMessage("invalid_field", "traits", f"more than {MAX_TRAITS} traits")
    return traits


# --------------------------------------------------------------------------- time


def parse_time(value: object, field: str) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC (naive = UTC); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage("invalid_timestamp", field, f"{field} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidMessage(
            "invalid_timestamp", field, f"{field} is not an ISO 8601 timestamp"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def event_time(message: Mapping[str, Any], received_at: datetime) -> datetime:
    """When it happened: the client's time, corrected for the client's clock skew.

    The client's time is ``timestamp`` (else ``originalTimestamp``). With ``sentAt``
    the result is ``received_at - (sentAt - client time)`` (Segment's formula);
    without, the client's time as sent; without any, ``received_at``.
    """
    client = parse_time(message.get("timestamp"), "timestamp")
    if client is None:
        client = parse_time(message.get("originalTimestamp"), "originalTimestamp")
    sent = parse_time(message.get("sentAt"), "sentAt")
    if client is None:
        return received_at
    if sent is None:
        return client
    return received_at - (sent - client)


def event_id(source: str, message_id: str) -> str:
    """The event id of a message: UUID5 over ``source`` and ``messageId`` (lower-case)."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}\n{message_id}"))


# --------------------------------------------------------------------------- identifiers


def _contact_identifiers(traits: Mapping[str, str]) -> list[Identifier]:
    found: list[Identifier] = []
    email = traits.get("email")
    if email is not None and len(email) <= 512 and _EMAIL.match(email.strip()):
        found.append(Identifier.email(email))
    phone = traits.get("phone")
    if phone is not None and len(phone) <= 512:
        found.append(Identifier.phone(phone))
    return found


def _identifiers(
    call: str, message: Mapping[str, Any], traits: Mapping[str, str]
) -> list[Identifier]:
    user_id = _id_text(message, "userId")
    anonymous_id = _id_text(message, "anonymousId")
    found: list[Identifier] = []
    if call == "alias":
        previous_id = _id_text(message, "previousId")
        if previous_id is None:
            raise InvalidMessage("missing_field", "previousId", "alias needs a previousId")
        if user_id is None:
            raise InvalidMessage("missing_field", "userId", "alias needs a userId")
        found.append(Identifier.anonymous_id(previous_id))
    elif user_id is None and anonymous_id is None:
        raise InvalidMessage(
            "missing_identifiers",
            "userId/anonymousId",
            "the message needs a userId or an anonymousId",
        )
    if user_id is not None:
        found.append(Identifier.customer_id(user_id))
    if anonymous_id is not None:
        found.append(Identifier.anonymous_id(anonymous_id))
    return found + _contact_identifiers(traits)


def _consents(context: Mapping[str, Any]) -> list[Consent]:
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return []
    decisions: dict[str, bool] = {}
    for key, granted in preferences.items():
        purpose = snake_name(str(key))
        if purpose is not None and isinstance(granted, bool):
            decisions[purpose] = granted
    if len(decisions) > MAX_CONSENTS:
        raise InvalidMessage(
            "invalid_field", "context.consent", f"more than {MAX_CONSENTS} consent categories"
        )
    return [Consent(purpose=purpose, granted=granted) for purpose, granted in decisions.items()]


# --------------------------------------------------------------------------- payloads


def _track(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    name = message.get("event")
    if name is None or (isinstance(name, str) and not name.strip()):
        raise InvalidMessage("missing_field", "event", "track needs an event name")
    if not isinstance(name, str):
        raise InvalidMessage("invalid_field", "event", "event must be a string")
    return ev.TrackPayload(event=name, properties=_json_text(_object(message, "properties")))


def _identify(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    return ev.IdentifyPayload()


def _page(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    properties = _object(message, "properties")
    page = _object(context, "page", "context")
    url = (
        _text(properties.get("url"))
        or _text(page.get("url"))
        or _text(properties.get("path"))
        or _text(page.get("path"))
    )
    if url is None:
        raise InvalidMessage("missing_field", "properties.url", "page needs properties.url")
    category = _text(message.get("category")) or _text(properties.get("category"))
    campaign = context.get("campaign")
    return ev.PageViewPayload(
        url=url,
        title=_text(properties.get("title"))
        or _text(page.get("title"))
        or _text(message.get("name")),
        referrer=_text(properties.get("referrer")) or _text(page.get("referrer")),
        page_category=category.strip().lower() if category else None,
        campaign=_text(campaign.get("name")) if isinstance(campaign, dict) else None,
    )


def _screen(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    properties = _object(message, "properties")
    return ev.ScreenPayload(
        name=_text(message.get("name")) or _text(properties.get("name")),
        category=_text(message.get("category")) or _text(properties.get("category")),
        properties=_json_text(properties),
    )


def _group(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    group_id = _id_text(message, "groupId")
    if group_id is None:
        raise InvalidMessage("missing_field", "groupId", "group needs a groupId")
    return ev.GroupPayload(group_id=group_id, traits=_json_text(_object(message, "traits")))


def _alias(message: Mapping[str, Any], context: Mapping[str, Any]) -> ev.Payload:
    previous_id = _id_text(message, "previousId")
    assert previous_id is not None  # checked with the identifiers
    return ev.AliasPayload(previous_id=previous_id)


_PAYLOADS: dict[
    str, tuple[type[Event], Callable[[Mapping[str, Any], Mapping[str, Any]], ev.Payload]]
] = {
    "track": (ev.Track, _track),
    "identify": (ev.Identify, _identify),
    "page": (ev.PageView, _page),
    "screen": (ev.Screen, _screen),
    "group": (ev.Group, _group),
    "alias": (ev.Alias, _alias),
}


def _person_traits(
    call: str, message: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, str]:
    traits = profile_traits(_object(context, "traits", "context"))
    if call == "identify":
        traits.update(profile_traits(_object(message, "traits")))
    elif call == "group":
        group = profile_traits(_object(message, "traits"))
        for source, target in (("name", "company"), ("industry", "industry")):
            if source in group:
                traits[target] = group[source]
    return traits


# --------------------------------------------------------------------------- one call


def map_call(
    call: str,
    message: object,
    sender: Sender,
    received_at: datetime,
    new_message_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Event:
    """The cdp event of one Segment call of type ``call`` (one of :data:`CALL_TYPES`).

    ``received_at`` is the collector's receive time (tz-aware); a message without
    ``messageId`` gets ``new_message_id()`` (a random UUID4: such a message cannot
    be deduplicated when retried). Raises :class:`InvalidMessage`.
    """
    if not isinstance(message, dict):
        raise InvalidMessage("invalid_message", None, "a message must be a JSON object")
    if call not in _PAYLOADS:
        raise InvalidMessage("unknown_type", "type", f"type must be one of {', '.join(CALL_TYPES)}")
    context = _object(message, "context")
    traits = _person_traits(call, message, context)
    identifiers = _identifiers(call, message, traits)
    model, payload_of = _PAYLOADS[call]
    message_id = _id_text(message, "messageId") or new_message_id()
    when = event_time(message, received_at)
    try:
        payload = payload_of(message, context)
        return model.model_validate(
            {
                "event_id": event_id(sender.source, message_id),
                "event_time": when,
                "source": sender.source,
                "region": sender.region,
                "identifiers": identifiers,
                "traits": traits,
                "consents": _consents(context),
                "payload": payload,
            }
        )
    except ValidationError as exc:
        detail = error_detail(exc)
        code = "invalid_timestamp" if "event_time_in_future" in detail else "invalid_field"
        raise InvalidMessage(
            code, None, f"the message does not fit the event contract: {detail}"
        ) from None


def batch_call_type(message: object) -> str:
    """The call type of a batch item (its ``type``); :class:`InvalidMessage` if unknown."""
    kind = message.get("type") if isinstance(message, dict) else None
    if not isinstance(message, dict):
        raise InvalidMessage("invalid_message", None, "a message must be a JSON object")
    if kind not in CALL_TYPES:
        raise InvalidMessage("unknown_type", "type", f"type must be one of {', '.join(CALL_TYPES)}")
    return str(kind)


# --------------------------------------------------------------------------- requests


class RejectedMessages(ValueError):
    """Messages of a request that cannot be accepted (the whole request is refused)."""

    def __init__(self, errors: list[MessageError], total: int) -> None:
        super().__init__(f"{len(errors)} of {total} message(s) refused")
        self.errors = errors
        self.total = total


def batch_items(body: Mapping[str, Any]) -> list[object]:
    """The messages of a batch body, with the batch's ``context`` and ``sentAt`` applied.

    A message's own ``context`` keys win over the batch's; its own ``sentAt`` wins
    over the batch's. Raises :class:`InvalidMessage` if ``batch`` is not a list.
    """
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidMessage("invalid_body", "batch", "batch must be a list of messages")
    shared_context = body.get("context")
    sent_at = body.get("sentAt")
    merged: list[object] = []
    for item in items:
        if isinstance(item, dict):
            item = dict(item)
            if isinstance(shared_context, dict):
                own = item.get("context")
                item["context"] = {**shared_context, **(own if isinstance(own, dict) else {})}
            if sent_at is not None and "sentAt" not in item:
                item["sentAt"] = sent_at
        merged.append(item)
    return merged


def map_messages(
    messages: list[tuple[str | None, object]], sender: Sender, received_at: datetime
) -> list[Event]:
    """The events of a request's messages, ``(call type or None for a batch item, message)``.

    All or nothing: raises :class:`RejectedMessages` listing every refused message.
    """
    events: list[Event] = []
    errors: list[MessageError] = []
    for index, (call, message) in enumerate(messages):
        try:
            events.append(map_call(call or batch_call_type(message), message, sender, received_at))
        except InvalidMessage as exc:
            errors.append(MessageError(index, exc.code, exc.field, exc.message))
    if errors:
        raise RejectedMessages(errors, len(messages))
    return events
