"""Field-level views: which parts of a profile document a department sees.

A view is a list of field *paths* into the document's JSON: ``traits``
(every trait), ``traits.first_name`` (one trait), ``computed.open_tickets``,
``journey.score``; ``*`` is the whole document. A path covers everything below
it. :meth:`View.project` copies exactly the covered parts of a document (paths
walk JSON objects; a list is taken whole). ``profile_id`` is always included.

A request may narrow the result with ``?fields=a,b.c``. A requested path that
the view does not cover -- ``journey.score`` for a view that has only
``journey.stage``, or ``computed`` for a view that has only some computed
traits -- is refused with :class:`FieldNotInView` (HTTP 403), never silently
dropped. Unknown fields in the document (newer document versions) are passed
through only to views that cover them (``*`` or a covering prefix).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PATH_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")
"""A field path: 1-8 dot-separated segments of letters, digits, ``_`` and ``-``."""

MAX_REQUESTED_FIELDS = 50
"""Most paths one ``?fields=`` may name."""

ALWAYS = "profile_id"
"""The field every view includes."""


class FieldNotInView(Exception):
    """Requested field paths the view does not cover."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = paths


def check_path(path: str) -> str:
    """Return ``path`` if it is a well-formed field path, else raise :class:`ValueError`."""
    if not PATH_PATTERN.match(path):
        raise ValueError("a field path is 1-8 dot-separated names of letters, digits, '_' and '-'")
    return path


def parse_fields(raw: str | None) -> list[str] | None:
    """Parse ``?fields=a,b.c`` (None: no narrowing); :class:`ValueError` if malformed."""
    if raw is None:
        return None
    parts = [part.strip() for part in raw.split(",")]
    if not parts or any(not part for part in parts):
        raise ValueError("fields is a comma-separated list of field paths without blanks")
    if len(parts) > MAX_REQUESTED_FIELDS:
        raise ValueError(f"at most {MAX_REQUESTED_FIELDS} field paths")
    return sorted({check_path(part) for part in parts})


def _covers(prefix: str, path: str) -> bool:
    return prefix == "*" or path == prefix or path.startswith(prefix + ".")


class View:
    """The set of field paths one department may see."""

    def __init__(self, paths: Iterable[str]) -> None:
        unique = set(paths)
        for path in unique:
            if path != "*":
                check_path(path)
        self.all = "*" in unique
        self.paths: tuple[str, ...] = ("*",) if self.all else tuple(_minimal(unique))
        self._shown = _minimal({ALWAYS, *self.paths})  # per request otherwise: O(paths^2)

    def covers(self, path: str) -> bool:
        """True if the view shows everything under ``path``."""
        return path == ALWAYS or any(_covers(prefix, path) for prefix in self.paths)

    def effective(self, requested: list[str] | None) -> list[str]:
        """The paths a response holds: the view's, or ``requested`` after checking each.

        Raises :class:`FieldNotInView` naming every requested path the view does not cover.
        """
        if requested is None:
            return list(self._shown)
        outside = [path for path in requested if not self.covers(path)]
        if outside:
            raise FieldNotInView(outside)
        return _minimal({ALWAYS, *requested})

    def project(
        self, document: Mapping[str, Any], requested: list[str] | None = None
    ) -> dict[str, Any]:
        """The parts of ``document`` this view (narrowed to ``requested``) shows."""
        paths = self.effective(requested)
        if "*" in paths:
            return dict(document)
        out: dict[str, Any] = {}
        for path in paths:
            _copy(document, out, path.split("."))
        return out


def _minimal(paths: set[str]) -> list[str]:
    """``paths`` without those another of them covers, sorted."""
    return sorted(p for p in paths if not any(q != p and _covers(q, p) for q in paths))


def _copy(source: Mapping[str, Any], target: dict[str, Any], segments: list[str]) -> None:
    """Copy ``source[segments...]`` into ``target`` (creating the parent objects)."""
    head, rest = segments[0], segments[1:]
    if head not in source:
        return
    value = source[head]
    if not rest:
        target[head] = value
        return
    if not isinstance(value, Mapping):
        return  # the document has a scalar or list where the path goes deeper: nothing to show
    child = target.get(head)
    if not isinstance(child, dict):
        child = {}
    _copy(value, child, rest)
    if child:
        target[head] = child
