"""docs/tutorial-first-processor.md is a test: its Python blocks, in order, run here."""

from __future__ import annotations

import re

from cdp.settings import PROJECT_ROOT

TUTORIAL = PROJECT_ROOT / "docs" / "tutorial-first-processor.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    """The tutorial's ```python blocks, in order."""
    return BLOCK.findall(TUTORIAL.read_text())


def test_the_tutorial_has_code() -> None:
    assert len(python_blocks()) >= 5


def test_the_tutorial_runs() -> None:
    namespace: dict[str, object] = {"__name__": "tutorial"}
    for number, block in enumerate(python_blocks(), start=1):
        code = compile(block, f"{TUTORIAL.name} block {number}", "exec")
        exec(code, namespace)
