"""One trial trained and its outcome stored: a diverged or out-of-memory run fails alone with its reason,
a failure of the environment is stored as such so that the next run re-queues it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from study.config import Config
from study.engine.results import Callbacks, Diverged, EpochResult, Metrics, Stop
from study.engine.train import train
from study.errors import UserError, one_line, out_of_memory
from study.search.budget import Budget
from study.search.progress import StudyProgress
from study.search.recovery import deferred_stop_signals, own
from study.spaces.kinds import Plan
from study.store import optuna_internals as internals
from study.store import record, vocabulary
from study.store.folders import artifact_store, checkpoint_dir
from study.store.vocabulary import INTERRUPTED


def train_trial(config: Config, trial: optuna.Trial, progress: StudyProgress, store: Any,
                checkpoint: Path | None = None, test: bool = False) -> float:
    """Train one trial; a diverged or out-of-memory run fails alone with its reason stored.

    A failure of the environment (interrupt, device, disk) is stored as such, so that the next run
    re-queues the trial, and its checkpoint is kept for that retry; the checkpoint outlives the
    trial only then.
    Returns the validation accuracy, or with `test` (the final scoring only) the test accuracy.
    """
    progress.start_trial(trial.number, config.epochs)
    reports = TrialReports([trial], store)
    with stored_failures([trial], checkpoint):
        try:
            metrics = train(config, callbacks=reports.callbacks(progress), test=test, checkpoint=checkpoint)
        except Stop as stop:
            raise optuna.TrialPruned(str(stop)) from None
    _remove(checkpoint)
    return metrics.test_accuracy if test else metrics.val_accuracy


class TrialReports:
    """What a study hears of training: each member's Optuna trial (None: a member no trial follows)
    is told its validation accuracy after every epoch, its pruner may stop it, and its metrics are
    stored as its user attributes however the run ends (big ones in `artifact_store` when given)."""

    def __init__(self, trials: list[optuna.Trial | None], artifact_store: Any = None) -> None:
        self.trials, self.artifact_store = trials, artifact_store

    def result(self, result: EpochResult) -> None:
        trial = self.trials[result.member]
        if trial is None:
            return
        trial.report(result.val_accuracy, result.epoch)
        if trial.should_prune():
            raise Stop(f"pruned after epoch {result.epoch} at val_accuracy {result.val_accuracy:.4f}")

    def end(self, member: int, metrics: Metrics) -> None:
        if self.trials[member] is not None:
            record.store_metrics(self.trials[member], metrics, self.artifact_store)

    def callbacks(self, progress: StudyProgress | None = None) -> Callbacks:
        """These reports, with `progress` shown after every step and the first member's every epoch."""
        if progress is None:
            return Callbacks(result=self.result, end=self.end)
        return Callbacks(step=progress.on_step, epoch=lambda members: progress.on_epoch(members[0]), result=self.result,
                         end=self.end)


