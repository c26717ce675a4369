"""Never lose a trial, part 3 (issue 25, "study broken or stuck"): interrupts while fused arrays ask for
their trials, half-made set-ups, same-named space files, stop signals in `final` and `ablation-path`,
checkpoints that do not fit, and commands that only read leaving their storage as it was.

The bad-input catalogue is tests/test_bad_input.py; these are the cases where a study could be left
broken or stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
RERUN_SECONDS = 240  # a rerun that waits on a trial nobody owns never ends: this bounds the wait


def study_cli(*args, cwd, timeout=RERUN_SECONDS):
    return subprocess.run([sys.executable, "-m", "study", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "study", *args], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def write_space(folder: Path, body: str, name: str = "stuck") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(f'"""{name}: a small space for interrupt tests."""\n' + textwrap.dedent(body))
    return str(path)


def trials_of(db: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").get_trials()


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


# A search whose suggest, once (a marker file says it happened), stalls or raises at one trial.
FUSED = """
model = "naivenet"
dataset = "cifar10"
resolution = 32
pruner = "none"
from pathlib import Path
_MARK = Path(__file__).with_name("{mark}")
def suggest(trial):
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    if trial.number == {at} and not _MARK.exists():
        _MARK.write_text("once")
        {what}
    return {{"lr": lr}}
"""
FUSED_ARGS = ["--trials", "4", "--fuse", "2", "--epochs", "1", "--set", "data_fraction=0.05"]


def _assert_rerun_finishes(space: str, data_dir: str, tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    r = study_cli("run", space, "--data-dir", data_dir, *FUSED_ARGS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trials = trials_of(tmp_path / "runs" / "stuck.db", "stuck")
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    return trials


def test_sigterm_while_a_fused_member_is_suggested_leaves_no_trial_running(data_dir, tmp_path):
    space = write_space(tmp_path, FUSED.format(mark="stalled", at=1, what="import time; time.sleep(600)"))
    proc = start("run", space, "--data-dir", data_dir, *FUSED_ARGS, cwd=tmp_path)
    wait_for(tmp_path / "stalled", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.startswith("terminated (SIGTERM):") and err.count("\n") == 1, err
    first = trials_of(tmp_path / "runs" / "stuck.db", "stuck")
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in first] == [(TrialState.FAIL, "interrupted")] * 2

    trials = _assert_rerun_finishes(space, data_dir, tmp_path)
    assert sorted(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs) == [0, 1]
    assert next(t for t in trials if t.user_attrs.get("retry_of") == 0).user_attrs["reference"]


def test_a_suggest_that_raises_in_a_fused_array_fails_its_trial_and_strands_none(data_dir, tmp_path):
    space = write_space(tmp_path, FUSED.format(mark="raised", at=3, what="raise ValueError('no lr today')"))
    r = study_cli("run", space, "--data-dir", data_dir, *FUSED_ARGS, cwd=tmp_path)
    assert r.returncode != 0
    first = trials_of(tmp_path / "runs" / "stuck.db", "stuck")
    assert [t.state for t in first] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    assert "no lr today" in first[3].user_attrs["fail_reason"]
    assert first[2].user_attrs["fail_reason"] == "interrupted"  # asked with it, never trained: re-queued

    trials = _assert_rerun_finishes(space, data_dir, tmp_path)
    assert [t.user_attrs.get("retry_of") for t in trials if "retry_of" in t.user_attrs] == [2]
