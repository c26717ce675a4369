"""`run`: one Optuna study over a space, stored so that it resumes and the dashboard can read it.

Robustness: the storage is opened by study/storage.py, dead and interrupted trials are re-queued by
study/recovery.py; here:
- A worker does not finish while another's trial may still turn out dead: it waits until that trial
  ends or goes stale, then retries it.
- The budget (trials, epochs or seconds: study/budget.py) is shared exactly by resume and all workers.
- Checkpoints live in a folder named by the study's uid, so they belong to their study.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import shlex
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from rich.console import Console

from study import ablation, data, search_defaults
from study import budget as budgets
from study import space as spaces
from study.config import Config
from study.errors import Terminated, UserError, one_line
from study.progress import StudyProgress, make_console
from study.recovery import ENVIRONMENT, INTERRUPTED, handle_stop_signals, own, recover, retry_dead
from study.space import Space
from study.storage import one_line_failures, open_storage, sqlite_path
from study.train import Diverged, train

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Optuna marks its heartbeat and retry callback experimental; they are what we need here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
POLL_SECONDS = 2  # how often a worker waiting on others' trials looks again
CPU_OUT_OF_MEMORY = "can't allocate memory"  # in the message of torch's CPU allocator when it runs out
UID = "uid"  # study user attribute set at creation: unique to the study, keys its checkpoints
# Trials one GPU runs at once when --workers is not given. Measured on one H100 (issue 11, before the
# step became a CUDA graph): 4 workers on one GPU cut a 12-trial NaiveNet@32 study from 73 s to 47 s.
# Not re-measured with graphed steps (no GPU in that session); `--workers N` (with `--devices`) overrides it.
TRIALS_PER_GPU = 4


def _not_a_failed_trial(record: logging.LogRecord) -> bool:
    # Optuna logs a failed trial in two lines and a traceback; the progress line of the trial (with its
    # fail_reason) and the CLI's one-line error say it already.
    return "failed with" not in record.getMessage()


def default_storage(space: Space) -> str:
    return f"sqlite:///runs/{space.name}.db"


def run_dir(url: str) -> Path:
    """Where artifacts and checkpoints go: beside an SQLite file, else ./runs."""
    return Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path("runs")


def checkpoint_dir(study: optuna.Study, url: str) -> Path:
    """The study's own checkpoint folder: named by its uid, so another study (a new database in the
    same folder, or this one deleted and recreated) never picks up its checkpoints."""
    return run_dir(url) / "checkpoints" / study.user_attrs[UID]


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
    sampler, pruner = make_sampler(space.sampler, seed), make_pruner(space.pruner, defaults.epochs)
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
        if name not in existing:  # another machine created it a moment ago: it sets it up, once
            _wait_for_uid(study)
    else:
        _set_up(study, space, fixed)
    if UID not in study.user_attrs:  # studies stored before checkpoints were keyed by it get one too
        study.set_user_attr(UID, uuid.uuid4().hex)
    study.set_user_attr("commands", [*study.user_attrs.get("commands", []), shlex.join(["python", "-m", "study", *sys.argv[1:]])])
    return study


def _set_up(study: optuna.Study, space: Space, fixed: dict[str, Any]) -> None:
    """A new study's attributes, note and reference trial; the uid comes last: it says the rest is there."""
    defaults = space.defaults.replace(**fixed)
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
    study.set_user_attr(UID, uuid.uuid4().hex)


