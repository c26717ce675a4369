"""`run`: one Optuna study over a space, stored so that it resumes and the dashboard can read it.

Robustness, in one place:
- SQLite is opened in WAL mode with a 60 s busy timeout and immediate transactions, so several
  workers and optuna-dashboard read and write one file without "database is locked" errors or two
  workers taking one queued trial; any SQLAlchemy URL (PostgreSQL, MySQL) works the same way for
  several machines.
- Every RDB storage runs Optuna's heartbeat: a worker killed mid-trial leaves a trial that the next
  worker to start a trial marks FAILED (within HEARTBEAT_GRACE_SECONDS) and re-queues with the same
  parameters; that retry resumes from the trial's last per-epoch checkpoint.
- The budget (trials, epochs or seconds: study.budget) is shared exactly by resume and all workers.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from rich.console import Console

from study import ablation, data, search_defaults
from study import budget as budgets
from study import space as spaces
from study.config import Config
from study.errors import UserError
from study.progress import StudyProgress, top_trials_table
from study.space import Space
from study.train import Diverged, train

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Optuna marks its heartbeat and retry callback experimental; they are what we need here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
HEARTBEAT_SECONDS = 10
HEARTBEAT_GRACE_SECONDS = 30
MAX_RETRY = 2
INTERRUPTED = "interrupted"

def default_storage(space: Space) -> str:
    return f"sqlite:///runs/{space.name}.db"


def run_dir(url: str) -> Path:
    """Where artifacts and checkpoints go: beside an SQLite file, else ./runs."""
    return Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path("runs")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event below opens transactions instead
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so Optuna's read-then-write steps (popping a queued
    # trial) are atomic across processes; with deferred transactions two workers could both take
    # the same WAITING trial. Readers (optuna-dashboard) are not blocked in WAL mode.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_sqlite_whole(path: Path) -> None:
    """Create a new SQLite study database beside `path` and move it in complete.

    Optuna creates its schema table by table, so a process opening the file meanwhile (a worker,
    optuna-dashboard) finds some tables missing, creates them too and fails with "table ... already
    exists". A hard link appears atomically and refuses to replace a file another process put there
    first, whose schema is then complete as well.
    """
    if path.exists():
        return
    scratch = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        optuna.storages.RDBStorage(f"sqlite:///{scratch}").engine.dispose()
        os.link(scratch, path)
    except OSError:
        # FileExistsError: another process linked its complete file first. Otherwise (no hard
        # links on this file system) Optuna creates the file in place below, as it always did.
        pass
    finally:
        scratch.unlink(missing_ok=True)


def open_storage(url: str, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (with heartbeats for `optimize`); SQLite in WAL mode waits for locks."""
    if "://" not in url:
        raise UserError(f"storage {url!r} is not a URL; write sqlite:///path/to.db or postgresql://user@host/db")
    sqlite = url.startswith("sqlite:")
    if sqlite:
        path = Path(url.removeprefix("sqlite:///"))
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {folder} for the study database ({exc.strerror}); pass --storage") from None
        if not os.access(folder, os.W_OK):
            raise UserError(f"{folder} is read-only: the study database cannot be written there; pass --storage")
    try:
        if sqlite and path.name != ":memory:" and "?" not in url:
            _create_sqlite_whole(path)
        beats = dict(
            heartbeat_interval=HEARTBEAT_SECONDS, grace_period=HEARTBEAT_GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY, inherit_intermediate_values=True),
        )
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else {}, **(beats if heartbeat else {})
        )
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({_one_line(exc)}); check the URL and that the database is reachable") from None
    if sqlite:
        import sqlalchemy

        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_connect)
        sqlalchemy.event.listen(storage.engine, "begin", _sqlite_begin)
        storage.engine.dispose()  # reconnect so the pragma applies to every pooled connection
    return storage


def artifact_store(url: str) -> optuna.artifacts.FileSystemArtifactStore:
    folder = run_dir(url) / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(folder))


