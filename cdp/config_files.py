"""Reading YAML configuration files into pydantic models with errors that name the place.

Every error is a :class:`~cdp.errors.ConfigError` whose message names the file,
the field path (``types.email.max_per_profile``, ``traits.first_name.sources[1]``)
and the problem, so a bad file stops start-up with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cdp.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

_SUB_LOCATION = re.compile(r"^(\[\d+\]|[a-z_]+): (.*)$", re.DOTALL)


def format_loc(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a path: ``types.email.blocked[1]``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe_validation_error(exc: ValidationError) -> str:
    """All problems of a validation error, ``path: message`` joined by ``; `` (no input values)."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = format_loc(tuple(error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        sub = _SUB_LOCATION.match(message)
        if sub:  # validators may prefix a sub-location: "[2]: ..." or "sources: ..."
            head, message = sub.group(1), sub.group(2)
            loc = f"{loc}{head}" if head.startswith("[") else (f"{loc}.{head}" if loc else head)
        problems.append(f"{loc}: {message}" if loc else message)
    return "; ".join(problems)


def validate_config(model: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate parsed YAML/JSON data as ``model``; :class:`ConfigError` names source and field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None


def read_yaml(path: str | Path | None, package: str, default_resource: str) -> tuple[Any, str]:
    """Parse a YAML file (``None``: the packaged default); return the data and its name."""
    if path is None:
        resource = resources.files(package).joinpath(default_resource)
        source = str(resource)
        try:
            text = resource.read_text(encoding="utf-8")
        except OSError as exc:  # pragma: no cover - broken installation
            raise ConfigError(f"{source}: cannot read: {exc}") from None
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from None
    try:
        return yaml.safe_load(text), source
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
