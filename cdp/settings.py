"""One frozen settings object for the whole platform.

Every setting can be given as an environment variable with the ``CDP_`` prefix
(``CDP_KAFKA_BOOTSTRAP=127.0.0.1:19092``). A bad value fails at start-up with
a message that names the setting (see :func:`load_settings`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cdp.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package lives in (``schemas/`` and ``processors/`` sit here)."""

WORKER_SESSION_TIMEOUT_S = 10.0
"""A worker that sends no heartbeat for this long loses its partitions (a rebalance)."""


class Settings(BaseSettings):
    """Platform configuration, read from ``CDP_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CDP_", frozen=True, extra="ignore")

    namespace: str = Field(
        default="cdp",
        pattern=r"^[a-z][a-z0-9_-]{0,30}$",
        description="Prefix of every topic, consumer group and Redis key of this installation.",
    )
    kafka_bootstrap: str = Field(
        default="127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]."
    )
    kafka_controller_port: int = Field(
        default=19093, ge=1, le=65535, description="KRaft controller port of the local stack."
    )
    kafka_version: str = Field(
        default="3.9.1", pattern=r"^3\.9\.\d+$", description="Apache Kafka release the stack runs."
    )
    kafka_heap: str = Field(default="768m", description="JVM heap of the local broker (-Xmx).")
    redis_url: str = Field(default="redis://127.0.0.1:16379/0", description="Redis URL.")
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent-compatible schema registry; unset: ids from schemas/.",
    )
    schemas_dir: Path = Field(default=PROJECT_ROOT / "schemas")
    state_dir: Path = Field(
        default=PROJECT_ROOT / ".cdp",
        description="Local stack state: broker data, Redis data, pid files, logs (git-ignored).",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "cdp",
        description="Download cache for the Kafka jars (fetched once with Maven).",
    )
    identity_config: Path | None = Field(
        default=None, description="Identity rules YAML (priorities, limits, blocked values)."
    )
    trait_config: Path | None = Field(default=None, description="Trait survivorship rules YAML.")
    journey_config: Path | None = Field(
        default=None,
        description="Journey definition YAML (stages, rules, scoring); default: the B2B journey.",
    )
    processors_path: str = Field(
        default=str(PROJECT_ROOT / "processors"),
        description="Folders of processor modules, separated by ':' (empty: none);"
        " installed packages add processors through the entry-point group cdp.processors.",
    )
    processors: str | None = Field(
        default=None,
        description="Comma-separated names of the processors to run; unset: every one found.",
    )
    partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of data topics.")
    replication_factor: int = Field(default=1, ge=1, le=16)
    max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1_048_588,
        le=64 * 1024 * 1024,
        description="Largest record of any topic (the topics' max.message.bytes, the worker's"
        " producers and fetches): a table value holds an identifier's or a profile's whole"
        " fact set, about 250 bytes per event (docs/profiles.md, long histories).",
    )
    metrics_port: int = Field(
        default=16066, ge=0, le=65535, description="Worker /metrics port (0 = off)."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the worker's metrics endpoint."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    worker_event_loop: Literal["asyncio", "uvloop"] = Field(
        default="uvloop",
        description="Event loop of the worker process: uvloop (6-11 % more events/s in"
        " docs/benchmarks.md), or the standard asyncio loop (docs/operations.md).",
    )
    worker_gc_freeze_s: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between freezes of the worker's surviving heap, so Python's"
        " garbage collector stops re-scanning the in-memory tables (cdp.heap); 0: off.",
    )
    worker_gc_sweep_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between full garbage collections of the frozen heap (cdp.heap).",
    )
    worker_gc_sweep_max_pause_s: float = Field(
        default=5.0,
        gt=0,
        lt=WORKER_SESSION_TIMEOUT_S,
        description="Longest expected pause of a full garbage collection; a sweep expected"
        " to take longer is skipped (cdp.heap). Below the 10 s session timeout, since the"
        " worker sends no heartbeat meanwhile.",
    )
    input_stall_warn_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a worker's input partition may wait with records and deliver"
        " nothing before the worker logs its state (cdp.in_order watchdog).",
    )
    input_stall_restart_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds of the same before the worker restarts to read again from the"
        " committed offsets (not while a table recovery progresses or Redis is away).",
    )
    api_host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface the HTTP API listens on."
    )
    api_port: int = Field(default=18080, ge=1, le=65535, description="Port of the HTTP API.")
    access_config: Path | None = Field(
        default=None,
        description="Departments and hashed API keys (YAML); unset: the dev-only demo file.",
    )
    collector_host: str = Field(
        default="127.0.0.1", min_length=1, description="Interface the HTTP collector listens on."
    )
    collector_port: int = Field(
        default=18090, ge=1, le=65535, description="Port of the HTTP collector."
    )
    write_key_config: Path | None = Field(
        default=None,
        description="Collector write keys, hashed (YAML); unset: the dev-only demo file.",
    )
    collector_ack_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a collector request waits for Kafka's acknowledgements (then 503).",
    )

    @field_validator("input_stall_restart_s")
    @classmethod
    def _check_stall_restart(cls, value: float, info: ValidationInfo) -> float:
        warn = info.data.get("input_stall_warn_s")
        if warn is not None and value <= warn:
            raise ValueError(f"must be greater than CDP_INPUT_STALL_WARN_S ({value} <= {warn})")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("access_config", "write_key_config")
    @classmethod
    def _check_access_config(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {str(value)!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or (
            parsed.scheme != "unix" and not parsed.hostname
        ):
            raise ValueError(f"expected redis://host:port/db, got {value!r}")
        return value

    @property
    def kafka_host(self) -> str:
        """Host of the first bootstrap server."""
        return self.kafka_bootstrap.split(",")[0].strip().rpartition(":")[0]

    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server (the local stack listens there)."""
        return int(self.kafka_bootstrap.split(",")[0].strip().rpartition(":")[2])

    @property
    def redis_host(self) -> str:
        """Host of the Redis server."""
        return urlparse(self.redis_url).hostname or "127.0.0.1"

    @property
    def redis_port(self) -> int:
        """Port of the Redis server (the local stack listens there)."""
        return urlparse(self.redis_url).port or 6379


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` naming bad settings."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "CDP_" + "_".join(str(part) for part in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
