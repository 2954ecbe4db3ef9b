"""The ``cdp`` command: help everywhere, exit codes, generator output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp.cli.main import app

runner = CliRunner()

COMMANDS = [
    [],
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["stack", "logs"],
    ["topics"],
    ["topics", "create"],
    ["topics", "list"],
    ["schemas"],
    ["schemas", "check"],
    ["schemas", "list"],
    ["worker"],
    ["rebuild"],
    ["demo"],
    ["sample"],
    ["sample", "send"],
    ["sample", "generate"],
    ["processors"],
    ["processors", "list"],
    ["processors", "new"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "cdp")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_topics_list_names_every_declared_topic() -> None:
    result = runner.invoke(app, ["topics", "list"])
    assert result.exit_code == 0
    assert "cdp.events.canonical" in result.output
    assert "cdp.profile.changes" in result.output


def test_generate_writes_events_with_their_true_customer(tmp_path: Path) -> None:
    out = tmp_path / "data.jsonl"
    result = runner.invoke(app, ["sample", "generate", "--customers", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(line["customer"].startswith("cust-") for line in lines)
    assert {line["event"]["channel"] for line in lines} <= {"web", "ecommerce", "callcenter", "crm"}


def test_bad_setting_fails_with_its_name_and_exit_code_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cdp", "topics", "list"],
        env={"CDP_PARTITIONS": "zero", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "CDP_PARTITIONS" in result.stderr
    assert "Traceback" not in result.stderr
