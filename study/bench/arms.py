"""The search bench's arms: each a sampler and a pruner, passed to the runner as its own.

Arms that a space may name take theirs from study.samplers.registry; the rest (Optuna's own defaults,
TPE with random start-up trials) exist for the comparison alone and stay here, out of the names a space
may give. Every factory is a module-level function or a partial of one, so an arm pickles into the
spawned processes of `--jobs`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import optuna

from study.samplers import registry
from study.samplers.registry import PrunerFactory, SamplerFactory


def _named_sampler(name: str) -> SamplerFactory:
    return functools.partial(registry.sampler, name)


def _named_pruner(name: str) -> PrunerFactory:
    return functools.partial(registry.pruner, name)


def tpe_optuna(seed: int, full: int) -> optuna.samplers.BaseSampler:
    """Optuna's own TPE defaults: 10 random start-up trials, independent parameters."""
    return optuna.samplers.TPESampler(seed=seed)


def hyperband_optuna(epochs: int, full: int) -> optuna.pruners.BasePruner:
    """Hyperband as Optuna ships it: rungs from epoch 1, reduction factor 3."""
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)


@dataclass(frozen=True)
class Arm:
    """A sampler and a pruner; None takes the space's own (study.samplers.registry)."""

    sampler: SamplerFactory | None = None
    pruner: PrunerFactory | None = None


ARMS = {
    "random": Arm(_named_sampler("random"), _named_pruner("none")),
    # pruning without a model: what TPE adds
    "random_successive_halving": Arm(_named_sampler("random"), _named_pruner("successive_halving")),
    "default": Arm(),
    "optuna_defaults": Arm(tpe_optuna, hyperband_optuna),  # TPE's 10 start-up trials, Hyperband from epoch 1
    "tpe_random_startup": Arm(registry.tpe),  # random start-up trials in place of the spread ones
    "tpe_no_pruning": Arm(_named_sampler("tpe"), _named_pruner("none")),
    "tpe_successive_halving": Arm(_named_sampler("tpe"), _named_pruner("successive_halving")),
    "tpe_median": Arm(_named_sampler("tpe"), _named_pruner("median")),
    "tpe_percentile": Arm(_named_sampler("tpe"), _named_pruner("percentile")),
    "gp_hyperband": Arm(_named_sampler("gp"), _named_pruner("hyperband")),
}
NO_PRUNING = ARMS["tpe_no_pruning"].pruner  # full-length trials
