"""The worker refuses to start on a bad configuration file, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import ConfigError
from cdp.settings import load_settings
from cdp.worker import check_configs

BAD_JOURNEY = """\
name: broken
stages:
  - name: need
    owner: marketing
rules:
  - id: r1
    stage: nowhere
    events: page_view
"""


def test_default_configs_load() -> None:
    check_configs(load_settings())


def test_bad_journey_file_names_setting_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text(BAD_JOURNEY)
    with pytest.raises(ConfigError) as info:
        check_configs(load_settings(journey_config=path))
    message = str(info.value)
    assert message.startswith("CDP_JOURNEY_CONFIG: ")
    assert f"{path}:7" in message and "nowhere" in message


def test_missing_journey_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CDP_JOURNEY_CONFIG"):
        check_configs(load_settings(journey_config=tmp_path / "missing.yaml"))
