"""Departments and API keys: the access file, hashing, authentication, start-up checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from cdp.api.access import hash_key, load_access_config, new_key
from cdp.cli.api import check_serving, is_loopback
from cdp.errors import ConfigError
from cdp.settings import load_settings
from tests.api_support import ADMIN, MARKETING, SALES, SERVICE


def test_dev_file_authenticates_the_demo_keys() -> None:
    access = load_access_config()
    assert access.is_dev
    for key, department in [
        (ADMIN, "admin"),
        (MARKETING, "marketing"),
        (SALES, "sales"),
        (SERVICE, "service"),
    ]:
        principal = access.authenticate(key)
        assert principal is not None and principal.department == department
        assert principal.admin is (department == "admin")
    assert access.authenticate(None) is None
    assert access.authenticate("") is None
    assert access.authenticate(ADMIN + "x") is None
    assert access.authenticate("\udcff-not-utf8") is None


def test_keys_are_stored_as_sha256_hex() -> None:
    assert hash_key("secret-key-123456") == hashlib.sha256(b"secret-key-123456").hexdigest()
    keys = {new_key() for _ in range(20)}
    assert len(keys) == 20 and all(len(k) > 40 for k in keys)
    text = (Path(__file__).parents[2] / "cdp" / "api" / "dev_access.yaml").read_text()
    data = yaml.safe_dump(yaml.safe_load(text))  # the data, without the comments
    assert hash_key(ADMIN) in data and ADMIN not in data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "access.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


GOOD = {
    "departments": {"ops": {"admin": True, "fields": ["*"]}, "desk": {"fields": ["traits"]}},
    "keys": [{"id": "ops-1", "department": "ops", "sha256": hash_key("ops-key-0123456789")}],
}


def test_own_file(tmp_path: Path) -> None:
    access = load_access_config(write(tmp_path, GOOD))
    assert not access.is_dev
    principal = access.authenticate("ops-key-0123456789")
    assert principal is not None and principal.key_id == "ops-1" and principal.admin
    assert access.authenticate(ADMIN) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"keys": [{"id": "k", "department": "nobody", "sha256": "0" * 64}]}, "unknown department"),
        ({"keys": [{"id": "k", "department": "ops", "sha256": "abc"}]}, "keys[0].sha256"),
        (
            {
                "keys": [
                    {"id": "k", "department": "ops", "sha256": "0" * 64},
                    {"id": "k", "department": "desk", "sha256": "1" * 64},
                ]
            },
            "used twice",
        ),
        ({"departments": {"desk": {"fields": ["traits first"]}}}, "departments.desk.fields[0]"),
        ({"departments": {"Desk!": {"fields": ["traits"]}}}, "department names"),
        ({"departments": {}}, "departments"),
        ({"departments": {"desk": {"fields": []}}}, "departments.desk.fields"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_files_name_file_and_field(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError) as error:
        load_access_config(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_settings_validate_api_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.api_host, settings.api_port, settings.access_config) == (
        "127.0.0.1",
        18080,
        None,
    )
    for variable, value in [
        ("CDP_API_PORT", "0"),
        ("CDP_API_PORT", "http"),
        ("CDP_ACCESS_CONFIG", str(tmp_path / "missing.yaml")),
    ]:
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError, match=variable):
            load_settings()
        monkeypatch.delenv(variable)
    monkeypatch.setenv("CDP_ACCESS_CONFIG", str(write(tmp_path, GOOD)))
    assert load_settings().access_config == tmp_path / "access.yaml"


def test_dev_keys_only_on_loopback(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_serving(load_settings(api_host="127.0.0.1"))
    with pytest.raises(ConfigError, match="CDP_ACCESS_CONFIG"):
        check_serving(load_settings(api_host="0.0.0.0"))
    check_serving(load_settings(api_host="0.0.0.0", access_config=write(tmp_path, GOOD)))
