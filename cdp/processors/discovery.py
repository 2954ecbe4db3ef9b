"""Finding processors: modules in processor folders and the ``cdp.processors`` entry points.

* **Folders** (``CDP_PROCESSORS_PATH``, default the checkout's ``processors/``):
  every ``*.py`` file not starting with ``_`` is imported as
  ``<folder name>.<file stem>`` with the folder's parent on ``sys.path`` (so
  the checkout's ``processors/churn_risk.py`` is ``processors.churn_risk``, the
  module tests import). Every module-level :class:`Processor` counts.
* **Entry points** of installed packages, group ``cdp.processors``: each names
  a :class:`Processor`, a module (scanned like a file) or a list of processors::

      [project.entry-points."cdp.processors"]
      lifetime_value = "acme_cdp.processors:lifetime_value"

A module that fails to import, or two processors with one name, raise
:class:`ProcessorError` naming the file or entry point (the worker stops at start).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from cdp.processors.api import Processor, ProcessorError
from cdp.settings import Settings

ENTRY_POINT_GROUP = "cdp.processors"
"""Entry-point group through which installed packages add processors."""


def folders(settings: Settings) -> list[Path]:
    """The processor folders of ``settings`` (``CDP_PROCESSORS_PATH``), existing or not."""
    return [Path(part) for part in settings.processors_path.split(os.pathsep) if part.strip()]


def discover(settings: Settings) -> list[Processor]:
    """Every processor to run: from folders and entry points, filtered by ``CDP_PROCESSORS``.

    Sorted by name. Raises :class:`ProcessorError` on an import failure, a
    duplicate name or an unknown name in ``CDP_PROCESSORS``.
    """
    found: dict[str, Processor] = {}
    for processor in [*_from_folders(folders(settings)), *_from_entry_points()]:
        other = found.get(processor.name)
        if other is not None and other.function is not processor.function:
            raise ProcessorError(
                f"processor {processor.name} is defined twice:"
                f" {other.origin} and {processor.origin}"
            )
        found.setdefault(processor.name, processor)
    if settings.processors is not None:
        wanted = [name.strip() for name in settings.processors.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(found))
        if unknown:
            raise ProcessorError(f"CDP_PROCESSORS: no processor named {', '.join(unknown)}")
        found = {name: found[name] for name in wanted}
    return [found[name] for name in sorted(found)]


def processors_in(module: ModuleType, origin: str) -> list[Processor]:
    """The processors defined in ``module`` (not imported into it), marked with ``origin``."""
    return [
        value.with_origin(origin)
        for value in vars(module).values()
        if isinstance(value, Processor)
        and getattr(value.function, "__module__", None) == module.__name__
    ]


def _from_folders(paths: Iterable[Path]) -> list[Processor]:
    result: list[Processor] = []
    for folder in paths:
        if not folder.is_dir():
            continue
        folder = folder.resolve()
        parent = str(folder.parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
        for file in sorted(folder.glob("*.py")):
            if file.name.startswith("_"):
                continue
            name = f"{folder.name}.{file.stem}"
            try:
                module = importlib.import_module(name)
            except Exception as exc:
                raise ProcessorError(
                    f"processor module {file} failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            if Path(module.__file__ or "").resolve() != file:
                raise ProcessorError(
                    f"processor module {file}: the name {name} is taken by {module.__file__}"
                )
            result += processors_in(module, str(file))
    return result


def _from_entry_points() -> list[Processor]:
    result: list[Processor] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {entry.name} = {entry.value}"
        try:
            loaded = entry.load()
        except Exception as exc:
            raise ProcessorError(
                f"processor {origin} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(loaded, ModuleType):
            result += processors_in(loaded, origin)
        elif isinstance(loaded, Processor):
            result.append(loaded.with_origin(origin))
        elif isinstance(loaded, list | tuple) and all(isinstance(p, Processor) for p in loaded):
            result += [p.with_origin(origin) for p in loaded]
        else:
            raise ProcessorError(f"processor {origin}: not a processor, a list of them or a module")
    return result
