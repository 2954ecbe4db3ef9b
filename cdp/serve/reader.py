"""Profile reads for the HTTP API in one round trip: :func:`read_profile`.

A lookup by identifier is an index read, an alias chain and a document read,
one round trip each through :class:`~cdp.serve.store.ReadModelStore`'s
methods. :func:`read_profile` runs one read-only Lua script
(:data:`READ_SOURCE`) instead, with the same answers as ``store.lookup`` +
``store.resolve`` + ``store.get_profile``, including
:class:`~cdp.serve.store.AliasCycleError` for a looping or overlong chain. The
script derives the keys it reads (fine on one Redis, not on Redis Cluster, like
the apply script).
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

from cdp.serve import keys
from cdp.serve.store import MAX_ALIAS_HOPS, AliasCycleError, ReadModelStore

READ_SOURCE = r"""
local ident_key, start, alias_prefix, profile_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_hops = tonumber(ARGV[5])
local current = start
if ident_key ~= '' then
  current = redis.call('HGET', ident_key, 'p')
  if not current then return {'none'} end
end
local seen = {[current] = true}
for _ = 0, max_hops do
  local target = redis.call('HGET', alias_prefix .. current, 'to')
  if not target or target == current then
    local doc = redis.call('HGET', profile_prefix .. current, 'doc')
    if not doc then return {'none', current} end
    return {'ok', current, doc}
  end
  current = target
  if seen[current] then return {'cycle', current} end
  seen[current] = true
end
return {'long', current}
"""
"""Read script: identifier (or id) -> alias chain -> document; touches keys it derives."""

READ_SHA = hashlib.sha1(READ_SOURCE.encode("utf-8")).hexdigest()


def read_profile(
    store: ReadModelStore, *, identifier_key: str | None = None, profile_id: str | None = None
) -> tuple[str, bytes] | None:
    """``(resolved profile id, document)`` for an identifier key or a profile id, or None.

    One round trip; aliases are followed. Raises
    :class:`~cdp.serve.store.AliasCycleError` on a looping or overlong alias chain.
    """
    if (identifier_key is None) == (profile_id is None):
        raise ValueError("give exactly one of identifier_key and profile_id")
    ident = "" if identifier_key is None else keys.identifier(store.namespace, identifier_key)
    args: list[Any] = [
        ident,
        profile_id or "",
        keys.alias(store.namespace, ""),
        keys.profile(store.namespace, ""),
        MAX_ALIAS_HOPS,
    ]
    try:
        reply = store.client.evalsha(READ_SHA, 0, *args)
    except NoScriptError:
        reply = store.client.eval(READ_SOURCE, 0, *args)
    status = _text(reply[0])
    if status == "ok":
        return _text(reply[1]), bytes(reply[2])
    if status == "none":
        return None
    what = "cycle through" if status == "cycle" else "chain longer than the hop limit at"
    raise AliasCycleError(f"alias {what} {_text(reply[1])} (starting at {profile_id or 'index'})")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