def make_sampler(name: str, seed: int, budget: budgets.Budget | None = None,
                 epochs: int = 1) -> optuna.samplers.BaseSampler:
    return search_defaults.sampler(name, seed, search_defaults.full_trials(budget, epochs))


def make_pruner(name: str, epochs: int, budget: budgets.Budget | None = None) -> optuna.pruners.BasePruner:
    return search_defaults.pruner(name, epochs, search_defaults.full_trials(budget, epochs))


def _save_note(study: optuna.Study, space: Space) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(study, f"# {space.name}\n\n{space.description.strip()}\n\nSpace file: `{space.path}`")


def open_study(space: Space, fixed: dict[str, Any], storage: optuna.storages.RDBStorage, url: str, name: str,
               seed: int) -> optuna.Study:
    """Create the space's study, or load it to resume; refuses a name already used by another space."""
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if name in existing and existing[name].user_attrs.get("space", space.name) != space.name:
        other = existing[name].user_attrs["space"]
        raise UserError(f"study {name!r} in {url} belongs to space {other!r}; pass --study-name to start a new one")
    defaults = space.defaults.replace(**fixed)
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True,
        sampler=make_sampler(space.sampler, seed), pruner=make_pruner(space.pruner, defaults.epochs),
    )
    if name not in existing:
        cifar = data.load(defaults.dataset, defaults.data_dir)
        attrs = {
            "space": space.name, "space_path": str(space.path), "description": space.description.strip(),
            "kind": space.kind, "sampler": space.sampler, "pruner": space.pruner, "seeds": space.seeds,
            "dataset": {
                "name": cifar.name, "root": str(cifar.root), "classes": list(cifar.classes),
                "train_images": len(cifar.train_labels), "test_images": len(cifar.test_labels),
            },
            **(ablation.study_attrs(space) if space.kind != "search" else {}),
        }
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        _save_note(study, space)
        if space.kind == "search":
            study.enqueue_trial(space.reference_params(fixed), user_attrs={"reference": True})
    study.set_user_attr("commands", [*study.user_attrs.get("commands", []), " ".join(sys.argv)])
    return study


