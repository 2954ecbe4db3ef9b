"""Settings: CDP_* environment variables, clear errors naming the setting."""

from __future__ import annotations

import pytest

from cdp.errors import ConfigError
from cdp.settings import load_settings


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.kafka_port == 19092
    assert settings.redis_port == 16379
    assert settings.partitions >= 1


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_KAFKA_BOOTSTRAP", "10.0.0.1:9999,10.0.0.2:9999")
    monkeypatch.setenv("CDP_NAMESPACE", "acme")
    settings = load_settings()
    assert settings.kafka_host == "10.0.0.1"
    assert settings.kafka_port == 9999
    assert settings.namespace == "acme"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CDP_KAFKA_BOOTSTRAP", "no-port"),
        ("CDP_REDIS_URL", "http://x"),
        ("CDP_PARTITIONS", "0"),
        ("CDP_NAMESPACE", "Bad Name"),
        ("CDP_LOG_LEVEL", "loud"),
        ("CDP_MAX_MESSAGE_BYTES", "1000000"),
        ("CDP_WORKER_GC_SWEEP_MAX_PAUSE_S", "10"),  # not below the session timeout
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.namespace = "other"  # type: ignore[misc]
