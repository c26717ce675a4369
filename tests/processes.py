"""`python -m study` as the tests run it: in a child process, as a user or a cluster node starts it (for
the tests of signals, several workers and nodes), or in this one. PYTHONPATH makes a child run this
checkout's code whatever is pip-installed; one CPU thread each keeps several children from fighting
over the cores."""

from __future__ import annotations

import os
import signal
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


def in_process(argv: list[Any], capsys: Any = None) -> tuple[int, str]:
    """`python -m study ARGV` in this process: its exit code and, with pytest's `capsys`, its stderr."""
    from study import cli

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = cli.main([str(a) for a in argv])
    finally:  # `run` installs its stop handlers; the test process keeps its own
        for s, h in handlers.items():
            signal.signal(s, h)
    return code, capsys.readouterr().err if capsys else ""


# A search over one setting on a half-width NaiveNet: the smallest study that trains for real.
ONE_KNOB_SPACE = '''
model = "naivenet"
dataset = "cifar10"
resolution = 32
width = 0.5
pruner = "none"
def suggest(trial):
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
'''
