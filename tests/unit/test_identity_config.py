"""Identity configuration: packaged defaults, YAML loading, errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp.errors import ConfigError
from cdp.identity import IdentityConfig, default_identity_config, load_identity_config


def test_packaged_default() -> None:
    config = load_identity_config()
    order = ["customer_id", "crm_contact_id", "email", "phone", "device_id", "anonymous_id"]
    priorities = [config.priority(name) for name in order]
    assert priorities == sorted(priorities)
    assert priorities[0] == 10
    assert config.priority("loyalty_card") == 100
    assert config.max_per_profile("customer_id") == 1
    assert config.max_per_profile("crm_contact_id") == 1
    assert config.max_per_profile("email") == 3
    assert config.max_per_profile("anonymous_id") == 50
    assert config.max_per_profile("loyalty_card") == 10
    assert config.default_region == "DE"
    assert config.is_blocked("email:test@test.com")
    assert config.is_blocked("phone:+49301234567")  # written "+49 30 1234567" in the file
    assert "+49301234567" in config.types["phone"].blocked
    assert config.rule_for("email") == "email"
    assert config.rule_for("loyalty_card") == "text"
    assert default_identity_config() == config


def test_config_is_frozen() -> None:
    config = default_identity_config()
    with pytest.raises(Exception, match="frozen"):
        config.default_region = "US"  # type: ignore[misc]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "identity.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
default_region: us
unknown_types: {priority: 90, max_per_profile: null}
types:
  customer_id: {priority: 1, max_per_profile: 2, blocked: [" X-1 ", 12345]}
  phone: {priority: 5, blocked: ["(650) 253-0000"]}
  member_no: {priority: 7, rule: strip}
""",
    )
    config = load_identity_config(path)
    assert config.default_region == "US"
    assert config.types["customer_id"].blocked == ("12345", "X-1")
    assert config.is_blocked("phone:+16502530000")
    assert config.max_per_profile("phone") is None
    assert config.max_per_profile("email") is None  # not listed: unknown_types
    assert config.priority("email") == 90
    assert config.rule_for("email") == "email"  # built-in rule even when not listed
    assert config.rule_for("member_no") == "strip"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (
            "types:\n  email: {priority: 1, max_per_profile: 0}\n",
            "types.email.max_per_profile",
            "greater than or equal to 1",
        ),
        ("types:\n  email: {max_per_profile: 2}\n", "types.email.priority", "required"),
        ("types:\n  email: {priority: one}\n", "types.email.priority", "integer"),
        (
            "types:\n  email: {priority: 1, max_per_profle: 2}\n",
            "types.email.max_per_profle",
            "Extra",
        ),
        ("default_region: XX\n", "default_region", "unknown phone region"),
        ("types:\n  Bad-Name: {priority: 1}\n", "types", "Bad-Name"),
        ("types:\n  email: {priority: 1, rule: lower}\n", "types", "email.rule"),
        ("types:\n  x: {priority: 1, rule: upper}\n", "types.x.rule", "Input should be"),
        (
            "types:\n  email: {priority: 1, blocked: [ok@x.de, nonsense]}\n",
            "types.email.blocked[1]",
            "not a valid value",
        ),
        ("types:\n  phone: {priority: 1, blocked: ['12']}\n", "types.phone.blocked[0]", "phone"),
        ("types:\n  email: {priority: 1, blocked: [[1]]}\n", "types.email.blocked[0]", "string"),
        ("unknown_types: {priority: -1}\n", "unknown_types.priority", "greater than or equal to 0"),
        ("typo: 1\n", "typo", "Extra"),
    ],
)
def test_bad_file_names_file_field_and_problem(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_identity_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"{field}: " in message
    assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("types: [\n", "not valid YAML"),
        ("", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_unreadable_file(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_identity_config(path)
    assert str(path) in str(info.value)


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_identity_config(path)
    assert str(path) in str(info.value)


def test_model_can_be_built_in_code() -> None:
    config = IdentityConfig.model_validate(
        {"types": {"email": {"priority": 3, "blocked": [" X@Y.de "]}}}
    )
    assert config.types["email"].blocked == ("x@y.de",)
    assert config.is_blocked("email:x@y.de")
