"""Never lose a trial: killed and interrupted workers, parallel workers, PostgreSQL, bad input."""

import json
import multiprocessing
import os
import signal
import subprocess
import textwrap
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from processes import start, study_cli

from study.engine import models
from study.errors import UserError
from study.search import runner, studies
from study.search import trial as trial_module
from study.spaces import space as spaces
from study.store import heartbeat, owners, vocabulary
from study.store import storage as study_storage

ROOT = Path(__file__).resolve().parents[1]
SPACE32 = str(ROOT / "spaces" / "naivenet32_cifar10.py")


def write_space(folder: Path, body: str, name: str = "robust") -> str:
    path = folder / f"{name}.py"
    path.write_text(f'"""{name}: a small space for robustness tests."""\n' + textwrap.dedent(body))
    return str(path)


SMALL = """
model = "naivenet"
dataset = "cifar10"
resolution = 32
pruner = "none"
def suggest(trial):
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
"""


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def wait_for_checkpoint(folder: Path, proc: subprocess.Popen, trial: int = 0, seconds: float = 300) -> Path:
    """The trial's checkpoint, once written (checkpoints/<study uid>/trial-N.pt beside the database)."""
    deadline = time.time() + seconds
    while not (found := list(folder.glob(f"checkpoints/*/trial-{trial}.pt"))):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, f"no checkpoint of trial {trial} in {folder}"
        time.sleep(0.2)
    return found[0]


def test_killed_worker_trial_is_retried_at_once_by_an_immediate_rerun(data_dir, tmp_path):
    args = ["run", SPACE32, "--data-dir", data_dir, "--trials", "2", "--epochs", "3", "--set", "data_fraction=0.15"]
    proc = start(*args, cwd=tmp_path)
    wait_for_checkpoint(tmp_path / "runs", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    r = study_cli(*args, cwd=tmp_path)  # at once: the killed trial's heartbeat is still fresh
    assert r.returncode == 0, r.stderr
    trials = load("sqlite:///" + str(tmp_path / "runs" / "naivenet32_cifar10.db"), "naivenet32_cifar10")
    killed, retry = trials[0], next(t for t in trials if t.system_attrs.get("failed_trial") == 0)
    assert killed.state == TrialState.FAIL and f"process {proc.pid} " in killed.user_attrs["fail_reason"]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params and retry.user_attrs["reference"]
    assert "fail_reason" not in retry.user_attrs
    assert retry.user_attrs["resumed_from_epoch"] >= 1 and retry.user_attrs["epochs_trained"] == 3
    assert [t.state for t in trials].count(TrialState.RUNNING) == 0
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 2  # the budget


def test_a_trial_running_elsewhere_is_waited_for_and_retried_once_stale(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(heartbeat, "HEARTBEAT_GRACE_SECONDS", 3)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.5)
    space = spaces.load(write_space(tmp_path, SMALL))
    fixed, url = {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05}, f"sqlite:///{tmp_path}/x.db"
    study = runner.run(space, fixed, runner.Options(storage=url, trials=1))
    study.enqueue_trial({"lr": 0.01})
    elsewhere = study.ask()  # a worker on another machine that dies without a word
    study._storage.set_trial_system_attr(elsewhere._trial_id, owners.OWNER, {
        "host": "another-machine/boot", "pid": 1, "process_start": 1, "trial": elsewhere.number})
    study._storage.record_heartbeat(elsewhere._trial_id)

    trials = runner.run(space, fixed, runner.Options(storage=url, trials=3)).get_trials()
    assert trials[elsewhere.number].state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == elsewhere.number)
    assert retry.state == TrialState.COMPLETE and retry.params == {"lr": 0.01}
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3 and TrialState.RUNNING not in [t.state for t in trials]


