"""``cdp worker``: run the stream processors (under a small supervisor)."""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

import typer

from cdp.settings import get_settings


def worker(
    once: bool = typer.Option(
        False, "--once", hidden=True, help="Run the worker in this process, without supervisor."
    ),
) -> None:
    """Run the stream-processing worker until Ctrl-C/SIGTERM.

    Creates missing topics first. The worker runs in a child process that is
    started again when it exits asking for a restart (it does so when Faust
    skipped records, so that they are read again from the committed offsets);
    any other exit ends the command with the child's exit code. Settings:
    CDP_KAFKA_BOOTSTRAP, CDP_NAMESPACE, CDP_METRICS_PORT (Prometheus /metrics,
    0 = off), CDP_LOG_LEVEL.
    """
    if once:
        from cdp.worker import run_worker

        run_worker(get_settings())
        return
    raise typer.Exit(supervise([sys.executable, "-m", "cdp", "worker", "--once"]))


def supervise(command: list[str]) -> int:
    """Run ``command`` until it exits with anything but a restart request; its exit code.

    SIGTERM and SIGINT are passed on to the child, and end the supervision.
    """
    from cdp.in_order import RESTART_EXIT_CODE

    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        restarts = 0
        while True:
            child = subprocess.Popen(command)
            code = child.wait()
            if code != RESTART_EXIT_CODE or stopping:
                return code if code >= 0 else 128 - code
            restarts += 1
            print(
                f"cdp worker: restart {restarts} (re-reading from the committed offsets)",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
