"""The Lua script that applies version-guarded writes, and how a batch is encoded for it.

One script, :data:`APPLY_SOURCE`, applies any number of writes in order. Each
write is atomic (a script runs without interleaving) and guarded by the version
stored on its key: it applies only if its version is >= the stored one (equal:
idempotent replay). The client runs it with ``EVALSHA`` and loads it on
``NOSCRIPT`` (see :class:`cdp.serve.store.ReadModelStore`).

Call layout (all strings)::

    KEYS[1] meta hash          ARGV[1] layout version
    KEYS[2] change stream      ARGV[2] change stream MAXLEN (approximate)
    KEYS[3] stage registry     ARGV[3] stage key prefix ({ns}:v1:stage:)
    KEYS[4] funnel counters    ARGV[4] stays key prefix ({ns}:v1:stays:)
    KEYS[4+i] primary key of write i, ARGV[5..] per write: opcode + operands

=======  ==========================================  =================
opcode   operands                                    primary key
=======  ==========================================  =================
``U``    profile id, version, document, stage, ms,   profile hash
         aggregates
``D``    profile id, version                         profile hash
``L``    profile id, version, identifier key         identifier hash
``X``    version                                     identifier hash
``A``    target profile id, version                  alias hash
=======  ==========================================  =================

``stage`` and ``ms`` are ``""`` for a profile without a stage. ``aggregates`` is
the profile's share of the funnel counters and stays sets (JSON, ``""`` for
none); the script subtracts the stored share and adds the new one, so the
counters always equal the sum over the stored profiles. The reply is one
digit per write, in order: ``0`` stale (skipped), ``1`` applied (newer or new
key), ``2`` replayed (equal version, re-applied).

The stage sets are named at run time from the stored stage (the old stage of a
moving profile is only known inside the script), so the script touches keys it
was not given in KEYS; fine on a single Redis, not on Redis Cluster (see
``docs/specs/redis-layout.md``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from cdp.serve import keys
from cdp.serve.writes import (
    AliasSet,
    IdentifierLink,
    IdentifierUnlink,
    ProfileDelete,
    ProfileUpsert,
    Write,
)

APPLY_SOURCE = r"""
local meta, stream, registry, funnel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local layout, maxlen, stage_prefix, stays_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local stored_layout = redis.call('HGET', meta, 'layout')
if not stored_layout then
  redis.call('HSET', meta, 'layout', layout)
elseif stored_layout ~= layout then
  return redis.error_reply('CDP_LAYOUT namespace holds layout ' .. stored_layout ..
    ', this writer writes layout ' .. layout)
end

-- 0 stale, 1 newer (or no stored version), 2 equal
local function guard(stored, version)
  if not stored then return 1 end
  local s, v = tonumber(stored), tonumber(version)
  if v < s then return 0 elseif v == s then return 2 else return 1 end
end

local function leave_stage(stage, pid)
  local skey = stage_prefix .. stage
  redis.call('ZREM', skey, pid)
  if redis.call('EXISTS', skey) == 0 then redis.call('SREM', registry, stage) end
end

-- add (sign 1) or remove (sign -1) a profile's share of the funnel aggregates
local function aggregate(agg, sign)
  if not agg or agg == '' then return end
  local data = cjson.decode(agg)
  for _, field in ipairs(data['h'] or {}) do
    if redis.call('HINCRBY', funnel, field, sign) <= 0 then redis.call('HDEL', funnel, field) end
  end
  for _, z in ipairs(data['z'] or {}) do
    if sign > 0 then
      redis.call('ZADD', stays_prefix .. z[1], z[3], z[2])
    else
      redis.call('ZREM', stays_prefix .. z[1], z[2])
    end
  end
end

local function changed(pid, version, op)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'p', pid, 'v', version, 'op', op)
end

local function upsert(key, pid, version, doc, stage, ms, agg)
  local cur = redis.call('HMGET', key, 'v', 'doc', 'stage', 'ms', 'agg')
  local g = guard(cur[1], version)
  if g == 0 then return 0 end
  local old = cur[3]
  if g == 2 and cur[2] == doc and (old or '') == stage and (cur[4] or '') == ms
      and (cur[5] or '') == agg then
    return 2
  end
  aggregate(cur[5], -1)
  aggregate(agg, 1)
  if agg ~= '' then
    redis.call('HSET', key, 'agg', agg)
  elseif cur[5] then
    redis.call('HDEL', key, 'agg')
  end
  if old and old ~= stage then leave_stage(old, pid) end
  if stage ~= '' then
    redis.call('ZADD', stage_prefix .. stage, ms, pid)
    redis.call('SADD', registry, stage)
    redis.call('HSET', key, 'v', version, 'doc', doc, 'stage', stage, 'ms', ms)
  else
    redis.call('HSET', key, 'v', version, 'doc', doc)
    if old then redis.call('HDEL', key, 'stage', 'ms') end
  end
  changed(pid, version, 'upsert')
  return g
end

local function delete(key, pid, version)
  local cur = redis.call('HMGET', key, 'v', 'doc', 'stage', 'agg')
  local g = guard(cur[1], version)
  if g == 0 then return 0 end
  if g == 2 and not cur[2] then return 2 end
  if cur[3] then leave_stage(cur[3], pid) end
  aggregate(cur[4], -1)
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', version)
  changed(pid, version, 'delete')
  return g
