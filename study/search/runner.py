"""`run`: one Optuna study over a space, stored so that it resumes and the dashboard can read it.

What trials are: study/spaces/kinds.py; the study: studies.py; one trial: trial.py; K as one model: arrays.py.
Here, the workers' loop: the budget (study/search/budget.py) is shared exactly by resume and all workers, and
a worker does not finish while another's trial may still die: it waits, then retries it."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

from study.samplers.registry import PrunerFactory, SamplerFactory
from study.search import arrays, preflight, studies
from study.search import budget as budgets
from study.search.progress import StudyProgress, make_console
from study.search.recovery import recover, retry_dead
from study.search.worker import Worker
from study.search.workers import TRIALS_PER_GPU, resolve_workers, run_processes
from study.spaces.kinds import Plan
from study.spaces.space import Space
from study.store import record
from study.store import storage as storages
from study.store.folders import removed_unless_used
from study.store.retry import one_line_failures
from study.store.states import FINISHED
from study.store.urls import check_study_name, default_url

POLL_SECONDS = 2  # how often a worker waiting on others' trials looks again


@dataclass(frozen=True)
class Job:
    """What a worker needs: the run's plan travels whole (study.spaces.space.Space pickles as its path)."""

    plan: Plan
    url: str
    name: str
    budget: budgets.Budget
    timeout: float | None
    fuse: int  # trials per fused array; 1: one by one
    sampler: SamplerFactory | None = None  # a caller's own, in place of the space's named one (the search bench's arms)
    pruner: PrunerFactory | None = None


@dataclass(frozen=True)
class Options:
    """How `run` runs a space; each None is the space's or the machine's own choice."""

    storage: str | None = None  # an Optuna storage URL; default sqlite:///runs/<space>.db
    study_name: str | None = None  # default: the space's name
    trials: int | None = None  # a trial budget, counting earlier runs' trials
    compute: dict[str, float] | None = None  # a compute budget, e.g. {"epochs": 120} or {"seconds": 600}
    timeout: float | None = None  # seconds after which no new trial starts
    seed: int = 0
    workers: int | None = 1  # processes sharing the study; None: workers.resolve_workers picks
    devices: list[str] | None = None  # dealt out among the workers, e.g. ["cuda:0", "cuda:1"]
    force: bool = False  # run without the GPU or full data the space says it needs
    fuse: int | None = None  # trials trained as one model (study/search/arrays.py); None: where it pays
    sampler: SamplerFactory | None = None  # a caller's own, in place of the space's named one (the search bench)
    pruner: PrunerFactory | None = None


def run(space: Space, fixed: dict[str, Any], options: Options = Options(),
        console: Console | None = None) -> optuna.Study:
    """Search `space` with the `fixed` settings until its budget (finished trials, or epochs or seconds
    trained; counting earlier runs) is spent. With several workers, the CPU threads split between them."""
    o = options
    console = console or make_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = space.bind(fixed, o.seed)
    plan.check_fixed()
    defaults = plan.defaults
    preflight.check(plan, defaults, o.devices, o.force)
    k, why = arrays.array_size(defaults, o.fuse or space.fuse)
    # a fused array fills a GPU as TRIALS_PER_GPU single trials did; only one array per GPU was measured
    n_workers, devices, per_gpu = resolve_workers(o.workers, o.devices, defaults.device, 1 if k > 1 else TRIALS_PER_GPU)
    url = o.storage or default_url(space.name)
    name = o.study_name or space.name
    check_study_name(name)
    with one_line_failures(url), removed_unless_used(url, default=o.storage is None):
        db = storages.open_storage(url, create_folder=o.storage is None)
        study = studies.open_study(plan, db, url, name)
        recover(study)
        done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
        cells = plan.enqueue(study)
        budget = budgets.Budget.grid(cells) if cells is not None else budgets.resolve(space.kind, o.trials, o.compute)
        record.write_study(study, budget=budget.describe() if budget.compute else max(budget.trials, done),
                           array_size=k, array_size_reason=why, **(dict(trials_per_gpu=per_gpu) if per_gpu else {}))
    if budget.spent(study.get_trials(deepcopy=False)):
        console.print(f"study {name} already has {done} finished trials (budget {budget.describe()}); nothing to do")
        return study
    if k > 1:
        console.print(f"training up to {k} trials at a time as one fused model ({why}); --fuse 1 turns it off")
    job = Job(plan, url, name, budget, o.timeout, k, o.sampler, o.pruner)
    storages.release(db)  # the workers open their own
    if n_workers == 1:
        work(job, 0, 0, console)
    else:
        threads = max(1, torch.get_num_threads() // n_workers)
        console.print(f"{n_workers} workers on {name}, {threads} CPU thread(s) each")
        jobs = [(_on_device(job, devices[i % len(devices)]) if devices else job, i, threads) for i in range(n_workers)]
        run_processes(work, jobs)
    return optuna.load_study(study_name=name, storage=storages.open_storage(url))


def _on_device(job: Job, device: str) -> Job:
    return replace(job, plan=replace(job.plan, fixed=job.plan.fixed | {"device": device}))


def work(job: Job, index: int, threads: int, console: Console | None = None) -> None:
    """Worker `index`: trains trials of the stored study until the shared budget is spent."""
    if threads:
        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = job.plan.defaults.epochs  # --set epochs=N applies to the pruner too
    db = storages.open_storage(job.url)
    try:
        _work(job, index, db, epochs, console)
    finally:
        storages.release(db)


def _work(job: Job, index: int, db: optuna.storages.BaseStorage, epochs: int, console: Console | None) -> None:
    # each worker's sampler has its own seed: workers must not propose the same trials
    study = optuna.load_study(
        study_name=job.name, storage=db,
        sampler=studies.sampler(job.plan.kind, job.plan.seed + index, epochs, job.budget, job.sampler),
        pruner=job.budget.pruner(studies.pruner(job.plan.kind, epochs, job.budget, job.pruner), epochs),
    )
    trials = study.get_trials(deepcopy=False)
    live = console is not None
    with StudyProgress(console or make_console(), budgets.progress_total(job.budget, trials, epochs),
                       sum(t.state in FINISHED for t in trials), live=live,
                       prefix="" if live else f"worker {index}: ") as progress:
        _until_spent(study, job, Worker(study, job.plan, job.budget, job.url, progress, fuse=job.fuse))


def _until_spent(study: optuna.Study, job: Job, worker: Worker) -> None:
    budget, deadline = job.budget, None if job.timeout is None else time.monotonic() + job.timeout
    while True:
        trials = study.get_trials(deepcopy=False)
        room = budget.trials_to_start(trials)
        if budget.max_attempts is not None:  # a worker whose every trial fails still ends
            left_attempts = budget.max_attempts - worker.attempts
            room = left_attempts if room is None else min(room, left_attempts)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        if room is None or room > 0:
            with one_line_failures(job.url):
                worker.train(min(job.fuse, room or job.fuse))
        elif (not any(t.state == TrialState.RUNNING for t in trials) or budget.spent(trials)
              or budget.max_attempts is not None and worker.attempts >= budget.max_attempts):
            return
        else:  # others' trials hold the rest and may still die or be pruned: wait, retrying dead ones
            time.sleep(POLL_SECONDS)
            retry_dead(study)
