"""The write key of a request: HTTP basic user name (empty password), or ``writeKey``.

Segment's SDKs send the write key as the user name of HTTP basic auth with an
empty password; browsers' beacon requests put it into the body as
``writeKey``. The header is checked before the body is read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cdp.collect.errors import Unauthorized
from cdp.collect.keys import Sender, WriteKeys


def basic_user(header: str) -> str:
    """The user name of an ``Authorization: Basic`` header (401 if it is not one)."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        raise Unauthorized(
            "Authorization must be HTTP basic with the write key as user name",
            code="invalid_authorization",
        )
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "the HTTP basic credentials are not valid base64", code="invalid_authorization"
        ) from None
    return decoded.partition(":")[0]


def sender_of(keys: WriteKeys, key: str | None) -> Sender:
    """The sender of a write key: 401 ``missing_write_key`` / ``invalid_write_key``."""
    if not key:
        raise Unauthorized(
            "a write key is required (HTTP basic user name, or writeKey in the body)",
            code="missing_write_key",
        )
    sender = keys.authenticate(key)
    if sender is None:
        raise Unauthorized("the write key is not valid", code="invalid_write_key")
    return sender


def body_write_key(body: Mapping[str, Any]) -> str | None:
    """``writeKey`` of a body, if it is a string."""
    key = body.get("writeKey")
    return key if isinstance(key, str) else None
