"""What every service of the local stack has in common: pid file, start, stop, status."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from cdp.errors import StackError
from cdp.stack import process
from cdp.stack.runner import CommandRunner, Progress

ServiceState = Literal["running", "starting", "stopped", "mismatched"]
"""``mismatched``: our process runs, but was started with other settings than the current ones."""


class ServiceName(StrEnum):
    """The services of the local stack."""

    KAFKA = "kafka"
    REDIS = "redis"


@dataclass(frozen=True)
class Port:
    """A port a service listens on, and the setting that chooses it."""

    number: int
    setting: str
    role: str


@dataclass(frozen=True)
class ServiceStatus:
    """The state of one service, as reported by ``cdp stack status``."""

    name: str
    state: ServiceState
    pid: int | None
    address: str
    log_path: Path
    detail: str = ""

    @property
    def running(self) -> bool:
        """Whether the process is ours, alive, and answers on all its ports."""
        return self.state == "running"


class Service(ABC):
    """One locally managed server process, with its files under ``directory``.

    A process counts as ours only if its pid file names it, it is alive, its
    executable is :attr:`executable` and its command line mentions ``directory``.
    """

    name: ServiceName
    executable: str
    """Base name of the process's ``argv[0]``."""
    stop_timeout: float = 30.0
    """Seconds between SIGTERM and SIGKILL."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pid_file = directory / f"{self.name.value}.pid"
        self.out_file = directory / f"{self.name.value}.out"

    @property
    @abstractmethod
    def log_file(self) -> Path:
        """The server's own log."""

    @property
    @abstractmethod
    def ports(self) -> tuple[Port, ...]:
        """Every port the server listens on."""

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients reach the server (for humans)."""

    @property
    @abstractmethod
    def config_file(self) -> Path:
        """The server's configuration file, written by :meth:`prepare` from the settings."""

    @abstractmethod
    def render_config(self) -> str:
        """The content :attr:`config_file` must have for the current settings."""

    @abstractmethod
    def prepare(self, progress: Progress, runner: CommandRunner) -> None:
        """Install/fetch what is missing and write the configuration (server not running)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that starts the server in the foreground."""

    @abstractmethod
    def is_ready(self) -> bool:
        """Whether the server answers requests."""

    @property
    def marker(self) -> str:
        """The string our server's command line contains (its directory)."""
        return f"{self.dir}{os.sep}"

    def config_is_current(self) -> bool:
        """Whether :attr:`config_file` (what the server was started with) matches the settings."""
        try:
            return self.config_file.read_text(encoding="utf-8") == self.render_config()
        except OSError:
            return False

    def write_config(self) -> None:
        """Write :attr:`config_file` for the current settings."""
        self.config_file.write_text(self.render_config(), encoding="utf-8")

    def running_pid(self) -> int | None:
        """The pid of our live server process, or ``None``.

        Falls back to scanning ``/proc`` when the pid file is missing or stale.
        """
        pid = process.read_pid(self.pid_file)
        if pid is not None and process.is_our_process(pid, self.executable, self.marker):
            return pid
        found = process.find_processes(self.executable, self.marker)
        return found[0] if found else None

    def status(self) -> ServiceStatus:
        """Running (ours, alive, ports answer), starting (ours, alive), stopped, or mismatched.

        ``mismatched``: ours and alive, but its config file differs from the current settings.
        """
        pid = self.running_pid()
        if pid is None:
            taken = [port for port in self.ports if process.port_in_use(port.number)]
            detail = "; ".join(
                f"port {port.number} ({port.setting}) is used by another process" for port in taken
            )
            return ServiceStatus(
                self.name.value, "stopped", None, self.address, self.log_file, detail
            )
        if not self.config_is_current():
            return ServiceStatus(
                self.name.value,
                "mismatched",
                pid,
                self.address,
                self.log_file,
                f"running with other settings than the current ones (see {self.config_file}); "
                "`cdp stack down` then `cdp stack up` applies them",
            )
        if all(process.port_answers(port.number) for port in self.ports):
            return ServiceStatus(self.name.value, "running", pid, self.address, self.log_file)
        return ServiceStatus(
            self.name.value, "starting", pid, self.address, self.log_file, "ports not answering yet"
        )

    def check_config(self) -> None:
        """Raise :class:`StackError` if our running server was started with other settings."""
        if not self.config_is_current():
            raise StackError(
                f"{self.name.value} is running (pid {self.running_pid()}) with other settings "
                f"than the current ones (see {self.config_file}); run `cdp stack down` first "
                "to apply them"
            )

    def check_ports(self) -> None:
        """Raise :class:`StackError` if a port of this (stopped) service is taken."""
        for port in self.ports:
            if process.port_in_use(port.number):
                raise StackError(
                    f"{self.name.value}: port {port.number} ({port.role}) on {process.LOCAL_HOST} "
                    f"is already in use by a process `cdp stack` did not start; stop that "
                    f"process or choose another port with {port.setting}"
                )

    def spawn(self) -> int:
        """Start the server detached from the caller and record its pid."""
        self.out_file.unlink(missing_ok=True)
        pid = process.spawn_detached(self.command(), cwd=self.dir, output=self.out_file)
        process.write_pid(self.pid_file, pid)
        return pid

    def stop(self, progress: Progress) -> None:
        """Stop our server process (if any) and remove the pid file."""
        pid = self.running_pid()
        if pid is None:
            progress(f"{self.name.value} is not running")
        else:
            progress(f"Stopping {self.name.value} (pid {pid}) ...")
            if process.terminate(pid, self.stop_timeout):
                progress(
                    f"Killed {self.name.value}: no exit {self.stop_timeout:.0f} s after SIGTERM"
                )
            else:
                progress(f"Stopped {self.name.value}")
        self.pid_file.unlink(missing_ok=True)

    def failure_report(self) -> str:
        """The tails of the server's logs, for an error message."""
        parts = []
        for path in dict.fromkeys((self.out_file, self.log_file)):
            text = process.tail(path, 25).strip()
            if text:
                parts.append(f"--- last lines of {path}:\n{text}")
        return "\n".join(parts) if parts else f"(no output in {self.dir})"
