"""``cdp api``: help, the key helper, start-up checks."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from cdp.cli.main import app
from cdp.errors import ConfigError

runner = CliRunner()


@pytest.mark.parametrize("command", [["api"], ["api", "hash-key"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_hash_key_of_a_given_key() -> None:
    result = runner.invoke(app, ["api", "hash-key", "my-long-random-key-123"])
    assert result.exit_code == 0
    assert (
        result.output.strip() == "sha256: " + hashlib.sha256(b"my-long-random-key-123").hexdigest()
    )


def test_hash_key_generates_a_key() -> None:
    result = runner.invoke(app, ["api", "hash-key"])
    key_line, digest_line = result.output.strip().splitlines()
    key = key_line.removeprefix("key:").strip()
    assert key.startswith("cdp_") and len(key) > 40
    assert digest_line.split()[-1] == hashlib.sha256(key.encode()).hexdigest()


def test_hash_key_from_stdin_and_too_short() -> None:
    result = runner.invoke(app, ["api", "hash-key", "--stdin"], input="stdin-key-0123456789\n")
    assert result.output.split()[-1] == hashlib.sha256(b"stdin-key-0123456789").hexdigest()
    short = runner.invoke(app, ["api", "hash-key", "short"])
    assert isinstance(short.exception, ConfigError)


def test_serving_dev_keys_on_a_public_interface_is_refused() -> None:
    result = runner.invoke(app, ["api", "--host", "0.0.0.0"])
    assert isinstance(result.exception, ConfigError)
    assert "CDP_ACCESS_CONFIG" in str(result.exception)
