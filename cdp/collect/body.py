"""Reading a request body within the size limits, and parsing it as a JSON object.

Limits (Segment's): a single call at most :data:`MAX_CALL_BYTES`, a batch at
most :data:`MAX_BATCH_BYTES`, each message of a batch at most
:data:`MAX_CALL_BYTES` (measured as compact JSON). A gzip body
(``Content-Encoding: gzip``) is limited before and after decompression, so
neither a large upload nor a small zip bomb is ever held in memory.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import Request

from cdp.collect.errors import InvalidBody, InvalidJson, PayloadTooLarge, UnsupportedEncoding

MAX_CALL_BYTES = 32 * 1024
"""Largest single call and largest message of a batch (32 KB)."""
MAX_BATCH_BYTES = 500 * 1024
"""Largest batch request (500 KB)."""


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", details={"limit_bytes": limit}
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The (decompressed) body, at most ``limit`` bytes; 413/415 otherwise."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise UnsupportedEncoding(
            "Content-Encoding must be gzip or identity", details={"supported": ["gzip", "identity"]}
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    data = b"".join(chunks)
    return gunzip(data, limit) if encoding == "gzip" else data


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body to at most ``limit`` bytes (413 beyond, 400 if corrupt)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise InvalidBody("the body is not valid gzip", code="invalid_encoding") from None
    if len(out) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise InvalidBody("the body is not valid gzip", code="invalid_encoding")
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object: 400 ``invalid_json`` / ``invalid_body`` otherwise."""
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # includes JSONDecodeError and UnicodeDecodeError
        raise InvalidJson("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidBody("the body must be a JSON object")
    return value


def message_size(message: object) -> int:
    """Size of one message as compact UTF-8 JSON (how batch items are measured)."""
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
