"""Process plumbing of the local stack: pid files, liveness, detached spawn, stop, ports, locks.

Linux only: liveness and ownership are read from ``/proc``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cdp.errors import StackError

LOCAL_HOST = "127.0.0.1"
"""The address every service of the local stack listens on."""

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this Python process spawned; polled so that they never linger as zombies."""


def read_pid(pid_file: Path) -> int | None:
    """The pid stored in ``pid_file``, or ``None`` when the file is missing or garbled."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(pid_file: Path, pid: int) -> None:
    """Store ``pid`` in ``pid_file`` atomically (write a temporary file, then rename)."""
    tmp = pid_file.with_name(pid_file.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(pid_file)


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The command line of process ``pid`` (empty when it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_our_process(pid: int, executable: str, marker: str) -> bool:
    """Whether ``pid`` runs ``executable`` with an argument containing ``marker``.

    The marker is a directory of the stack's state dir, so a process started for
    another state dir, or an unrelated process that reused the pid, never matches.
    """
    args = cmdline(pid)
    return (
        bool(args)
        and Path(args[0]).name == executable
        and any(marker in arg for arg in args[1:])
        and is_alive(pid)
    )


def find_processes(executable: str, marker: str) -> list[int]:
    """Pids of all live processes for which :func:`is_our_process` holds."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_our_process(int(entry.name), executable, marker):
            pids.append(int(entry.name))
    return sorted(pids)


def spawn_detached(cmd: Sequence[str], *, cwd: Path, output: Path) -> int:
    """Start ``cmd`` in its own session (it outlives the caller); stdout+stderr go to ``output``."""
    with output.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; ``True`` if it did."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def terminate(pid: int, timeout: float) -> bool:
    """Stop ``pid``: SIGTERM, wait ``timeout`` s, then SIGKILL its process group.

    Returns ``True`` when SIGKILL was needed. Raises :class:`StackError` when the
    process survives SIGKILL.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if wait_exit(pid, timeout):
        return False
    try:
        if os.getpgid(pid) == pid:  # session leader from spawn_detached: kill its children too
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    if not wait_exit(pid, 10.0):
        raise StackError(f"process {pid} did not exit after SIGKILL")
    return True


def port_in_use(port: int, host: str = LOCAL_HOST) -> bool:
    """Whether some socket is bound to ``host:port`` (a listener of any process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def port_answers(port: int, host: str = LOCAL_HOST, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the text file ``path`` ("" when it does not exist)."""
    if lines <= 0:
        return ""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            block = 64 * 1024
            data = b""
            while True:
                start = max(0, size - block)
                handle.seek(start)
                data = handle.read(size - start)
                if start == 0 or data.count(b"\n") > lines:
                    break
                block *= 4
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; call ``on_wait`` once if it must wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