@pytest.mark.parametrize("sig,code,said", [(signal.SIGINT, 130, "interrupted:"), (signal.SIGTERM, 143, "terminated (SIGTERM):")])
def test_ctrl_c_and_sigterm_mark_the_trial_and_the_same_command_resumes_it(data_dir, tmp_path, sig, code, said):
    space = write_space(tmp_path, SMALL)
    args = ["run", space, "--data-dir", data_dir, "--trials", "1", "--epochs", "4", "--set", "data_fraction=0.1"]
    proc = start(*args, cwd=tmp_path)
    checkpoint = wait_for_checkpoint(tmp_path / "runs", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code and err.startswith(said) and err.count("\n") == 1, err
    assert "run the same command to resume" in err and checkpoint.is_file()
    storage = "sqlite:///" + str(tmp_path / "runs" / "robust.db")
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in load(storage, "robust")] == [(TrialState.FAIL, "interrupted")]

    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    retry = load(storage, "robust")[1]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == 0 and retry.user_attrs["reference"]
    assert retry.user_attrs["resumed_from_epoch"] >= 1


def test_sigterm_to_the_parent_reaches_every_worker(data_dir, tmp_path):
    space = write_space(tmp_path, SMALL)
    args = ["run", space, "--data-dir", data_dir, "--trials", "2", "--epochs", "3", "--workers", "2",
            "--set", "data_fraction=0.3"]
    proc = start(*args, cwd=tmp_path)
    for trial in (0, 1):
        wait_for_checkpoint(tmp_path / "runs", proc, trial)
    proc.send_signal(signal.SIGTERM)  # as docker stop does: to the parent alone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.startswith("terminated (SIGTERM):") and err.count("\n") == 1, err
    trials = load("sqlite:///" + str(tmp_path / "runs" / "robust.db"), "robust")
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials] == [(TrialState.FAIL, "interrupted")] * 2


def _open_new_storage(url: str, barrier, results) -> None:
    barrier.wait()  # every process opens the missing file at the same moment
    try:
        study_storage.open_storage(url, heartbeat=False)
        results.put("ok")
    except Exception as exc:
        results.put(repr(exc))


def test_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path):
    # Optuna builds a schema table by table; before _create_sqlite_whole, about one round in four
    # failed here ("IntegrityError" or "table ... already exists").
    ctx = multiprocessing.get_context("fork")
    for round_ in range(4):
        url, barrier, results = f"sqlite:///{tmp_path}/new-{round_}.db", ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_new_storage, args=(url, barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        assert [results.get(timeout=120) for _ in procs] == ["ok"] * 4
        for p in procs:
            p.join()
        assert optuna.get_all_study_names(url) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"new-{i}.db" for i in range(round_ + 1)]


def test_four_workers_and_a_reader_share_one_sqlite_file(data_dir, tmp_path):
    space = write_space(tmp_path, SMALL)
    db = tmp_path / "runs" / "robust.db"
    storage = f"sqlite:///{db}"
    errors, polls, stop = [], [0], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                if db.exists() and "robust" in optuna.get_all_study_names(storage):
                    optuna.load_study(study_name="robust", storage=storage).get_trials()
                    polls[0] += 1
            except Exception as exc:  # the point of the test: no "database is locked"
                errors.append(exc)
            time.sleep(0.05)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        r = study_cli("run", space, "--data-dir", data_dir, "--trials", "8", "--epochs", "1", "--workers", "4",
                      "--set", "data_fraction=0.05", cwd=tmp_path)
    finally:
        stop.set()
        thread.join()
    assert r.returncode == 0, r.stderr
    assert "locked" not in r.stderr, r.stderr
    assert not errors and polls[0] > 10
    trials = load(storage, "robust")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 8
    assert {t.number for t in trials} == set(range(len(trials)))
    assert {t.user_attrs["config"]["lr"] for t in trials if t.state == TrialState.COMPLETE}.__len__() == 8


@pytest.mark.skipif(not os.environ.get("STUDY_TEST_POSTGRES_URL"),
                    reason="no PostgreSQL server: .ci/run starts one and sets STUDY_TEST_POSTGRES_URL")