def _requeue_interrupted(study: optuna.Study) -> None:
    """Trials stopped by Ctrl-C run again with their parameters, resuming from their checkpoints."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == INTERRUPTED and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, "reference": t.user_attrs.get("reference", False)})


def run(
    space: Space,
    fixed: dict[str, Any],
    *,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    compute: dict[str, float] | None = None,
    timeout: float | None = None,
    seed: int = 0,
    workers: int = 1,
    devices: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> optuna.Study:
    """Search `space` until its budget (finished trials, or epochs or seconds trained: `compute`, e.g.
    {"epochs": 120}; counting earlier runs) is spent.

    With `workers` > 1, that many processes share the study, the CPU threads split between them,
    and `devices` (e.g. ["cuda:0", "cuda:1"]) is dealt out among them.
    """
    console = console or Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if space.kind == "ablation":
        ablation.check_fixed(space, fixed)
    defaults = space.defaults.replace(**fixed)
    url = storage or default_storage(space)
    name = study_name or space.name
    store = open_storage(url)
    cifar = data.load(defaults.dataset, defaults.data_dir)  # data problems surface here, not inside trial 0
    _check_needs(space, defaults, len(cifar.train_labels), force)
    study = open_study(space, fixed, store, url, name, seed)
    optuna.storages.fail_stale_trials(study)  # trials of killed workers: FAILED and re-queued
    _requeue_interrupted(study)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    if space.kind != "search":
        budget = budgets.Budget(trials=done + ablation.enqueue_missing(study, space, fixed, seed))
    else:
        budget = budgets.resolve(space, trials, compute)
    study.set_user_attr("budget", budget.describe() if budget.compute else max(budget.trials, done))
    if budget.spent(study.get_trials(deepcopy=False)):
        console.print(f"study {name} already has {done} finished trials (budget {budget.describe()}); nothing to do")
        return study

    threads = max(1, torch.get_num_threads() // workers) if workers > 1 else 0
    # one worker runs in this process and takes the space itself; spawned ones load its file
    jobs = [(space if workers == 1 else str(space.path), fixed | ({"device": devices[i % len(devices)]} if devices else {}), url, name, budget,
             timeout, seed, i, threads) for i in range(workers)]
    if workers == 1:
        work(*jobs[0], console=console)
    else:
        console.print(f"{workers} workers on {name}, {threads} CPU thread(s) each")
        context = multiprocessing.get_context("spawn")  # fork would share torch's thread pools
        processes = [context.Process(target=work, args=job, name=f"worker-{i}") for i, job in enumerate(jobs)]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
        if any(p.exitcode for p in processes):
            raise UserError(f"a worker exited with code {[p.exitcode for p in processes]}; run the same command to resume")
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _check_needs(space: Space, config: Config, train_images: int, force: bool) -> None:
    """A space written for a GPU and the full data set says so before it starts, unless forced."""
    from study.train import resolve_device

    missing = []
    if "cuda" in space.needs and resolve_device(config.device).type != "cuda":
        missing.append("a CUDA device")
    if "full_data" in space.needs and train_images < data.FULL_TRAIN_IMAGES:
        missing.append(f"the full data set (this one has {train_images:,} of {data.FULL_TRAIN_IMAGES:,} training images)")
    if missing and not force:
        raise UserError(f"{space.path} needs {' and '.join(missing)} to mean what it says; pass --force to run it anyway")


def work(space_path: str | Space, fixed: dict[str, Any], url: str, name: str, budget: budgets.Budget,
         timeout: float | None,
         seed: int, index: int, threads: int, console: Console | None = None) -> None:
    """Worker `index`: trains trials of the stored study until the shared budget is spent."""
    live = console is not None
    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space_path if isinstance(space_path, Space) else spaces.load(space_path)
    defaults = space.defaults.replace(**fixed)
    study = optuna.load_study(
        study_name=name, storage=open_storage(url),
        sampler=make_sampler(space.sampler, seed + index, budget, defaults.epochs),  # workers must not propose the same trials
        pruner=budget.pruner(make_pruner(space.pruner, defaults.epochs, budget), defaults.epochs),
    )
    store = artifact_store(url)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    total = budgets.progress_total(budget, study.get_trials(deepcopy=False), defaults.epochs)
    with StudyProgress(console or Console(), total, done, live=live, prefix="" if live else f"worker {index}: ") as progress:

        def objective(trial: optuna.Trial) -> float:
            frozen = budget.claim(study, trial)
            if space.kind != "search":
                config = ablation.cell_config(space, trial, fixed, seed)
            else:
                config = space.config(trial, fixed)
            original = frozen.user_attrs.get("retry_of", RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen))
            checkpoint = run_dir(url) / "checkpoints" / name / f"trial-{trial.number if original is None else original}.pt"
            return train_trial(config, trial, progress, store, checkpoint)

        study.optimize(
            objective, n_trials=budget.trials, timeout=timeout,
            catch=(Diverged, torch.OutOfMemoryError, budgets.BudgetReached),
            callbacks=[budget.callback, progress],
        )


def train_trial(config: Config, trial: optuna.Trial, progress: StudyProgress, store: Any,
                checkpoint: Path | None = None) -> float:
    """Train one trial; a diverged or out-of-memory run fails alone with its reason stored.

    The checkpoint outlives the trial only when it was interrupted, so that its retry resumes.
    """
    progress.start_trial(trial.number, config.epochs)
    try:
        metrics = train(config, trial, on_step=progress.on_step, on_epoch=progress.on_epoch,
                        artifact_store=store, checkpoint=checkpoint)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", INTERRUPTED)
        raise
    except (Diverged, torch.OutOfMemoryError) as exc:
        trial.set_user_attr("fail_reason", _one_line(exc))
        _remove(checkpoint)
        raise
    except optuna.TrialPruned:
        _remove(checkpoint)
        raise
    _remove(checkpoint)
    return metrics["val_accuracy"]


def _remove(checkpoint: Path | None) -> None:
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
