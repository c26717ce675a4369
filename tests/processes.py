"""`python -m study` started in a child process, as a user or a cluster node starts it: for the tests
of signals, several workers and nodes. PYTHONPATH makes the child run this checkout's code whatever is
pip-installed; one CPU thread each keeps several children from fighting over the cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def study_cli(*args: Any, cwd: Path | str, timeout: float = 900, env: dict[str, str] | None = None,
              **kwargs: Any) -> subprocess.CompletedProcess:
    """Run `python -m study ARGS` to its end; its output is captured as text."""
    return subprocess.run([sys.executable, "-m", "study", *map(str, args)], cwd=cwd, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def start(*args: Any, cwd: Path | str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `python -m study ARGS` and return at once; its output is piped as text."""
    return subprocess.Popen([sys.executable, "-m", "study", *map(str, args)], cwd=cwd, env=env or ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