def test_two_machines_share_one_postgresql_study_exactly(data_dir, tmp_path):
    space = write_space(tmp_path, SMALL)
    url, name = os.environ["STUDY_TEST_POSTGRES_URL"], f"pg-{uuid.uuid4().hex[:8]}"
    args = ["run", space, "--data-dir", data_dir, "--trials", "8", "--epochs", "1", "--storage", url,
            "--study-name", name, "--set", "data_fraction=0.05"]
    procs = [start(*args, cwd=tmp_path / d) for d in ("a", "b") if (tmp_path / d).mkdir() is None]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = load(url, name)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 8
    assert len({t.number for t in trials}) == len(trials)


def test_a_diverging_trial_fails_alone_and_the_study_goes_on(data_dir, tmp_path):
    space = write_space(tmp_path, """
        model = "naivenet"
        dataset = "cifar10"
        resolution = 32
        lr = 1e9  # diverges to NaN within an epoch
        sampler = "grid"
        pruner = "none"
        def suggest(trial):
            return {"lr": trial.suggest_categorical("lr", [1e9, 0.05])}
    """)
    r = study_cli("run", space, "--data-dir", data_dir, "--trials", "2", "--epochs", "1", "--set", "data_fraction=0.1",
                  "--set", "precision='fp32'", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    diverged, healthy = load("sqlite:///" + str(tmp_path / "runs" / "robust.db"), "robust")
    assert diverged.state == TrialState.FAIL and "loss became nan" in diverged.user_attrs["fail_reason"]
    assert healthy.state == TrialState.COMPLETE and healthy.params["lr"] == 0.05


def test_an_out_of_memory_trial_fails_alone(data_dir, tmp_path):
    @models.register("oom_when_wide")
    def build(config, num_classes):
        if config.width > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return models.naivenet.build(config, num_classes)

    space = spaces.load(write_space(tmp_path, """
        model = "oom_when_wide"
        dataset = "cifar10"
        resolution = 32
        width = 2.0
        sampler = "grid"
        def suggest(trial):
            return {"width": trial.suggest_categorical("width", [2.0, 0.5])}
    """))
    study = runner.run(space, {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.1},
                       runner.Options(storage=f"sqlite:///{tmp_path}/oom.db", trials=2))
    oom, fine = study.get_trials()
    assert oom.state == TrialState.FAIL and oom.user_attrs["fail_reason"].startswith("OutOfMemoryError")
    assert fine.state == TrialState.COMPLETE


def test_a_trial_too_big_for_the_cpu_memory_fails_alone(data_dir, tmp_path):
    space = spaces.load(write_space(tmp_path, """
        model = "naivenet"
        dataset = "cifar10"
        resolution = 32
        sampler = "grid"
        pruner = "none"
        def suggest(trial):  # one 128000-px image alone needs 196 GB
            return {"resolution": trial.suggest_categorical("resolution", [128000, 32])}
    """))
    study = runner.run(space, {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05},
                       runner.Options(storage=f"sqlite:///{tmp_path}/oom.db", trials=2))
    states = {t.params["resolution"]: t for t in study.get_trials()}
    assert states[128000].state == TrialState.FAIL and "can't allocate memory" in states[128000].user_attrs["fail_reason"]
    assert states[32].state == TrialState.COMPLETE


@pytest.mark.parametrize("storage,match", [
    ("runs.db", "is not a URL"),
    ("nosuchdb://x/y", "cannot open storage"),
    ("postgresql://study@127.0.0.1:1/none", "cannot open storage"),
])
def test_bad_storage_is_one_line(storage, match, data_dir, tmp_path):
    r = study_cli("run", SPACE32, "--storage", storage, "--data-dir", data_dir, cwd=tmp_path)
    assert r.returncode == 2 and match in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_unwritable_runs_folder_is_one_line(data_dir, tmp_path):
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    r = study_cli("run", SPACE32, "--data-dir", data_dir, cwd=tmp_path)
    assert r.returncode == 2 and "cannot create runs" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_data_folder_in_the_wrong_layout_is_one_line(tmp_path):
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    r = study_cli("train", SPACE32, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert r.returncode == 2 and "cifar-10-batches-py" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_study_name_of_another_space_is_refused_and_kept(data_dir, tmp_path):
    first = write_space(tmp_path, SMALL, name="first")
    second = write_space(tmp_path, SMALL, name="second")
    common = ["--data-dir", data_dir, "--trials", "1", "--epochs", "1", "--set", "data_fraction=0.05",
              "--storage", "sqlite:///shared.db", "--study-name", "shared"]
    assert study_cli("run", first, *common, cwd=tmp_path).returncode == 0
    r = study_cli("run", second, *common, cwd=tmp_path)
    assert r.returncode == 2 and "belongs to space 'first'" in r.stderr
    assert len(load(f"sqlite:///{tmp_path}/shared.db", "shared")) == 1


def test_checkpoints_belong_to_their_study_in_a_shared_folder(data_dir, tmp_path):
    space = write_space(tmp_path, SMALL)
    common = ["run", space, "--data-dir", data_dir, "--trials", "1", "--set", "data_fraction=0.1"]
    old = [*common, "--epochs", "4", "--storage", f"sqlite:///{tmp_path}/old.db"]
    proc = start(*old, cwd=tmp_path)
    checkpoint = wait_for_checkpoint(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)

    # a new database in the same folder, its study of the same name: trial 0 trains from the start
    r = study_cli(*common, "--epochs", "1", "--storage", f"sqlite:///{tmp_path}/new.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (fresh,) = load(f"sqlite:///{tmp_path}/new.db", "robust")
    assert fresh.state == TrialState.COMPLETE and "resumed_from_epoch" not in fresh.user_attrs
    assert fresh.user_attrs["epochs_trained"] == 1 and fresh.user_attrs["config"]["epochs"] == 1
    assert checkpoint.is_file()  # the old study keeps the checkpoint it needs

    r = study_cli(*old, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    retry = load(f"sqlite:///{tmp_path}/old.db", "robust")[1]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from_epoch"] >= 1


def _checkpointed(data_dir, tmp_path, **settings):
    from study.config import Config
    from study.engine.train import train

    config = Config(model="naivenet", dataset="cifar10", resolution=32, data_dir=data_dir, data_fraction=0.05,
                    epochs=2, precision="fp32", **settings)
    return train(config, checkpoint=tmp_path / "c" / "trial-0.pt")


def test_a_checkpoint_of_another_configuration_or_unreadable_is_discarded_and_logged(data_dir, tmp_path, caplog):
    from study.engine import checkpoint as checkpoints

    original = checkpoints.save
    with pytest.MonkeyPatch.context() as mp:  # the run "dies" right after its first checkpoint
        mp.setattr(checkpoints, "save", lambda path, *a: (original(path, *a), (_ for _ in ()).throw(KeyboardInterrupt)))
        with pytest.raises(KeyboardInterrupt):
            _checkpointed(data_dir, tmp_path, lr=0.02)
    path = tmp_path / "c" / "trial-0.pt"
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    assert _checkpointed(data_dir, tmp_path, lr=0.03).resumed_from_epoch is None
    assert "another configuration" in caplog.text and _saved_lr(path) == 0.03  # replaced, not resumed

    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    assert _checkpointed(data_dir, tmp_path, lr=0.03).epochs_trained == 2
    assert "cannot be read" in caplog.text and _saved_lr(path) == 0.03


def _saved_lr(path):
    return json.loads(torch.load(path, weights_only=True)["metrics"])[0]["config"]["lr"]


def test_a_failed_checkpoint_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from study.engine import checkpoint as checkpoints

    def disk_full(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device", str(f))

    monkeypatch.setattr(checkpoints.torch, "save", disk_full)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(OSError):
        checkpoints.save(tmp_path / "trial-0.pt", checkpoints.State(model, optimizer, scheduler, [], [], [], epoch=1,
                                                                     train_seconds=1.0))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs: room for a new study database, not for a checkpoint (needs root to mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({r.stderr.strip() or 'mount failed'}): needs root")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)  # the test still holds the database open


def test_a_full_disk_is_one_line_and_the_next_run_retries_the_reference_trial(data_dir, tmp_path, small_disk):
    space = write_space(tmp_path, SMALL)
    storage = f"sqlite:///{small_disk}/study.db"
    args = ["run", space, "--data-dir", data_dir, "--trials", "1", "--epochs", "2", "--set", "data_fraction=0.05",
            "--storage", storage]
    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and "disk is full" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not [p for p in small_disk.rglob("*") if p.suffix == ".tmp"]  # no partial checkpoint left

    subprocess.run(["mount", "-o", "remount,size=50m", str(small_disk)], check=True)  # space freed
    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    trials = load(storage, "robust")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["reference"] and trials[1].params == trials[0].params


def test_an_environment_failure_of_the_reference_trial_is_retried_by_the_next_run(data_dir, tmp_path, monkeypatch):
    space = spaces.load(write_space(tmp_path, SMALL))
    fixed, url = {"data_dir": data_dir, "epochs": 1, "data_fraction": 0.05}, f"sqlite:///{tmp_path}/x.db"

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device", "checkpoints/trial-0.pt")

    with monkeypatch.context() as m:
        m.setattr(trial_module, "train_array", no_space)
        with pytest.raises(UserError, match="No space left on device"):
            runner.run(space, fixed, runner.Options(storage=url, trials=2))
    (failed,) = load(url, "robust")
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"].startswith(vocabulary.ENVIRONMENT)

    trials = runner.run(space, fixed, runner.Options(storage=url, trials=2)).get_trials()
    retry = trials[1]
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["reference"] and retry.state == TrialState.COMPLETE
    assert retry.params == space.bind(fixed).reference_params() and len(trials) == 3


@pytest.fixture
def fresh_postgres():
    """A new, empty PostgreSQL database (the study role may create them: .ci/postgres), dropped after."""
    url = os.environ.get("STUDY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets STUDY_TEST_POSTGRES_URL")
    import sqlalchemy

    name = f"fresh_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    yield url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def test_two_first_starts_at_once_on_a_fresh_postgresql_database_both_succeed(data_dir, tmp_path, fresh_postgres):
    space = write_space(tmp_path, SMALL)
    args = ["run", space, "--data-dir", data_dir, "--trials", "4", "--epochs", "1", "--storage", fresh_postgres,
            "--set", "data_fraction=0.05"]
    procs = [start(*args, cwd=tmp_path / d) for d in ("a", "b") if (tmp_path / d).mkdir() is None]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = load(fresh_postgres, "robust")
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert sum(bool(t.user_attrs.get("reference")) for t in trials) == 1  # set up once, by whichever created it


def test_processes_opening_a_fresh_postgresql_database_at_once_all_succeed(fresh_postgres):
    # before _rdb_storage retried, three of four failed in every round (IntegrityError, pg_type_typname_nsp_index)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_new_storage, args=(fresh_postgres, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    assert [results.get(timeout=120) for _ in procs] == ["ok"] * 4
    for p in procs:
        p.join()


@pytest.mark.parametrize("driver", ["postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://"])
def test_postgresql_urls_work_as_typed(driver, fresh_postgres):
    url = driver + fresh_postgres.split("://", 1)[1]
    storage = study_storage.open_storage(url, heartbeat=False)
    assert optuna.get_all_study_names(storage) == []
    storage.engine.dispose()


def test_a_run_that_fails_before_its_first_trial_leaves_no_database(data_dir, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise UserError("refused while setting the study up")

    monkeypatch.setattr(studies, "open_study", refuse)
    monkeypatch.chdir(tmp_path)
    space = spaces.load(write_space(tmp_path, SMALL))
    for storage in (f"sqlite:///{tmp_path}/new.db", None):  # an explicit file, and the default runs/ folder
        with pytest.raises(UserError, match="refused"):
            runner.run(space, {"data_dir": data_dir}, runner.Options(storage=storage))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robust.py"]
