"""YAML with line numbers: validation errors that point at the line of the file.

:func:`parse_yaml` keeps the composed node tree next to the data;
:func:`validate_with_lines` validates the data as a pydantic model and turns
each error location (``("rules", 3, "stage")``) into the line of the node it
names, so a :class:`~cdp.errors.ConfigError` reads
``journey.yaml:14: rules[3].stage: unknown stage 'purchse' (...)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from cdp.config_files import format_loc
from cdp.errors import ConfigError
from cdp.journey.predicates import PROBLEMS_ERROR

ModelT = TypeVar("ModelT", bound=BaseModel)

_INDEX_PREFIX = re.compile(r"^\[(\d+)\]: (.*)$", re.DOTALL)


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data of a YAML document and its node tree (``None`` for an empty document).

    Syntax errors and repeated mapping keys raise :class:`ConfigError` with the line.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_unique_keys(root, source)
        data = yaml.safe_load(text) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{source}{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return data, root


def _check_unique_keys(node: yaml.Node, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; a journey file must not have any."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise ConfigError(
                            f"{source}:{key.start_mark.line + 1}: key {key.value!r} appears twice"
                        )
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def locate(root: yaml.Node | None, loc: Sequence[int | str]) -> tuple[int | None, str]:
    """The line (1-based) of the node an error location names, and its field path.

    The walk follows mapping keys and sequence indexes as far as the file has
    them; a missing key (a required field) is named in the path and the line is
    that of the mapping it is missing from. Location parts that pydantic adds
    below a plain value (union member names) are left out of the path.
    """
    node = root
    path: list[int | str] = []
    for part in loc:
        if part == "[key]":  # pydantic's marker of a bad mapping key: the key is the place
            break
        if isinstance(node, yaml.MappingNode):
            child = next(
                (value for key, value in node.value if getattr(key, "value", None) == str(part)),
                None,
            )
            path.append(part)
            if child is None:
                break
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            path.append(part)
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
        else:
            break
    line = node.start_mark.line + 1 if node is not None else None
    return line, format_loc(path)


def describe(exc: ValidationError, root: yaml.Node | None, source: str) -> list[str]:
    """One ``source:line: path: problem`` text per error (input values are never shown)."""
    found: list[tuple[int, str, str]] = []
    for error in exc.errors(include_url=False):
        base = tuple(error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == PROBLEMS_ERROR and "problems" in ctx:
            items = [((*base, *sub), message) for sub, message in ctx["problems"]]
        else:
            message = error["msg"].removeprefix("Value error, ")
            sub = _INDEX_PREFIX.match(message)
            if sub:  # a validator named the list item: "[2]: not a valid regular expression"
                base, message = (*base, int(sub.group(1))), sub.group(2)
            items = [(base, message)]
        for loc, message in items:
            line, path = locate(root, loc)
            found.append((line or 0, path, message))
    texts = []
    for line, path, message in sorted(found, key=lambda item: item[0]):
        where = f"{source}:{line}" if line else source
        texts.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")
    return texts


def validate_with_lines(
    model: type[ModelT], data: Any, root: yaml.Node | None, source: str
) -> ModelT:
    """Validate ``data`` as ``model``; :class:`ConfigError` lists every problem with its line."""
    if not isinstance(data, dict):
        line = f":{root.start_mark.line + 1}" if root is not None else ""
        raise ConfigError(f"{source}{line}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = describe(exc, root, source)
        raise ConfigError("; ".join(problems)) from None
