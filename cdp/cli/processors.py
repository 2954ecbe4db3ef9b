"""``cdp processors``: list the registered processors, start a new one from a template."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from cdp.contracts.events import NAME_PATTERN
from cdp.errors import CdpError
from cdp.settings import get_settings

app = typer.Typer(
    help="Stream processors added in processors/ or by packages.", no_args_is_help=True
)

PROCESSOR_TEMPLATE = '''"""{name}: <what this trait tells about a person>."""

from __future__ import annotations

from cdp.processors import Input, processor
from cdp.profile import ProfileDocument


@processor(input=Input.PROFILES)
def {name}(profile: ProfileDocument) -> str | None:
    """<One line on the trait {name}> (shown by `cdp processors list`)."""
    if profile.computed.order_count == 0:
        return None  # no value: the profile gets no {name} trait
    return "customer"
'''

TEST_TEMPLATE = '''"""Tests of processors/{name}.py (in memory, or with --cdp-real-stack)."""

from __future__ import annotations

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.testing.plugin import PipelineRunner
from processors.{name} import {name}


def test_{name}(cdp_pipeline: PipelineRunner) -> None:
    order = ev.Order(
        source="shop",
        identifiers=[Identifier.email("anna@example.com")],
        payload=ev.OrderPayload(order_id="O-1", value="249.00", currency="EUR", items=2),
    )
    result = cdp_pipeline([order], [{name}])
    assert result.trait("email:anna@example.com", "{name}") == "customer"
    assert result.dead_letters == []
'''


@app.command("list")
def list_processors() -> None:
    """Show every processor the worker would run: name, input, output, origin."""
    from cdp.processors import discover

    found = discover(get_settings())
    if not found:
        typer.echo(
            "no processors (CDP_PROCESSORS_PATH and the cdp.processors entry points are empty)"
        )
        return
    typer.echo(f"{'name':<24} {'input':<18} {'output':<38} origin")
    for processor in found:
        output = f"profile.computed ({processor.trait})"
        typer.echo(
            f"{processor.name:<24} {processor.input.topic:<18} {output:<38} {processor.origin}"
        )
        if processor.description:
            typer.echo(f"{'':<24} {processor.description}")


@app.command("new")
def new(
    name: str = typer.Argument(..., help="lower_snake_case name of the processor and its trait."),
    root: Path = typer.Option(
        Path("."), "--root", help="Project root holding processors/ and tests/."
    ),
) -> None:
    """Write processors/NAME.py and tests/processors/test_NAME.py from a template.

    Never overwrites; the generated test passes as generated.
    """
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > 64:
        raise CdpError(f"processor name {name!r} is not lower_snake_case (at most 64 characters)")
    module = root / "processors" / f"{name}.py"
    test = root / "tests" / "processors" / f"test_{name}.py"
    existing = [str(path) for path in (module, test) if path.exists()]
    if existing:
        raise CdpError(f"not overwriting {', '.join(existing)}")
    for path, text in ((module, PROCESSOR_TEMPLATE), (test, TEST_TEMPLATE)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=name))
        typer.echo(f"wrote {path}")
    package = test.parent / "__init__.py"
    if (root / "tests" / "__init__.py").exists() and not package.exists():
        package.write_text('"""Tests of the processors in processors/."""\n')
    typer.echo(f"next: edit {module}, then run: pytest {test}")
