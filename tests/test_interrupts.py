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
import processes
import pytest
import torch
from optuna.trial import TrialState
from processes import start

ROOT = Path(__file__).resolve().parents[1]
RERUN_SECONDS = 240  # a rerun that waits on a trial nobody owns never ends: this bounds the wait


def study_cli(*args, cwd, timeout=RERUN_SECONDS):
    return processes.study_cli(*args, cwd=cwd, timeout=timeout)


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
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no lr today" in r.stderr, r.stderr  # one line
    first = trials_of(tmp_path / "runs" / "stuck.db", "stuck")
    assert [t.state for t in first] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] * 2
    assert "no lr today" in first[3].user_attrs["fail_reason"]
    assert first[2].user_attrs["fail_reason"] == "interrupted"  # asked with it, never trained: re-queued

    trials = _assert_rerun_finishes(space, data_dir, tmp_path)
    assert [t.user_attrs.get("retry_of") for t in trials if "retry_of" in t.user_attrs] == [2]


SEARCH = """
model = "naivenet"
dataset = "cifar10"
resolution = 32
pruner = "none"
seeds = 1
def suggest(trial):
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
"""


def _searched(data_dir: str, tmp_path: Path) -> Path:
    """A finished two-trial search (trial 0 the reference) in tmp_path/s.db."""
    from study.search import runner
    from study.spaces import space as spaces

    space = spaces.load(write_space(tmp_path, SEARCH, name="searched"))
    runner.run(space, {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05},
               runner.Options(storage=f"sqlite:///{tmp_path}/s.db", trials=2, fuse=1))
    return tmp_path / "s.db"


def wait_for_running(db: Path, name: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, f"no running trial in {name}"
        try:
            if any(t.state == TrialState.RUNNING for t in trials_of(db, name)):
                return
        except KeyError:  # the study is not made yet
            pass
        time.sleep(0.2)


@pytest.mark.parametrize("command,suffix", [("final", "-final"), ("ablation-path", "-ablation-path")])
def test_final_and_ablation_path_stop_on_sigterm_as_run_does(data_dir, tmp_path, command, suffix):
    db = _searched(data_dir, tmp_path)
    args = [command, str(db), "--seeds", "1", "--epochs", "2", "--set", "data_fraction=0.1"]
    proc = start(*args, cwd=tmp_path)
    wait_for_running(db, "searched" + suffix, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.startswith("terminated (SIGTERM):") and err.count("\n") == 1, err
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials_of(db, "searched" + suffix)] == \
        [(TrialState.FAIL, "interrupted")]

    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    states = [t.state for t in trials_of(db, "searched" + suffix)]
    assert TrialState.RUNNING not in states and TrialState.COMPLETE in states


def test_a_killed_final_or_path_run_leaves_no_trial_running_after_a_rerun(tmp_path):
    from study.search import recovery
    from study.store import owners
    from study.store import storage as storages

    study = optuna.create_study(storage=storages.open_storage(f"sqlite:///{tmp_path}/k.db", heartbeat=False),
                                study_name="k-final")
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()  # a process id that is gone: the owner killed before it told its trial
    killed = study.ask()
    study._storage.set_trial_system_attr(killed._trial_id, owners.OWNER, {
        "host": recovery.HOST, "pid": dead.pid, "process_start": 1, "trial": killed.number})
    alive = study.ask()
    recovery.record_owner(study, alive)  # this process: still running it
    recovery.fail_dead(study)
    first, second = study.get_trials()
    assert first.state == TrialState.FAIL and f"process {dead.pid} " in first.user_attrs["fail_reason"]
    assert second.state == TrialState.RUNNING and len(study.get_trials()) == 2  # nothing re-queued


def _tiny_config(data_dir: str):
    from study.config import Config

    return Config(model="naivenet", dataset="cifar10", resolution=32, data_dir=data_dir, data_fraction=0.05,
                  epochs=2, precision="fp32", lr=0.02)


def _first_weight(model: dict) -> str:
    return next(k for k, v in model.items() if v.ndim > 1)


TAMPERED = {
    "other weight shapes": lambda s: s["model"].__setitem__(_first_weight(s["model"]),
                                                            torch.zeros(3, 3)),
    "a missing key": lambda s: s["model"].pop(_first_weight(s["model"])),
    "an optimizer of the wrong type": lambda s: s.__setitem__("optimizer", "not a state"),
    "an epoch of the wrong type": lambda s: s.__setitem__("epoch", "1"),
    "an epoch past the end": lambda s: s.__setitem__("epoch", 99),
}


@pytest.mark.parametrize("what", list(TAMPERED))
def test_a_checkpoint_of_the_right_configuration_that_does_not_fit_is_discarded(data_dir, tmp_path, caplog, what):
    from study.engine import checkpoint as checkpoints
    from study.engine import train as training

    config, path = _tiny_config(data_dir), tmp_path / "trial-0.pt"
    original = checkpoints.save
    with pytest.MonkeyPatch.context() as mp:  # the run "dies" right after its first checkpoint
        mp.setattr(checkpoints, "save", lambda p, *a: (original(p, *a), (_ for _ in ()).throw(KeyboardInterrupt)))
        with pytest.raises(KeyboardInterrupt):
            training.train(config, checkpoint=path)
    state = torch.load(path, weights_only=True)
    TAMPERED[what](state)
    torch.save(state, path)

    metrics = training.train(config, checkpoint=path)
    assert "discarded" in caplog.text and metrics.resumed_from_epoch is None and metrics.epochs_trained == 2
    afresh = training.train(config)  # nothing of the bad checkpoint may leak into the run: bit for bit a fresh one
    assert metrics.val_accuracy_curve == afresh.val_accuracy_curve and metrics.train_loss_curve == afresh.train_loss_curve


@pytest.mark.parametrize("cut", ["right after the study row", "after its attributes", "after its note"])
def test_a_set_up_cut_short_is_finished_by_the_next_run(data_dir, tmp_path, monkeypatch, cut):
    import optuna_dashboard

    from study.search import runner
    from study.spaces import kinds
    from study.spaces import space as spaces
    from study.store import record
    from study.store import storage as storages

    space = spaces.load(write_space(tmp_path, SEARCH, name="halfmade"))
    url, fixed = f"sqlite:///{tmp_path}/h.db", {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05}
    storages.open_storage(url)  # the file is there before (a new one would be removed with the failed run)
    where = {"right after the study row": (record, "write_study"), "after its attributes": (optuna_dashboard, "save_note"),
             "after its note": (kinds.SearchPlan, "created")}[cut]
    with monkeypatch.context() as m:
        m.setattr(*where, lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))  # as SIGKILL there would
        with pytest.raises(KeyboardInterrupt):
            runner.run(space, fixed, runner.Options(storage=url, trials=1, fuse=1))
    assert optuna.get_all_study_names(url) == ["halfmade"]

    study = runner.run(space, fixed, runner.Options(storage=url, trials=1, fuse=1))
    (reference,) = study.get_trials()
    assert reference.state == TrialState.COMPLETE and reference.user_attrs["reference"]
    assert reference.params == space.bind(fixed).reference_params()
    for attr in ("space", "kind", "sampler", "pruner", "dataset", "uid"):
        assert study.user_attrs.get(attr), attr
    assert study.user_attrs["dataset"]["name"] == "cifar10"
    assert optuna_dashboard.get_note(study).startswith("# halfmade")


