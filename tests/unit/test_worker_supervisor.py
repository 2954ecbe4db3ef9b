"""``cdp worker`` supervises the worker process: it restarts it on request, and only then."""

from __future__ import annotations

import sys
from pathlib import Path

from cdp.cli.worker import supervise
from cdp.in_order import RESTART_EXIT_CODE

SCRIPT = """
import sys
from pathlib import Path
runs = Path(sys.argv[1])
n = int(runs.read_text() or 0) + 1 if runs.exists() else 1
runs.write_text(str(n))
codes = [int(c) for c in sys.argv[2].split(",")]
sys.exit(codes[min(n, len(codes)) - 1])
"""


def _supervise(tmp_path: Path, codes: str) -> tuple[int, int]:
    runs = tmp_path / "runs"
    code = supervise([sys.executable, "-c", SCRIPT, str(runs), codes])
    return code, int(runs.read_text())


def test_a_restart_request_starts_the_worker_again(tmp_path: Path) -> None:
    r = RESTART_EXIT_CODE
    assert _supervise(tmp_path, f"{r},{r},0") == (0, 3)


def test_any_other_exit_ends_the_supervision_with_its_code(tmp_path: Path) -> None:
    assert _supervise(tmp_path, "1") == (1, 1)
    (tmp_path / "runs").unlink()
    assert _supervise(tmp_path, "70") == (70, 1)
