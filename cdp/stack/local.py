"""The local stack as a whole: a Kafka broker and a Redis server, started and stopped together."""

from __future__ import annotations

import shutil
import time
from contextlib import AbstractContextManager
from pathlib import Path

from cdp.errors import StackError
from cdp.settings import Settings
from cdp.stack import process
from cdp.stack.jars import KafkaJars
from cdp.stack.kafka import KafkaService
from cdp.stack.redis import RedisService
from cdp.stack.runner import CommandRunner, LoggedRunner, Progress, quiet
from cdp.stack.service import Service, ServiceName, ServiceStatus

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""Hosts the settings may name for the local stack (it always listens on 127.0.0.1)."""


class LocalStack:
    """Kafka + Redis for development and tests, without Docker.

    State (data, config, pid files, logs) lives under ``settings.state_dir``; the
    Kafka jars are fetched once into ``settings.cache_dir``. Example::

        stack = LocalStack(get_settings())
        stack.up(progress=print)
        stack.status()   # -> [ServiceStatus(name="kafka", state="running", ...), ...]
        stack.down()
    """

    def __init__(self, settings: Settings, *, runner: CommandRunner | None = None) -> None:
        """``runner`` replaces every external one-off command (Maven, apt-get) in tests."""
        self.settings = settings
        self.state_dir = settings.state_dir.expanduser().resolve()
        self.jars = KafkaJars(settings.cache_dir, settings.kafka_version)
        self.kafka = KafkaService(
            self.state_dir / "kafka",
            broker_port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            heap=settings.kafka_heap,
            jars=self.jars,
        )
        self.redis = RedisService(self.state_dir / "redis", port=settings.redis_port)
        self._runner = runner
        self._lock_file = self.state_dir / "stack.lock"

    @property
    def services(self) -> tuple[Service, ...]:
        """Every service, in start order."""
        return (self.redis, self.kafka)

    def service(self, name: ServiceName | str) -> Service:
        """The service called ``name`` ("kafka" or "redis")."""
        wanted = ServiceName(name)
        return next(svc for svc in self.services if svc.name == wanted)

    def status(self) -> list[ServiceStatus]:
        """The state of every service (reads only; never starts or stops anything)."""
        return [svc.status() for svc in self.services]

    def up(self, progress: Progress = quiet, timeout: float = 90.0) -> list[ServiceStatus]:
        """Start every service that is not running and wait until all answer.

        Idempotent: running services are left alone. Fetches the Kafka jars,
        installs redis-server and formats the Kafka data dir when needed.
        Raises :class:`StackError` on a port conflict, a failed install, a server
        that exits during start, or when ``timeout`` seconds pass.
        """
        self._check_settings()
        runner = self._runner or LoggedRunner(progress)
        with self._locked(progress):
            to_start = [svc for svc in self.services if svc.running_pid() is None]
            for svc in self.services:
                if svc not in to_start:
                    svc.check_config()
            for svc in to_start:
                svc.check_ports()
            for svc in to_start:
                svc.prepare(progress, runner)
            started: dict[Service, int] = {}
            for svc in self.services:
                if svc in to_start:
                    started[svc] = svc.spawn()
                    progress(f"Started {svc.name.value} (pid {started[svc]}) on {svc.address}")
                else:
                    progress(f"{svc.name.value} is already running (pid {svc.running_pid()})")
            self._wait_ready(progress, started, timeout)
        statuses = self.status()
        for st in statuses:
            progress(f"{st.name}: {st.state} on {st.address}; log: {st.log_path}")
        return statuses

    def down(self, progress: Progress = quiet, purge: bool = False) -> None:
        """Stop the services this stack started; keep their data unless ``purge``.

        With ``purge`` the Kafka and Redis directories under the state dir (data,
        config, logs) are deleted, so the next :meth:`up` formats a fresh broker.
        """
        with self._locked(progress):
            for svc in reversed(self.services):
                svc.stop(progress)
            if purge:
                for svc in self.services:
                    shutil.rmtree(svc.dir, ignore_errors=True)
                progress(f"Deleted the stack's data, config and logs under {self.state_dir}")

    def log_file(self, name: ServiceName | str) -> Path:
        """The log file of service ``name``."""
        return self.service(name).log_file

    def logs(self, name: ServiceName | str, lines: int = 50) -> str:
        """The last ``lines`` lines of the log of service ``name``."""
        return process.tail(self.log_file(name), lines)

    def _check_settings(self) -> None:
        s = self.settings
        if s.kafka_host not in LOCAL_HOSTS:
            raise StackError(
                f"CDP_KAFKA_BOOTSTRAP names {s.kafka_host!r}; the local stack runs on 127.0.0.1 "
                f"only (use 127.0.0.1:<port>)"
            )
        if s.redis_url.startswith("unix:") or s.redis_host not in LOCAL_HOSTS:
            raise StackError(
                f"CDP_REDIS_URL names {s.redis_url!r}; the local stack runs Redis on 127.0.0.1 "
                f"only (use redis://127.0.0.1:<port>/0)"
            )
        ports = {
            "CDP_KAFKA_BOOTSTRAP": s.kafka_port,
            "CDP_KAFKA_CONTROLLER_PORT": s.kafka_controller_port,
            "CDP_REDIS_URL": s.redis_port,
        }
        if len(set(ports.values())) != len(ports):
            shown = ", ".join(f"{name}={port}" for name, port in ports.items())
            raise StackError(f"the local stack needs three different ports, got {shown}")

    def _locked(self, progress: Progress) -> AbstractContextManager[None]:
        return process.file_lock(
            self._lock_file,
            on_wait=lambda: progress("Waiting for another `cdp stack` command to finish ..."),
        )

    def _wait_ready(self, progress: Progress, started: dict[Service, int], timeout: float) -> None:
        began = time.monotonic()
        next_report = began + 5.0
        pending = list(self.services)
        while pending:
            for svc in list(pending):
                pid = started.get(svc) or svc.running_pid()
                if pid is None or not process.is_alive(pid):
                    svc.pid_file.unlink(missing_ok=True)
                    raise StackError(
                        f"{svc.name.value} exited during start; {svc.failure_report()}"
                    )
                if svc.is_ready():
                    pending.remove(svc)
                    if svc in started:
                        elapsed = time.monotonic() - began
                        progress(f"{svc.name.value} answers on {svc.address} ({elapsed:.0f} s)")
            if not pending:
                return
            now = time.monotonic()
            if now - began > timeout:
                names = ", ".join(svc.name.value for svc in pending)
                logs = "\n".join(svc.failure_report() for svc in pending)
                raise StackError(
                    f"{names} did not answer within {timeout:.0f} s (still running; run "
                    f"`cdp stack up` again to keep waiting or `cdp stack down`)\n{logs}"
                )
            if now >= next_report:
                names = ", ".join(svc.name.value for svc in pending)
                progress(f"  waiting for {names} ... {now - began:.0f} s")
                next_report = now + 5.0
            time.sleep(0.5)