def test_same_named_space_files_in_two_folders_are_kept_apart(data_dir, tmp_path):
    from study.search import runner
    from study.spaces import space as spaces

    first, second = write_space(tmp_path / "a", SEARCH, name="twin"), write_space(tmp_path / "b", SEARCH, name="twin")
    args = ["--data-dir", data_dir, "--trials", "1", "--epochs", "1", "--set", "data_fraction=0.05"]
    assert study_cli("run", first, *args, cwd=tmp_path).returncode == 0
    r = study_cli("run", second, *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"set up from {first}, not {second}" in r.stderr and "--study-name" in r.stderr
    db = tmp_path / "runs" / "twin.db"
    assert len(trials_of(db, "twin")) == 1 and optuna.load_study(study_name="twin", storage=f"sqlite:///{db}") \
        .user_attrs["space_path"] == first

    # the file it was set up from still resumes it, however it is named
    study = runner.run(spaces.load(os.path.relpath(first)), {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05},
                       runner.Options(storage=f"sqlite:///{db}", trials=2, fuse=1))
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 2


def _contents(db: Path) -> list[str]:
    """Every row of the database, and every file beside it but the database's own (SQLite's -wal and
    -shm files come and go with readers)."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        rows = list(connection.iterdump())
    files = sorted(str(p.relative_to(db.parent)) for p in db.parent.rglob("*") if not p.name.startswith(db.name))
    return rows + files


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_commands_that_read_leave_the_storage_as_it_was(tmp_path, monkeypatch, capsys):
    import urllib.request

    from stored_studies import ablation_study, final_study

    from study.cli import main

    db = tmp_path / "store" / "studies.db"
    db.parent.mkdir()
    for make in (ablation_study, final_study):
        make(f"sqlite:///{db}")
    before = _contents(db)

    assert main(["report", str(db), "-o", str(tmp_path / "r.html")]) == 0
    assert "saved into the studies" not in capsys.readouterr().out
    monkeypatch.chdir(ROOT)
    assert main(["spaces"]) == 0
    port = _free_port()
    server = start("dashboard", str(db), "--port", str(port), cwd=tmp_path)
    try:
        deadline, pages = time.time() + 120, ["/", "/api/studies", "/api/studies/1", "/api/studies/2"]
        while True:
            try:
                assert all(urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=10).status == 200
                           for page in pages)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.communicate()
                time.sleep(0.3)
    finally:
        server.terminate()
        server.communicate(timeout=60)
    assert _contents(db) == before

    assert main(["report", str(db), "-o", str(tmp_path / "r.html"), "--save-to-dashboard"]) == 0  # asked for
    assert _contents(db) != before


def test_a_stop_signal_is_held_back_while_a_trial_is_created_and_owned():
    from study.search import recovery

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        with recovery.deferred_stop_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler would have run by now
            assert seen == []
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
