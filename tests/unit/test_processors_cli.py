"""``cdp processors list`` and ``cdp processors new`` (the generated test passes as generated)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp.cli.main import app
from cdp.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings() -> None:
    get_settings.cache_clear()


def test_list_shows_the_examples() -> None:
    result = runner.invoke(app, ["processors", "list"])
    assert result.exit_code == 0, result.output
    assert "churn_risk" in result.output and "profile.changes" in result.output
    assert "product_affinity" in result.output and "events.canonical" in result.output
    assert "processors/churn_risk.py" in result.output


def test_list_reports_a_broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "plugins_broken"
    folder.mkdir()
    (folder / "bad.py").write_text("raise RuntimeError('nope')\n")
    monkeypatch.setenv("CDP_PROCESSORS_PATH", str(folder))
    result = subprocess.run(
        [sys.executable, "-m", "cdp", "processors", "list"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "bad.py failed to import: RuntimeError" in result.stderr


def test_new_writes_a_processor_and_a_passing_test(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["cdp.testing.plugin"]\n')
    result = runner.invoke(app, ["processors", "new", "loyal_buyer", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "processors" / "loyal_buyer.py").is_file()
    test = tmp_path / "tests" / "processors" / "test_loyal_buyer.py"
    assert (tmp_path / "tests" / "processors" / "__init__.py").is_file()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    again = runner.invoke(app, ["processors", "new", "loyal_buyer", "--root", str(tmp_path)])
    assert again.exit_code == 1 and "not overwriting" in str(again.exception)


def test_new_refuses_a_bad_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["processors", "new", "Loyal-Buyer", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "lower_snake_case" in str(result.exception)
    assert not (tmp_path / "processors").exists()
