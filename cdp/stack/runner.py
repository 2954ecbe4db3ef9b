"""One-off commands (Maven, apt-get, Kafka's StorageTool) with their output in a log file."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

Progress = Callable[[str], None]
"""Where the stack reports what it is doing (``print`` in the CLI)."""


def quiet(_message: str) -> None:
    """A :data:`Progress` that reports nothing."""


class CommandRunner(Protocol):
    """Runs a command to completion, appending its output to ``log_file``; returns the exit code.

    The stack takes a runner so that tests can replace every external command.
    """

    def __call__(
        self,
        cmd: Sequence[str],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int: ...


@dataclass
class LoggedRunner:
    """The real :class:`CommandRunner`: prints a heartbeat while a slow command runs."""

    progress: Progress
    heartbeat: float = 10.0

    def __call__(
        self,
        cmd: Sequence[str],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Run ``cmd``; stdout and stderr go to ``log_file`` (appended, after a ``$ cmd`` line)."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
            started = time.monotonic()
            try:
                while True:
                    try:
                        return proc.wait(timeout=self.heartbeat)
                    except subprocess.TimeoutExpired:
                        elapsed = time.monotonic() - started
                        self.progress(
                            f"  ... {os.path.basename(cmd[0])} still running ({elapsed:.0f} s)"
                        )
            except BaseException:
                proc.terminate()
                proc.wait()
                raise
