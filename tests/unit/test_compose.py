"""docker-compose.yml describes the same stack and only uses real settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from cdp.settings import PROJECT_ROOT, Settings


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_services_of_the_stack() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "topics"} <= set(services)
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics come from cdp
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")


def test_every_cdp_variable_is_a_setting() -> None:
    fields = {f"CDP_{name.upper()}" for name in Settings.model_fields}
    for name, service in _compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("CDP_"):
                assert variable in fields, f"{name}: {variable} is not a setting"


def test_dockerfile_exists() -> None:
    build = _compose()["services"]["worker"]["build"]
    assert (PROJECT_ROOT / Path(build["dockerfile"])).is_file()
