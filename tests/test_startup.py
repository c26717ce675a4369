"""Spread start-up trials (study.samplers.startup): every choice and every part of a range tried before TPE takes over."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from study.samplers import registry
from study.samplers.startup import SpreadStartup, spread

DEFAULTS = {"lr": 0.05, "width": 1.0, "depth": 2}


def _objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-3, 2e-1, log=True)
    width = trial.suggest_categorical("width", [0.5, 1.0, 1.5])
    depth = trial.suggest_int("depth", 0, 4)
    return width - abs(math.log(lr / 0.03)) - 0.1 * depth


def _study(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(DEFAULTS)  # trial 0, the space's defaults, as the runner enqueues it
    study.optimize(_objective, n_trials=trials)
    return study


def _log_third(lr: float) -> int:
    return min(2, int(3 * math.log(lr / 1e-3) / math.log(2e-1 / 1e-3)))


@pytest.mark.parametrize("seed", range(10))
def test_the_default_sampler_tries_every_width_and_every_third_of_the_lr_range_in_its_start_up(seed):
    study = _study(registry.sampler("tpe", seed, full=10), trials=3)  # start-up: 3 trials, trial 0 included
    params = [t.params for t in study.trials]
    assert params[0] == DEFAULTS
    assert sorted(p["width"] for p in params) == [0.5, 1.0, 1.5]
    assert sorted(_log_third(p["lr"]) for p in params) == [0, 1, 2]
    assert len({min(2, p["depth"] * 3 // 4) for p in params}) == 3  # depth 0-4 in three parts: 0-1, 2, 3-4


def test_random_start_up_leaves_a_width_untried_on_most_seeds():
    # why the start-up is spread: the former default's three random start-up trials miss a width on 7 seeds in 9
    missed = [len({t.params["width"] for t in _study(registry.tpe(seed, 10), 3).trials}) < 3
              for seed in range(20)]
    assert sum(missed) >= 10


def test_after_the_start_up_the_wrapped_sampler_proposes_and_the_draws_are_seeded():
    a = _study(registry.sampler("tpe", 3, full=10), trials=30)
    b = _study(registry.sampler("tpe", 3, full=10), trials=30)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    # TPE, once it has a dozen trials to model, goes where the objective is high: the widest net, lr near 0.03
    later = [t.params for t in a.trials[15:]]
    assert sum(p["width"] == 1.5 for p in later) > len(later) / 2
    assert np.median([abs(math.log(p["lr"] / 0.03)) for p in later]) < 1.0


def test_spread_picks_an_untried_value_and_falls_back_to_random_once_all_are_taken():
    rng = np.random.default_rng(0)
    widths = CategoricalDistribution([0.5, 1.0, 1.5])
    assert {spread(widths, [1.0, 0.5], 3, rng) for _ in range(5)} == {1.5}
    assert {spread(widths, [1.0, 0.5, 1.5], 3, rng) for _ in range(50)} == {0.5, 1.0, 1.5}
    lr = FloatDistribution(1e-3, 1e-1, log=True)
    assert all(10 ** -2 <= spread(lr, [2e-3], 2, rng) <= 1e-1 for _ in range(20))  # the upper log half
    step = FloatDistribution(0.0, 1.0, step=0.25)
    assert all(spread(step, [0.1], 4, rng) in (0.25, 0.5, 0.75, 1.0) for _ in range(20))
    depth = IntDistribution(0, 4)
    assert {spread(depth, [0, 2], 3, rng) for _ in range(30)} == {3, 4}
    assert {spread(depth, [1, 2, 3], 3, rng) for _ in range(30)} == {0, 4}  # every part taken: an untried value


def test_the_spread_start_up_wraps_gp_too():
    sampler = registry.sampler("gp", 0, full=10)
    assert isinstance(sampler, SpreadStartup)
    study = _study(sampler, trials=4)
    assert sorted(t.params["width"] for t in study.trials[:3]) == [0.5, 1.0, 1.5]
