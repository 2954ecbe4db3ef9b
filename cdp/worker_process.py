"""Run ``cdp worker`` as a real subprocess: used by ``cdp demo`` and the integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from cdp.settings import PROJECT_ROOT, Settings


def settings_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """This process's environment with every setting of ``settings`` as ``CDP_*`` variables."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"CDP_{name.upper()}"] = str(value)
    env.update(overrides)
    return env


class WorkerProcess:
    """``python -m cdp worker`` in a subprocess; log goes to ``log_path``.

    ``module_args`` replaces ``cdp worker`` (``python -m`` and these arguments), for
    benchmarks that run other Faust apps the same way.
    """

    def __init__(
        self, env: dict[str, str], log_path: Path, module_args: Sequence[str] = ("cdp", "worker")
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.module_args = tuple(module_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Start the worker process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.module_args],
            cwd=str(PROJECT_ROOT),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash case, no chance to commit or flush."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the worker log (for assertion messages)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