@contextlib.contextmanager
def stored_failures(trials: list[optuna.Trial], checkpoint: Path | None) -> Iterator[None]:
    """Why training `trials` (one, or a fused array's members) failed, stored with each of them.

    Divergence and running out of memory are the configuration's: the checkpoint goes. An interrupt
    or a failure of the environment (device, disk) is not: the checkpoint stays for the retry the
    next run queues, and the environment's failure becomes a one-line UserError.
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        _write(trials, INTERRUPTED)
        exc.marked = [t.number for t in trials]  # what the command line's last words name
        raise
    except (Diverged, RuntimeError) as exc:
        # torch raises OutOfMemoryError on GPUs only; its CPU allocator raises a plain RuntimeError
        oom = out_of_memory(exc)
        if not (oom or isinstance(exc, Diverged)):
            raise
        reason = one_line(exc) if not oom else vocabulary.out_of_memory(str(exc)[str(exc).find("Default"):].splitlines()[0])
        _write(trials, reason)
        _remove(checkpoint)
        if oom and not isinstance(exc, torch.OutOfMemoryError):
            raise torch.OutOfMemoryError(reason) from None  # among the failures optimize catches
        raise
    except optuna.TrialPruned:
        _remove(checkpoint)
        raise
    except (UserError, OSError) as exc:
        message = str(exc) if isinstance(exc, UserError) else f"{exc.strerror}: {exc.filename}"
        _write(trials, vocabulary.environment(message))
        numbers = ", ".join(str(t.number) for t in trials)
        raise UserError(f"trial {numbers} stopped: {message}; fix it and run the same command to resume") from None


def _write(trials: list[optuna.Trial], reason: str) -> None:
    for trial in trials:
        record.write_trial(trial, fail_reason=reason)


def train_told(study: optuna.Study, config: Config, progress: StudyProgress, store: Any, test: bool = False,
               **attrs: Any) -> float:
    """Ask `study` for a trial outside `optimize`, label it with `attrs` (record.TrialInfo fields),
    train `config` in it and tell the result.

    For studies that walk their own list of runs (ablation path, final scoring): a diverged or
    out-of-memory run is told FAILED and returns NaN; an interrupt is told FAILED and re-raised,
    so that the storage holds no trial left RUNNING. The trial is owned from its creation: one
    whose process was killed is failed by the next run (`recovery.fail_dead`).
    """
    trial = None
    try:
        with deferred_stop_signals():  # a stop between creating and owning would leave a trial nobody owns
            trial = study.ask()
            own(study, trial)
        record.write_trial(trial, **attrs)
        value = train_trial(config, trial, progress, store, test=test)
    except (Diverged, torch.OutOfMemoryError):
        study.tell(trial, state=TrialState.FAIL)
        value = float("nan")
    except BaseException as exc:
        if trial is not None:
            if isinstance(exc, KeyboardInterrupt) and not record.trial_info(
                    internals.stored(study, trial)).fail_reason:  # stopped before training began
                _write([trial], INTERRUPTED)
                exc.marked = [trial.number]
            study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        study.tell(trial, value)
    progress(study, study.get_trials(deepcopy=False)[trial.number])
    return value


def _remove(checkpoint: Path | None) -> None:
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)


class Objective:
    """A worker's objective: each trial owned, admitted by the budget, configured by the space's kind, trained."""

    def __init__(self, study: optuna.Study, plan: Plan, budget: Budget, url: str, progress: StudyProgress) -> None:
        self.study, self.plan, self.budget = study, plan, budget
        self.progress, self.attempts = progress, 0  # attempts: trials this worker started
        self.store = artifact_store(url)
        self.checkpoints = checkpoint_dir(url, record.study_info(study).uid)

    def __call__(self, trial: optuna.Trial) -> float:
        own(self.study, trial)
        self.attempts += 1
        frozen = self.budget.claim(self.study, trial)
        config = configure(self.plan, trial)
        checkpoint = self.checkpoints / f"trial-{original_number(frozen)}.pt"
        return train_trial(config, trial, self.progress, self.store, checkpoint)


def configure(plan: Plan, trial: optuna.Trial) -> Config:
    """The trial's configuration; where the space's own code fails (its `suggest` raising, or returning
    settings that are invalid), the trial stores why and the run stops with one line."""
    try:
        return plan.config(trial)
    except optuna.TrialPruned:
        raise
    except Exception as exc:
        what = str(exc) if isinstance(exc, UserError) else f"failed ({one_line(exc)})"
        record.write_trial(trial, fail_reason=vocabulary.suggest_failed(what))
        raise UserError(f"trial {trial.number}: the space's suggest() {what}; fix the space file and run the same "
                        "command to go on") from None


def original_number(trial: optuna.trial.FrozenTrial) -> int:
    """The number of the trial a retry repeats (re-queued by this project, or by Optuna's heartbeat),
    else its own: what names its checkpoint, so that the retry resumes it."""
    retry_of = record.trial_info(trial).retry_of
    original = retry_of if retry_of is not None else RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return trial.number if original is None else original