def _wait_for_uid(study: optuna.Study, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while UID not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.2)


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
    workers: int | None = 1,
    devices: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> optuna.Study:
    """Search `space` until its budget (finished trials, or epochs or seconds trained: `compute`, e.g.
    {"epochs": 120}; counting earlier runs) is spent.

    With `workers` > 1, that many processes share the study, the CPU threads split between them,
    and `devices` (e.g. ["cuda:0", "cuda:1"]) is dealt out among them; `workers=None` picks them
    (`resolve_workers`).
    """
    console = console or make_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if space.kind == "ablation":
        ablation.check_fixed(space, fixed)
    defaults = space.defaults.replace(**fixed)
    for device in {defaults.device, *(devices or [])}:
        _check_device(device)  # a missing GPU is the command's fault, never trial 0's
    cifar = data.load(defaults.dataset, defaults.data_dir)  # data problems surface here, not inside trial 0
    data.split(cifar.train_labels, defaults.val_fraction, defaults.data_fraction, defaults.split_seed)
    _check_needs(space, defaults, len(cifar.train_labels), force)
    workers, devices, per_gpu = resolve_workers(workers, devices, defaults.device)
    url = storage or default_storage(space)
    name = study_name or space.name
    with one_line_failures(url), _removed_unless_used(url, default=storage is None):
        study = open_study(space, fixed, open_storage(url, create_folder=storage is None), url, name, seed)
        recover(study)
        done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
        if space.kind != "search":
            budget = budgets.Budget(trials=done + ablation.enqueue_missing(study, space, fixed, seed))
        else:
            budget = budgets.resolve(space, trials, compute)
        study.set_user_attr("budget", budget.describe() if budget.compute else max(budget.trials, done))
        if per_gpu:
            study.set_user_attr("trials_per_gpu", per_gpu)
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
        _run_processes(jobs)
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _run_processes(jobs: list[tuple[Any, ...]]) -> None:
    context = multiprocessing.get_context("spawn")  # fork would share torch's thread pools
    processes = [context.Process(target=_worker, args=job, name=f"worker-{i}") for i, job in enumerate(jobs)]
    for p in processes:
        p.start()
    try:
        for p in processes:
            p.join()
    except KeyboardInterrupt:
        for p in processes:
            p.terminate()  # SIGTERM: each worker marks its trial interrupted (a Ctrl-C reached them already)
        for p in processes:
            p.join()
        raise
    if any(p.exitcode for p in processes):
        raise UserError(f"a worker exited with code {[p.exitcode for p in processes]}; run the same command to resume")


@contextlib.contextmanager
def _removed_unless_used(url: str, default: bool) -> Iterator[None]:
    """An SQLite file this run creates is deleted again when the run fails before it stored anything
    (with the default runs/ folder, when that was new too)."""
    path = sqlite_path(url)
    new = path is not None and not path.exists()
    folder_new = default and path is not None and not path.parent.exists()
    try:
        yield
    except BaseException:
        if new:
            for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
                leftover.unlink(missing_ok=True)
            if folder_new:
                shutil.rmtree(path.parent, ignore_errors=True)
        raise


def _check_device(name: str) -> None:
    from study.train import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s) visible; pick one of them")


def resolve_workers(workers: int | None, devices: list[str] | None, device: str) -> tuple[int, list[str] | None, float]:
    """(workers, devices, trials per GPU, 0 without one); `workers` None: TRIALS_PER_GPU on each GPU in
    `devices` (default: every visible one when `device` resolves to CUDA), one process on CPU."""
    from study.train import resolve_device

    if devices is None and resolve_device(device).type == "cuda" and workers is None:
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    gpus = {torch.device(d).index or 0 for d in devices or [device] if resolve_device(d).type == "cuda"}
    if workers is None:
        workers = TRIALS_PER_GPU * len(gpus) if gpus else 1
    return workers, devices, workers / len(gpus) if gpus else 0


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


def _worker(*job: Any) -> None:
    """A worker process: stop signals handled, errors as one line (exit codes as the CLI's)."""
    handle_stop_signals()
    try:
        work(*job)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, Terminated) else 130)


