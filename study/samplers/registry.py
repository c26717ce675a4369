"""The sampler and pruner a search uses, sized to its budget; the measurements behind each choice are
in docs/search.md (`python docs/probes/first_rung.py`, `python -m study bench --only search`).

- Start-up: TPE's and GPSampler's start-up is a third of the full-length trials the budget buys,
  at least MIN_STARTUP and at most Optuna's 10. Optuna's fixed 10 was the whole of the shipped
  10-trial budget: the search was random search plus trial 0.
- Start-up trials spread over the space (study/samplers/startup.py): each takes, for every parameter, a
  choice or a part of the range no earlier trial holds. Three random start-up trials left one of
  `width`'s choices untried on most seeds, and TPE seldom went there. At full scale, with the
  first rung below, spread start-up beat random search on 4 seeds of 5, random start-up on 2.
- TPE is multivariate (joint Parzen estimators): the space's knobs interact (lr with width and
  weight decay), which independent TPE cannot see.
- First rung: the first epoch whose validation accuracy ranks trials as their final accuracy
  does, as a fraction of the epochs, FIRST_RUNG_FRACTION, measured on the laptop space. Before
  it, under the one-cycle warm-up, configurations still sit near chance (0.10) and a rung there
  prunes on noise; from it on, the ranking is as good as it gets before the last epochs.
- Reduction factor: 2 (keep half) when the budget buys fewer than SMALL_BUDGET_TRIALS full
  trials, else Optuna's 3: a rung ranks trials well but not perfectly, and with a dozen trials
  keeping a third loses the best one too often.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import optuna

from study.errors import UserError
from study.samplers.startup import SpreadStartup

MIN_STARTUP = 3  # fewer and TPE's "good" group is one trial: it only copies the best so far
MAX_STARTUP = 10  # Optuna's default
FIRST_RUNG_FRACTION = 0.4  # measured on the laptop space: epoch 4 of 10 ranks as the final does (Spearman 0.77); docs/search.md
SMALL_BUDGET_TRIALS = 30
DEFAULT_FULL_TRIALS = 10  # a seconds budget, whose trial count is unknown before it runs


def full_trials(budget: Any, epochs: int) -> int:
    """How many full-length trials a budget (study.search.budget.Budget, or None) buys."""
    if budget is None:
        return DEFAULT_FULL_TRIALS
    limits = [budget.epochs // max(1, epochs)] if budget.epochs is not None else []
    limits += [budget.trials] if budget.trials is not None else []
    return max(1, min(limits)) if limits else DEFAULT_FULL_TRIALS


def startup_trials(full: int) -> int:
    return max(MIN_STARTUP, min(MAX_STARTUP, full // 3))


SamplerFactory = Callable[[int, int], optuna.samplers.BaseSampler]  # (seed, full-length trials) -> sampler
PrunerFactory = Callable[[int, int], optuna.pruners.BasePruner]  # (epochs, full-length trials) -> pruner


def tpe(seed: int, full: int) -> optuna.samplers.TPESampler:
    """Multivariate TPE with Optuna's random start-up trials: what "tpe" wraps in its spread start-up."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(full), multivariate=True)


# name -> sampler(seed, full-length trials the budget buys): the names a space may give; the torchvision-style registry
SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": lambda seed, full: SpreadStartup(tpe(seed, full), startup_trials(full), seed),
    "gp": lambda seed, full: SpreadStartup(
        optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials(full)), startup_trials(full), seed),
    "random": lambda seed, full: optuna.samplers.RandomSampler(seed=seed),
    "grid": lambda seed, full: optuna.samplers.BruteForceSampler(seed=seed),
}


def _known(registry: dict[str, Any], what: str, name: str) -> Any:
    if name not in registry:
        raise UserError(f"unknown {what} {name!r}; choose one of: {', '.join(registry)}")
    return registry[name]


def sampler(name: str, seed: int, full: int = DEFAULT_FULL_TRIALS) -> optuna.samplers.BaseSampler:
    """The sampler called `name`, its start-up sized to `full` trials."""
    return _known(SAMPLERS, "sampler", name)(seed, full)


def first_rung(epochs: int) -> int:
    return max(1, min(epochs, math.ceil(FIRST_RUNG_FRACTION * epochs)))


def reduction_factor(full: int) -> int:
    return 2 if full < SMALL_BUDGET_TRIALS else 3


def _successive_halving(epochs: int, full: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung(epochs),
                                                  reduction_factor=reduction_factor(full))


def _hyperband(epochs: int, full: int) -> optuna.pruners.BasePruner:
    """Hyperband, or under SMALL_BUDGET_TRIALS its first bracket alone: successive halving from the
    first rung. Its other brackets prune later (first at epoch 8 of 10 on the laptop space), too late
    to buy a small budget much, and each would rank only its own share of a dozen trials."""
    if full < SMALL_BUDGET_TRIALS:
        return _successive_halving(epochs, full)
    return optuna.pruners.HyperbandPruner(min_resource=first_rung(epochs), max_resource=epochs,
                                          reduction_factor=reduction_factor(full))


# name -> pruner(epochs, full-length trials): the names a space may give, each built from the measured first rung
# and factor
PRUNERS: dict[str, PrunerFactory] = {
    "hyperband": _hyperband,
    "successive_halving": _successive_halving,
    "median": lambda epochs, full: optuna.pruners.MedianPruner(
        n_startup_trials=startup_trials(full), n_warmup_steps=first_rung(epochs)),
    # keeps the top third at every epoch from the first rung: a stricter median
    "percentile": lambda epochs, full: optuna.pruners.PercentilePruner(
        100 * 2 / 3, n_startup_trials=startup_trials(full), n_warmup_steps=first_rung(epochs)),
    "none": lambda epochs, full: optuna.pruners.NopPruner(),
}


def pruner(name: str, epochs: int, full: int = DEFAULT_FULL_TRIALS) -> optuna.pruners.BasePruner:
    """The pruner called `name`, its first rung at the measured epoch and its reduction factor from the budget."""
    return _known(PRUNERS, "pruner", name)(epochs, full)
