"""Decode each canonical record once per worker process, for all the stages that read it.

The facts stage and every event processor read ``{ns}.events.canonical``; all of them
run in the same worker process on the same partitions (one Faust consumer), and each
used to decode and validate every record itself (Avro, then the pydantic event model:
the largest single item in the worker's profile). :class:`DecodeOnce` keeps the
decoded event of a record until each of its ``readers`` took it, so the second and
later readers get it for a dictionary lookup.

The ingest stage of the same process hands over the events it encodes
(:meth:`DecodeOnce.remember`): a canonical record whose bytes it wrote is not decoded
at all, as long as it is read within ``capacity`` records written after it (records
another worker process ingested are decoded as before).

The cached event is never handed to user code: processors get a copy with their own
containers (:func:`~cdp.contracts.events.private_copy`; the nested models are
frozen), so no processor can change what the facts stage or another processor sees.
A record that cannot be decoded raises the same :class:`~cdp.errors.EventError` for
every reader, so each dead-letters it as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import Event, decode_canonical
from cdp.errors import EventError

DEFAULT_CAPACITY = 10_000
"""Most records kept at a time (the oldest go first); a reader that comes later decodes again.

A decoded event takes about 3.6 KB, so at most about 36 MB (twice that with the events ingest
handed over, :meth:`DecodeOnce.remember`). The readers of one record are
agents of the same process, apart by at most their input buffers and a batch (Faust's
``stream_buffer_maxsize``, 4,096, plus up to 1,000)."""


class DecodeOnce:
    """Canonical records decoded once and shared by ``readers`` readers (see module doc).

    Records are identified by ``(topic, partition, offset)`` and their bytes: a record
    read again after a seek is found again, a different record at the same position
    (another namespace, a recreated topic) is decoded anew. An entry is dropped when
    its last reader took it, or when ``capacity`` newer records pushed it out.
    """

    def __init__(self, codec: AvroCodec, readers: int, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if readers < 1:
            raise ValueError("readers must be at least 1")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._codec = codec
        self._readers = readers
        self._capacity = capacity
        # FIFOs: OrderedDict drops its oldest entry in O(1); a dict's first key is found by
        # scanning past the slots of the keys deleted before it (1.9 against 0.2 µs per
        # record at 10,000 entries)
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._written: OrderedDict[bytes, Event] = OrderedDict()
        self.decoded = 0
        """Records decoded (cache misses) since the start."""
        self.shared = 0
        """Reads served from the cache since the start."""
        self.remembered = 0
        """Records not decoded because this process's ingest stage wrote them."""

    def __len__(self) -> int:
        return len(self._entries)

    def event(self, position: Hashable, value: bytes | None) -> Event:
        """The validated event of the canonical record at ``position`` with ``value``.

        Raises :class:`~cdp.errors.EventError` (what :func:`decode_canonical` raises)
        when the record is not a valid canonical event. The returned event is shared:
        read it, never hand it to user code (use ``private_copy``).
        """
        entry = self._entries.get(position)
        if entry is not None and entry.value == value:
            self.shared += 1
            entry.left -= 1
            if entry.left <= 0:
                del self._entries[position]
        else:
            entry = self._decode(position, value)
        if entry.event is None:
            assert entry.error is not None
            raise EventError(entry.error.reason, entry.error.detail)
        return entry.event

    def remember(self, value: bytes, event: Event) -> None:
        """``value`` is the canonical encoding of the valid ``event`` (written by ingest).

        The first read of a record with exactly these bytes takes ``event`` instead of
        decoding them. At most ``capacity`` are kept; the oldest go first.
        """
        written = self._written
        written.pop(value, None)
        written[value] = event
        if len(written) > self._capacity:
            written.popitem(last=False)

    def _decode(self, position: Hashable, value: bytes | None) -> _Entry:
        known = None if value is None else self._written.pop(value, None)
        if known is not None:
            self.remembered += 1
            entry = _Entry(value, known, None, self._readers - 1)
        else:
            self.decoded += 1
            try:
                event = decode_canonical(self._codec, value)
                entry = _Entry(value, event, None, self._readers - 1)
            except EventError as exc:
                entry = _Entry(value, None, exc, self._readers - 1)
        self._entries.pop(position, None)
        if entry.left > 0:
            while len(self._entries) >= self._capacity:
                self._entries.popitem(last=False)
            self._entries[position] = entry
        return entry


class _Entry:
    __slots__ = ("error", "event", "left", "value")

    def __init__(
        self, value: bytes | None, event: Event | None, error: EventError | None, left: int
    ) -> None:
        self.value = value
        self.event = event
        self.error = error
        self.left = left