def work(space_path: str | Space, fixed: dict[str, Any], url: str, name: str, budget: budgets.Budget,
         timeout: float | None,
         seed: int, index: int, threads: int, console: Console | None = None) -> None:
    """Worker `index`: trains trials of the stored study until the shared budget is spent."""
    live = console is not None
    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").addFilter(_not_a_failed_trial)
    space = space_path if isinstance(space_path, Space) else spaces.load(space_path)  # spawned workers load it
    defaults = space.defaults.replace(**fixed)
    study = optuna.load_study(
        study_name=name, storage=open_storage(url),
        sampler=make_sampler(space.sampler, seed + index, budget, defaults.epochs),  # workers must not propose the same trials
        pruner=budget.pruner(make_pruner(space.pruner, defaults.epochs, budget), defaults.epochs),
    )
    store = artifact_store(url)
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    total = budgets.progress_total(budget, study.get_trials(deepcopy=False), defaults.epochs)
    attempts = [0]
    with StudyProgress(console or make_console(), total, done, live=live, prefix="" if live else f"worker {index}: ") as progress:

        def objective(trial: optuna.Trial) -> float:
            own(study, trial)
            attempts[0] += 1
            frozen = budget.claim(study, trial)
            if space.kind != "search":
                config = ablation.cell_config(space, trial, fixed, seed)
            else:
                config = space.config(trial, fixed)
            original = frozen.user_attrs.get("retry_of", RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen))
            checkpoint = checkpoint_dir(study, url) / f"trial-{trial.number if original is None else original}.pt"
            return train_trial(config, trial, progress, store, checkpoint)

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            trials = study.get_trials(deepcopy=False)
            room = budget.trials_to_start(trials)
            if budget.max_attempts is not None:  # a worker whose every trial fails still ends
                room = budget.max_attempts - attempts[0] if room is None else min(room, budget.max_attempts - attempts[0])
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            if room is None or room > 0:
                with one_line_failures(url):
                    study.optimize(
                        objective, n_trials=room, timeout=left,
                        catch=(Diverged, torch.OutOfMemoryError, budgets.BudgetReached),
                        callbacks=[budget.callback, progress],
                    )
            elif (not any(t.state == TrialState.RUNNING for t in trials) or budget.spent(trials)
                  or budget.max_attempts is not None and attempts[0] >= budget.max_attempts):
                return
            else:  # others' trials hold the rest and may still die or be pruned: wait, retrying dead ones
                time.sleep(POLL_SECONDS)
                retry_dead(study)


def train_trial(config: Config, trial: optuna.Trial, progress: StudyProgress, store: Any,
                checkpoint: Path | None = None, test: bool = False) -> float:
    """Train one trial; a diverged or out-of-memory run fails alone with its reason stored.

    A failure of the environment (interrupt, device, disk) is stored as such, so that the next run
    re-queues the trial, and its checkpoint is kept for that retry; the checkpoint outlives the
    trial only then.
    Returns the validation accuracy, or with `test` (the final scoring only) the test accuracy.
    """
    progress.start_trial(trial.number, config.epochs)
    try:
        metrics = train(config, trial, test=test, on_step=progress.on_step, on_epoch=progress.on_epoch,
                        artifact_store=store, checkpoint=checkpoint)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", INTERRUPTED)
        raise
    except (Diverged, RuntimeError) as exc:
        # torch raises OutOfMemoryError on GPUs only; its CPU allocator raises a plain RuntimeError
        oom = isinstance(exc, torch.OutOfMemoryError) or CPU_OUT_OF_MEMORY in str(exc)
        if not (oom or isinstance(exc, Diverged)):
            raise
        reason = one_line(exc) if not oom else "OutOfMemoryError: " + str(exc)[str(exc).find("Default"):].splitlines()[0]
        trial.set_user_attr("fail_reason", reason)
        _remove(checkpoint)
        if oom and not isinstance(exc, torch.OutOfMemoryError):
            raise torch.OutOfMemoryError(reason) from None  # among the failures optimize catches
        raise
    except optuna.TrialPruned:
        _remove(checkpoint)
        raise
    except (UserError, OSError) as exc:
        message = str(exc) if isinstance(exc, UserError) else f"{exc.strerror}: {exc.filename}"
        trial.set_user_attr("fail_reason", ENVIRONMENT + message)
        raise UserError(f"trial {trial.number} stopped: {message}; fix it and run the same command to resume") from None
    _remove(checkpoint)
    return metrics["test_accuracy" if test else "val_accuracy"]


def train_told(study: optuna.Study, attrs: dict[str, Any], config: Config, progress: StudyProgress, store: Any,
               test: bool = False) -> float:
    """Ask `study` for a trial outside `optimize`, train `config` in it and tell the result.

    For studies that walk their own list of runs (ablation path, final scoring): a diverged or
    out-of-memory run is told FAILED and returns NaN; an interrupt is told FAILED and re-raised,
    so that the storage holds no trial left RUNNING.
    """
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    try:
        value = train_trial(config, trial, progress, store, test=test)
    except (Diverged, torch.OutOfMemoryError):
        study.tell(trial, state=TrialState.FAIL)
        value = float("nan")
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        study.tell(trial, value)
    progress(study, study.get_trials(deepcopy=False)[trial.number])
    return value


def _remove(checkpoint: Path | None) -> None:
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
