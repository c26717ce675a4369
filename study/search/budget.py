"""A study's budget: trials, or compute (epochs trained, or seconds of training), shared by all workers.

A trial budget counts finished trials, so the epochs that pruning saves buy nothing. A compute
budget counts what was really trained, read from the storage, so resume and every worker see the
same figure:
- epochs: the per-epoch values every trial reports (`trial.report`), over trials of any state,
  except failed trials whose values a heartbeat retry inherited (counted once, in the retry);
- seconds: the wall time of those trials (a running one's so far).

Epochs are handed out one at a time: a running trial holds the epoch it is training, so the
count that decides whether another epoch may start is `reported + running`. A trial stops (it
is pruned, reason `budget`) when that count would pass the budget, and a worker starts a new
trial only while it would not; so a study ends at exactly its epoch budget, the last trial cut
short if need be. Two trials starting at once settle it by trial number (Optuna numbers trials
atomically): the later one counts the earlier as running. A seconds budget is checked at the
same points, so it ends at the first epoch boundary past it (at most one epoch per worker over).

A grid's budget (ablation, comparison) is its cells: spent when every cell has a finished trial and
nothing is left in the queue. Nodes that start at once may each queue a cell, so a cell may have
several trials; the storage has no lock the gRPC proxy passes on, so each trial settles it when it
starts, from the stored trials: a finished trial of the cell, else its lowest-numbered live one, owns
the cell, and every other trial of it steps aside untrained (vocabulary.STEPPED_ASIDE). A trial reads
this once it is popped from the queue, when every lower-numbered trial of its cell is queued, running,
finished or failed for good (a retry is a new, higher-numbered trial): so all read the same owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from study.errors import UserError
from study.spaces.kinds import Search
from study.store import record, vocabulary
from study.store.states import FINISHED, LIVE
from study.store.vocabulary import StoppedBy

_UNITS = {"ep": ("epochs", 1), "s": ("seconds", 1), "m": ("seconds", 60), "h": ("seconds", 3600)}


class BudgetReached(Exception):
    """This trial has no room in the budget: other workers took the rest first."""


def parse(text: str) -> dict[str, float]:
    """`--budget 120ep` -> {"epochs": 120}; `600s`, `10m`, `2h` -> {"seconds": ...}."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ep|s|m|h)\s*", text or "")
    if not match or float(match[1]) <= 0:
        raise UserError(f"--budget {text!r} is invalid: write epochs as e.g. 120ep, or time as 600s, 10m or 2h")
    kind, scale = _UNITS[match[2]]
    if kind == "epochs" and not match[1].isdigit():
        raise UserError(f"--budget {text!r} is invalid: epochs are whole numbers, e.g. 120ep")
    return {kind: int(match[1]) if kind == "epochs" else float(match[1]) * scale}


