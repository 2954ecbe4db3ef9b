"""Stream processors added by data engineers: the public plugin API.

Write a function, decorate it with :func:`processor`, put it in ``processors/``
(or publish it through the entry-point group ``cdp.processors``), test it with
:mod:`cdp.testing`. The worker runs each processor as its own agent with the
built-in stages' guarantees. See ``docs/processors.md`` and
``docs/tutorial-first-processor.md``.
"""

from __future__ import annotations

from cdp.processors.api import (
    OUTPUT_TOPIC,
    EventFunction,
    Input,
    Processor,
    ProcessorError,
    ProfileFunction,
    State,
    processor,
)
from cdp.processors.discovery import ENTRY_POINT_GROUP, discover

__all__ = [
    "ENTRY_POINT_GROUP",
    "OUTPUT_TOPIC",
    "EventFunction",
    "Input",
    "Processor",
    "ProcessorError",
    "ProfileFunction",
    "State",
    "discover",
    "processor",
]
