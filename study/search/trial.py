"""The one trial path: a group of trials (one, or several trained as one fused model) trained and each told
its Outcome. A diverged or out-of-memory run fails alone with its reason; a failure of the environment
is stored as such so that the next run re-queues it. study/search/worker.py asks the trials."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from study.config import Config
from study.engine.array import train_array
from study.engine.results import Callbacks, Diverged, Ending, EpochResult, Metrics, Stop
from study.errors import UserError, one_line, out_of_memory
from study.search.progress import StudyProgress
from study.search.recovery import deferred_stop_signals, record_owner
from study.spaces.kinds import Plan
from study.store import optuna_internals as internals
from study.store import record, vocabulary
from study.store.vocabulary import INTERRUPTED, array_label, diverged


class Outcome(Enum):
    """How a trial ended, as the study is told it."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


_STATES = {Outcome.PRUNED: TrialState.PRUNED, Outcome.FAILED: TrialState.FAIL}
_OUTCOMES = {Ending.COMPLETE: Outcome.COMPLETE, Ending.PRUNED: Outcome.PRUNED, Ending.DIVERGED: Outcome.FAILED}


def tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome, value: float | None = None,
         reason: str | None = None) -> None:
    """Tell `study` how `trial` ended; a failure's `reason` is stored with it first."""
    if reason is not None:
        record.write_trial(trial, fail_reason=reason)
    with internals.stop_allowed(study):
        if outcome is Outcome.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=_STATES[outcome])


def train_trials(study: optuna.Study, group: list[tuple[optuna.Trial, Config]], progress: StudyProgress, store: Any,
                checkpoints: Path | None, test: bool = False, labelled: bool = False) -> list[float]:
    """Train one group (one trial, or several as one fused model), tell each member's trial how it
    ended, and return each one's validation accuracy (`test`: test accuracy), NaN where it failed.
    Where the worker fuses, every trial is `labelled` with its array, one of one included.

    A failure of the environment (interrupt, device, disk) is stored as such, so that the next run
    re-queues the trials, and their checkpoint is kept for that retry; it outlives them only then."""
    trials, configs = [t for t, _ in group], [c for _, c in group]
    checkpoint = None if checkpoints is None else checkpoints / _checkpoint_name(study, trials, labelled)
    if labelled:
        for t in trials:
            record.write_trial(t, array=array_label(trials[0].number, len(trials)))
    progress.start_trial(trials[0].number, configs[0].epochs)
    failure: BaseException | None = None
    try:
        with failures_recorded(trials, checkpoint):
            members = train_array(configs, callbacks=TrialReports(trials, store).callbacks(progress), checkpoint=checkpoint,
                                  test=test)
    except BaseException as exc:
        failure = exc
    if failure is not None:  # told outside the handler: a storage that fails to take it says so, not the failure
        for t in trials:
            tell(study, t, Outcome.FAILED)
        raise failure
    values = []
    for t, member in zip(trials, members):
        outcome = _OUTCOMES[member.status]
        value = member.metrics.test_accuracy if test else member.metrics.val_accuracy
        reason = diverged(member.reason) if member.status is Ending.DIVERGED else None
        tell(study, t, outcome, value if outcome is Outcome.COMPLETE else None, reason)
        values.append(value if outcome is Outcome.COMPLETE else float("nan"))
        progress(study, internals.stored(study, t))
    _remove(checkpoint)
    return values


def _checkpoint_name(study: optuna.Study, trials: list[optuna.Trial], array: bool) -> str:
    """A trial resumes from `trial-N.pt`, a fused array from `array-N-M-....pt`; N the number of the
    trial a retry repeats, so that the retry finds its original's file."""
    numbers = [str(original_number(internals.stored(study, t))) for t in trials]
    return f"array-{'-'.join(numbers)}.pt" if array else f"trial-{numbers[0]}.pt"


class TrialReports:
    """What a study hears of training: each member's Optuna trial is told its validation accuracy after
    every epoch, its pruner may stop it, and its metrics are stored as its user attributes however the
    run ends (big ones in `artifact_store` when given)."""

    def __init__(self, trials: list[optuna.Trial], artifact_store: Any = None) -> None:
        self.trials, self.artifact_store = trials, artifact_store

    def result(self, result: EpochResult) -> None:
        trial = self.trials[result.member]
        trial.report(result.val_accuracy, result.epoch)
        if trial.should_prune():
            raise Stop(f"pruned after epoch {result.epoch} at val_accuracy {result.val_accuracy:.4f}")

    def end(self, member: int, metrics: Metrics) -> None:
        record.store_metrics(self.trials[member], metrics, self.artifact_store)

    def callbacks(self, progress: StudyProgress | None = None) -> Callbacks:
        """These reports, with `progress` shown after every step and the first member's every epoch."""
        if progress is None:
            return Callbacks(result=self.result, end=self.end)
        return Callbacks(step=progress.on_step, epoch=lambda members: progress.on_epoch(members[0]), result=self.result,
                         end=self.end)


@contextlib.contextmanager
def failures_recorded(trials: list[optuna.Trial], checkpoint: Path | None) -> Iterator[None]:
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
            raise torch.OutOfMemoryError(reason) from None  # among the failures a worker goes on after
        raise
    except (UserError, OSError) as exc:
        message = str(exc) if isinstance(exc, UserError) else f"{exc.strerror}: {exc.filename}"
        _write(trials, vocabulary.environment(message))
        numbers = ", ".join(str(t.number) for t in trials)
        raise UserError(f"trial {numbers} stopped: {message}; fix it and run the same command to resume") from None


def _write(trials: list[optuna.Trial], reason: str) -> None:
    for trial in trials:
        record.write_trial(trial, fail_reason=reason)


def train_one_trial(study: optuna.Study, config: Config, progress: StudyProgress, store: Any, test: bool = False,
               **attrs: Any) -> float:
    """Ask `study` for one trial outside a search, label it with `attrs` (record.TrialInfo fields),
    train `config` in it and tell how it ended: the trial path of studies that walk their own list of
    runs (ablation path, test scoring). A diverged or out-of-memory run returns NaN; an interrupt is
    told FAILED and re-raised, so that the storage holds no trial left RUNNING. The trial is owned
    from its creation: one whose process was killed is failed by the next run (`recovery.fail_dead`)."""
    trial = None
    try:
        with deferred_stop_signals():  # a stop between creating and owning would leave a trial nobody owns
            trial = study.ask()
            record_owner(study, trial)
        record.write_trial(trial, **attrs)
        (value,) = train_trials(study, [(trial, config)], progress, store, None, test=test)
    except torch.OutOfMemoryError:  # told FAILED with its reason by train_trials
        progress(study, internals.stored(study, trial))
        return float("nan")
    except BaseException as exc:
        if trial is not None and internals.stored(study, trial).state == TrialState.RUNNING:  # stopped before training began
            if isinstance(exc, KeyboardInterrupt) and not record.trial_info(internals.stored(study, trial)).fail_reason:
                _write([trial], INTERRUPTED)
                exc.marked = [trial.number]
            tell(study, trial, Outcome.FAILED)
        raise
    return value


def _remove(checkpoint: Path | None) -> None:
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)


def configure(plan: Plan, trial: optuna.Trial) -> Config:
    """The trial's configuration; where the space's own code fails (its `suggest` raising, or returning
    settings that are invalid), the trial stores why and the run stops with one line."""
    try:
        return plan.config(trial)
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