end

local function link(key, pid, version, ident)
  local g = guard(redis.call('HGET', key, 'v'), version)
  if g == 0 then return 0 end
  redis.call('HSET', key, 'v', version, 'p', pid, 'k', ident)
  return g
end

local function unlink(key, version)
  local g = guard(redis.call('HGET', key, 'v'), version)
  if g == 0 then return 0 end
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', version)
  return g
end

local function alias(key, target, version)
  local g = guard(redis.call('HGET', key, 'v'), version)
  if g == 0 then return 0 end
  redis.call('HSET', key, 'v', version, 'to', target)
  return g
end

local out = {}
local a = 5
for i = 5, #KEYS do
  local key, op, r = KEYS[i], ARGV[a], nil
  if op == 'U' then
    r = upsert(key, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
    a = a + 7
  elseif op == 'D' then
    r = delete(key, ARGV[a + 1], ARGV[a + 2])
    a = a + 3
  elseif op == 'L' then
    r = link(key, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
    a = a + 4
  elseif op == 'X' then
    r = unlink(key, ARGV[a + 1])
    a = a + 2
  elseif op == 'A' then
    r = alias(key, ARGV[a + 1], ARGV[a + 2])
    a = a + 3
  else
    return redis.error_reply('CDP_BAD_OPCODE ' .. tostring(op) .. ' at write ' .. (i - 4))
  end
  out[#out + 1] = r
end
return table.concat(out)
"""
"""Source of the apply script (see the module docstring for its call layout)."""

APPLY_SHA = hashlib.sha1(APPLY_SOURCE.encode("utf-8")).hexdigest()
"""SHA1 Redis knows the script by (``EVALSHA``); computed locally, no round trip."""

LAYOUT_ERROR_PREFIX = "CDP_LAYOUT"
"""Start of the script's error when the namespace holds another layout version."""


class Outcome(IntEnum):
    """What happened to one write (the script's reply digit)."""

    STALE = 0
    """Its version is older than the stored one: skipped, nothing changed."""
    APPLIED = 1
    """Newer than the stored version (or the key had none): applied."""
    REPLAYED = 2
    """Same version as stored: re-applied idempotently (no change if the content is equal)."""


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """The KEYS and ARGV of one script call."""

    keys: tuple[str, ...]
    args: tuple[str | bytes, ...]
    writes: int


def _operands(namespace: str, write: Write) -> tuple[str, tuple[str | bytes, ...]]:
    """The primary key and the opcode + operands of one write."""
    if isinstance(write, ProfileUpsert):
        return keys.profile(namespace, write.profile_id), (
            "U",
            write.profile_id,
            str(write.version),
            write.document,
            write.stage or "",
            "" if write.stage_entered_ms is None else str(write.stage_entered_ms),
            write.aggregates,
        )
    if isinstance(write, ProfileDelete):
        return keys.profile(namespace, write.profile_id), (
            "D",
            write.profile_id,
            str(write.version),
        )
    if isinstance(write, IdentifierLink):
        return keys.identifier(namespace, write.identifier_key), (
            "L",
            write.profile_id,
            str(write.version),
            write.identifier_key,
        )
    if isinstance(write, IdentifierUnlink):
        return keys.identifier(namespace, write.identifier_key), ("X", str(write.version))
    if isinstance(write, AliasSet):
        return keys.alias(namespace, write.alias_id), ("A", write.profile_id, str(write.version))
    raise TypeError(f"not a read-model write: {type(write).__name__}")


def encode(
    namespace: str, batch: Sequence[Write], *, maxlen: int, writes_per_call: int
) -> list[ScriptCall]:
    """Split ``batch`` into script calls of at most ``writes_per_call`` writes, in order."""
    if writes_per_call < 1:
        raise ValueError("writes_per_call must be >= 1")
    head_keys = (
        keys.meta(namespace),
        keys.changes(namespace),
        keys.stages(namespace),
        keys.funnel(namespace),
    )
    head_args = (
        str(keys.LAYOUT_VERSION),
        str(maxlen),
        keys.stage_prefix(namespace),
        keys.stays_prefix(namespace),
    )
    calls: list[ScriptCall] = []
    for start in range(0, len(batch), writes_per_call):
        chunk = batch[start : start + writes_per_call]
        call_keys: list[str] = list(head_keys)
        call_args: list[str | bytes] = list(head_args)
        for write in chunk:
            key, operands = _operands(namespace, write)
            call_keys.append(key)
            call_args.extend(operands)
        calls.append(ScriptCall(tuple(call_keys), tuple(call_args), len(chunk)))
    return calls


def decode(reply: bytes | str, writes: int) -> list[Outcome]:
    """The outcomes of one script call; raises :class:`ValueError` on a malformed reply."""
    text = reply.decode("ascii") if isinstance(reply, bytes) else reply
    if len(text) != writes or not set(text) <= {"0", "1", "2"}:
        raise ValueError(f"unexpected apply-script reply for {writes} writes: {text[:40]!r}")
    return [Outcome(int(digit)) for digit in text]