@dataclass(frozen=True)
class Budget:
    """What a study may spend; None means no limit of that kind (at least one is set)."""

    trials: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    cells: frozenset[tuple[str, int]] | None = None  # a grid's: `trials` is their number, each trained once

    @classmethod
    def grid(cls, cells: frozenset[tuple[str, int]]) -> Budget:
        return cls(trials=len(cells), cells=cells)

    @property
    def compute(self) -> bool:
        return self.epochs is not None or self.seconds is not None

    def describe(self) -> str:
        parts = [f"{self.epochs} epochs" if self.epochs else "", f"{self.seconds:.0f} s" if self.seconds else "",
                 f"{self.trials} trials" if self.trials else ""]
        return " or ".join(p for p in parts if p)

    # --- what has been spent, from the stored trials -------------------------------------------------
    def spent_epochs(self, trials: list[FrozenTrial]) -> int:
        return sum(len(t.intermediate_values) for t in counted(trials))

    def spent_seconds(self, trials: list[FrozenTrial]) -> float:
        now = datetime.now()
        return sum(((t.datetime_complete or now) - t.datetime_start).total_seconds()
                   for t in counted(trials) if t.datetime_start is not None)

    def spent(self, trials: list[FrozenTrial]) -> bool:
        """Nothing more may start: some limit is used up by what finished (running trials aside)."""
        if self.cells is not None:
            return not self.cells - finished_cells(trials) and not any(t.state == TrialState.WAITING for t in trials)
        return ((self.trials is not None and sum(t.state in FINISHED for t in trials) >= self.trials)
                or (self.epochs is not None and self.spent_epochs(trials) >= self.epochs)
                or (self.seconds is not None and self.spent_seconds(trials) >= self.seconds))

    def _room(self, trials: list[FrozenTrial], holders: int) -> bool:
        """Whether `holders` running trials may each train one more epoch (or start)."""
        if self.epochs is not None and self.spent_epochs(trials) + holders > self.epochs:
            return False
        return self.seconds is None or self.spent_seconds(trials) < self.seconds

    # --- the three points where the runner asks ------------------------------------------------------
    def claim(self, study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
        """This trial as stored, if the budget has room for it; else it steps aside (BudgetReached)."""
        trials = study.get_trials(deepcopy=False)
        if self.cells is not None:
            return self._claim_cell(trial, trials)
        earlier = [t for t in trials if t.number < trial.number]
        if self.trials is not None and sum(t.state in LIVE for t in earlier) >= self.trials:
            room = False
        else:
            # this trial and the earlier running ones each hold an epoch; later ones count this one
            room = self._room(trials, 1 + sum(t.state == TrialState.RUNNING for t in earlier))
        if not room:
            reason = f"budget of {self.describe()} already taken by other workers"
            record.write_trial(trial, fail_reason=reason)
            raise BudgetReached(reason)
        return next(t for t in trials if t.number == trial.number)

    def _claim_cell(self, trial: optuna.Trial, trials: list[FrozenTrial]) -> FrozenTrial:
        """This grid trial as stored, if it owns its cell; else it steps aside (BudgetReached), its
        reason stored: another trial's cell, or no cell at all (asked when the queue was empty)."""
        this = next(t for t in trials if t.number == trial.number)
        cell = record.cell(this)
        owner = cell_owner(trials, cell)
        if owner is not None and owner.number == this.number:
            return this
        reason = vocabulary.STEPPED_ASIDE + (f"cell {cell[0]}, seed {cell[1]} is trial {owner.number}'s" if owner is not None
                                         else "no cell was left in the queue")
        record.write_trial(trial, fail_reason=reason)
        raise BudgetReached(reason)

    def may_continue(self, study: optuna.Study) -> bool:
        """Whether a running trial that just reported an epoch may train another."""
        trials = study.get_trials(deepcopy=False)
        return self._room(trials, sum(t.state == TrialState.RUNNING for t in trials))

    def trials_to_start(self, trials: list[FrozenTrial]) -> int | None:
        """How many trials a worker may start now: 0 while none fits (running trials may hold the
        rest, and may still be pruned or die), None where only compute limits it."""
        if self.cells is not None:  # every queued trial is popped: it trains its cell or steps aside
            return sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if self.spent(trials) or not self._room(trials, running + 1):
            return 0
        if self.trials is None:
            return None
        return max(0, self.trials - sum(t.state in FINISHED for t in trials) - running)

    @property
    def max_attempts(self) -> int | None:
        """Trials one worker starts at most: a worker whose every trial fails (and so spends
        nothing) still ends. A seconds budget ends by itself, and a grid's once its queue is empty."""
        if self.cells is not None:
            return None
        return self.trials if self.trials is not None else self.epochs

    def pruner(self, inner: optuna.pruners.BasePruner, epochs: int) -> BudgetPruner:
        return BudgetPruner(inner, self, epochs)


def finished_cells(trials: list[FrozenTrial]) -> set[tuple[str, int]]:
    return {record.cell(t) for t in trials if t.state in FINISHED}


def cell_owner(trials: list[FrozenTrial], cell: tuple[str, int] | None) -> FrozenTrial | None:
    """The trial that trains `cell`: a finished one, else its lowest-numbered live one (None: no cell,
    or none live). Only queued trials count: one the sampler proposed (asked when the queue was empty,
    so without Optuna's "fixed_params") picks a cell at random and trains none."""
    if cell is None:
        return None
    mine = sorted((t for t in trials if t.state in LIVE and "fixed_params" in t.system_attrs and record.cell(t) == cell),
                  key=lambda t: (t.state not in FINISHED, t.number))
    return mine[0] if mine else None


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials whose reported epochs were trained, each epoch once (a retry inherits its original's)."""
    inherited = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return [t for t in trials if t.state != TrialState.WAITING and t.number not in inherited]


class BudgetPruner(optuna.pruners.BasePruner):
    """The space's pruner, plus a stop when the compute budget has no epoch left for this trial; never
    a trial that trained all its epochs.

    Wrapping also hides a HyperbandPruner from Optuna's sampler-side bracket filter
    (optuna.pruners._filter_study), which shows TPE only the trials of the current trial's bracket:
    at a budget of a dozen trials, that leaves it three or four, too few to model. Hyperband still
    prunes within brackets, which its own `prune` builds.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, budget: Budget, epochs: int) -> None:
        self.inner, self.budget, self.epochs = inner, budget, epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step or 0
        if step >= self.epochs:
            # fully trained, so it completes: successive halving has a rung at the last epoch
            # whenever epochs = first rung x a power of the factor (3 x 2 of the quick bench's 6)
            return False
        if self.budget.compute and not self.budget.may_continue(study):
            record.write_stored_trial(study, trial, stopped_by=StoppedBy.BUDGET)
            return True
        return self.inner.prune(study, trial)


def resolve(search: Search, trials: int | None, compute: dict[str, float] | None) -> Budget:
    """A search's budget: --budget / the space's budget_epochs (compute), else --trials / the space's trials.

    With a compute budget, a trial limit applies only when --trials is given as well.
    """
    compute = compute or ({"epochs": search.budget_epochs} if search.budget_epochs else {})
    return Budget(trials=trials, **compute) if compute else Budget(trials=trials or search.trials)


def progress_total(budget: Budget, trials: list[FrozenTrial], epochs: int) -> int:
    """Trials the progress bar expects: the trial limit, else the finished ones plus the full-length
    trials that the epochs left would buy (pruning makes it more)."""
    done = sum(t.state in FINISHED for t in trials)
    if budget.cells is not None:
        return done + len(budget.cells - finished_cells(trials))
    if budget.trials is not None or budget.epochs is None:
        return max(budget.trials or done + 1, done)
    return done + max(0, -(-(budget.epochs - budget.spent_epochs(trials)) // epochs))
