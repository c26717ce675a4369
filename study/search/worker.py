"""A worker's batch: ask K trials (K = 1 included), admit those the budget has room for, train them in
arrays that fuse (study/search/arrays.py), one array at a time (study/search/trial.py)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from study.config import Config
from study.engine.array import FUSIBLE
from study.errors import UserError
from study.search.arrays import split_into_arrays
from study.search.budget import Budget, BudgetReached, cell_owner
from study.search.progress import StudyProgress
from study.search.recovery import deferred_stop_signals, fail_running, record_owner
from study.search.trial import Outcome, configure, tell, train_trials
from study.spaces.kinds import Grid, Plan, Search
from study.store import optuna_internals as internals
from study.store import record
from study.store.folders import artifact_store, checkpoint_dir
from study.store.vocabulary import INTERRUPTED, SUGGEST_FAILED


@dataclass
class Worker:
    """What one worker process holds while it trains a study's trials: the study, the run's plan (the
    space with its fixed settings and seed), the budget, the progress display and the folders."""

    study: optuna.Study
    plan: Plan
    budget: Budget
    url: str
    progress: StudyProgress
    fuse: int = 1  # trials asked at once, trained as one model where their settings allow
    attempts: int = 0  # trials this worker started
    store: Any = field(init=False)
    checkpoints: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store = artifact_store(self.url)
        self.checkpoints = checkpoint_dir(self.url, record.study_info(self.study).uid)

    def train(self, n: int) -> None:
        """Ask `n` trials, train those the budget admits, in groups that fuse, and tell each how it ended.

        Each trial beats, as optimize's do, from its creation until the batch ends, so that another
        machine sees it live while it waits for an earlier group. Whatever ends the batch early (an
        interrupt, a suggest that raises, a failing disk), no trial it created is left running: those
        not yet told are stored as interrupted, and the next run re-queues them."""
        optuna.storages.fail_stale_trials(self.study)  # others' dead trials, re-queued as optimize does
        created: list[optuna.Trial] = []
        with contextlib.ExitStack() as beats:
            try:
                asked = ask(self.study, n, self.plan, beats, created)
                self.attempts += len(asked)
                for array in split_into_arrays([(t, c) for t, c in asked if self._admitted(t)]):
                    # an array out of memory fails its own trials (failures_recorded); the next one still trains
                    with contextlib.suppress(torch.OutOfMemoryError):
                        train_trials(self.study, array, self.progress, self.store, self.checkpoints,
                                    labelled=self.fuse > 1)
            except BaseException:
                with deferred_stop_signals():  # a second Ctrl-C must not cut the marking short
                    fail_running(self.study, created, INTERRUPTED)
                raise

    def _admitted(self, trial: optuna.Trial) -> bool:
        try:
            self.budget.claim(self.study, trial)
        except BudgetReached:
            tell(self.study, trial, Outcome.FAILED)  # claim stored why
            self.progress(self.study, internals.stored(self.study, trial))
            return False
        return True


def ask(study: optuna.Study, n: int, plan: Plan, beats: contextlib.ExitStack,
        created: list[optuna.Trial]) -> list[tuple[optuna.Trial, Config]]:
    """`n` trials and their configurations. Each trial is owned by this process and beats (in `beats`)
    from the moment it exists, and is listed in `created` at once, so that whatever stops this
    process before it tells the trial, its caller or the next run finds the trial. A search's trials
    after the first are enqueued with the first one's non-fusible parameters, so the sampler
    proposes only what the array can vary."""
    asked: list[tuple[optuna.Trial, Config]] = []
    shared: dict[str, Any] = {}
    grid = isinstance(plan.kind, Grid)
    for i in range(n):
        if i and isinstance(plan.kind, Search):
            study.enqueue_trial(shared, skip_if_exists=False)
        with deferred_stop_signals():  # a stop between creating and owning would leave a trial nobody owns
            trial = _pop_cell(study, asked[0][0].params if asked else None) if grid else None
            if trial is None and (i == 0 or not grid):
                trial = study.ask()  # a grid's first member: a trial that only steps aside still leaves the queue
            if trial is None:
                break
            record_owner(study, trial)
            created.append(trial)
        beats.enter_context(internals.heartbeat_thread(study, trial))
        try:
            config = configure(plan, trial)
        except UserError:  # the space's suggest: the trial it was asked for fails with the reason, one line
            fail_running(study, [trial], record.trial_info(internals.stored(study, trial)).fail_reason
                         or SUGGEST_FAILED)
            raise
        asked.append((trial, config))
        if i == 0:
            shared = {p: v for p, v in trial.params.items() if p not in FUSIBLE and p in config.to_dict()}
    return asked


def _pop_cell(study: optuna.Study, like: dict[str, Any] | None) -> optuna.Trial | None:
    """`study.ask()` for a grid's array: a queued trial that owns its cell (study/search/budget.py), and with
    `like` (the first member's parameters) one whose parameters outside FUSIBLE are the same first, so
    that it fuses with it; None where no queued trial owns its cell. Optuna pops the lowest-numbered
    queued trial, which may be a cell queued twice by nodes that start at once: the array would lose
    the member that steps aside."""
    trials = internals.all_trials(study)
    owners = [t for t in trials if t.state == TrialState.WAITING
              and getattr(cell_owner(trials, record.cell(t)), "number", None) == t.number]
    if like is not None:
        def rest(params: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in params.items() if k not in FUSIBLE}

        owners.sort(key=lambda t: rest(t.system_attrs["fixed_params"]) != rest(like))  # stable: by number within
    for t in owners:
        trial = internals.take_waiting(study, t)
        if trial is not None:
            return trial
    return None
