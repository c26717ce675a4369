"""The search bench's statistics on synthetic inputs: the exact sign-flip test, the interval that inverts
it, the probability of improvement, and the re-scored figures `summarize` reports; the arms it runs."""

import math
import pickle

import numpy as np
import optuna
import pytest
from scipy import stats

from study import paired
from study.bench import arms, search_figures
from study.bench import search as search_bench
from study.config import Config
from study.samplers import registry


def _scipy_p(d) -> float:
    return stats.permutation_test((np.asarray(d),), np.mean, permutation_type="samples", n_resamples=2 ** len(d),
                                  alternative="two-sided").pvalue


@pytest.mark.parametrize("n", [3, 5, 6, 8])
def test_sign_flip_p_is_scipys_exact_permutation_p(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = rng.normal(0.3, 1.0, n)
        assert paired.sign_flip(d)[0] == pytest.approx(_scipy_p(d))


@pytest.mark.parametrize("n", [6, 7, 8])
def test_sign_flip_interval_is_the_set_of_shifts_the_test_keeps(n):
    rng = np.random.default_rng(10 + n)
    d = rng.normal(0.5, 1.0, n)
    p, low, high = paired.sign_flip(d)
    assert math.isfinite(low) and math.isfinite(high) and low < d.mean() < high
    grid = np.linspace(d.min() - 1, d.max() + 1, 801)
    kept = [x for x in grid if _scipy_p(d - x) > 0.05]
    assert low - 1e-9 <= min(kept) and max(kept) <= high + 1e-9
    span = (max(kept) - min(kept)) / 100
    assert _scipy_p(d - (low - span)) <= 0.05 and _scipy_p(d - (high + span)) <= 0.05  # just outside: rejected
    assert (p < 0.05) == (not low <= 0 <= high)  # the interval and the p come from the same test


def test_five_seeds_bound_no_95_percent_interval_six_can():
    p, low, high = paired.sign_flip([0.01, 0.02, 0.03, 0.04, 0.05])  # every seed gains
    assert p == pytest.approx(2 / 32) and low == -math.inf and high == math.inf
    p, low, high = paired.sign_flip([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
    assert p == pytest.approx(2 / 64) and 0 < low and math.isfinite(high)


def test_sign_flip_interval_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    covered = [low <= 0.2 <= high for low, high in
               (paired.sign_flip(rng.normal(0.2, 1.0, 8))[1:] for _ in range(400))]
    assert 0.92 <= np.mean(covered) <= 0.99  # nominal 0.95; 400 draws: +-0.02 is one standard error x 2


def test_probability_of_improvement():
    assert paired.probability_of_improvement([0.6, 0.7, 0.8], [0.1, 0.2, 0.3])[0] == 1.0
    assert paired.probability_of_improvement([0.5, 0.5], [0.5, 0.5])[0] == 0.5
    point, low, high = paired.probability_of_improvement([0.3, 0.5, 0.2, 0.6], [0.4, 0.1, 0.25, 0.35])
    assert point == pytest.approx(11 / 16)  # of the 16 pairs, A is above B in 11
    assert 0 <= low <= point <= high <= 1


def test_summarize_judges_arms_on_their_rescored_accuracy():
    from test_search_budget import _trial

    studies = {
        "random": [[_trial([0.2, 0.3], True, True), _trial([0.2, 0.5], True)] for _ in range(6)],
        "default": [[_trial([0.2, 0.3], True, True), _trial([0.2, 0.6], True)] for _ in range(6)],  # selecting: +0.1
    }
    rescored = {"random": [0.40, 0.42, 0.41, 0.43, 0.40, 0.41], "default": [0.40, 0.41, 0.42, 0.42, 0.41, 0.40]}
    result = search_figures.summarize(studies, rescored)
    arm = result["arms"]["default"]
    assert arm["beats_random"] == 6  # on the validation images that selected it
    v = arm["vs_random"]
    assert v["mean_difference"] == pytest.approx(np.mean(np.subtract(rescored["default"], rescored["random"])))
    assert v["ci_low"] < 0 < v["ci_high"] and v["p"] > 0.05  # re-scored, the gain is gone
    assert result["arms"]["random"]["vs_random"] is None and result["arms"]["random"]["median_rescored"] == 0.41


def test_rescoring_runs_use_fresh_seeds_and_held_out_splits():
    chosen = Config(seed=101, split_seed=0)
    runs = search_bench.rescore_configs(chosen, 2, 101)
    assert len({c.seed for c in runs}) == 2 and all(c.seed >= search_bench.RESCORE_SEED_OFFSET for c in runs)
    assert all(c.split_seed != chosen.split_seed for c in runs)
    assert all(c.replace(seed=chosen.seed, split_seed=0) == chosen for c in runs)


def test_every_arm_builds_its_sampler_and_pruner_and_pickles_for_parallel_jobs():
    for arm in arms.ARMS.values():
        arm = pickle.loads(pickle.dumps(arm))  # --jobs sends the arm's factories to spawned processes
        assert arm.sampler is None or isinstance(arm.sampler(0, 10), optuna.samplers.BaseSampler)
        assert arm.pruner is None or isinstance(arm.pruner(10, 10), optuna.pruners.BasePruner)


def test_the_user_facing_registries_hold_only_what_a_space_may_name():
    # the bench's own arms (Optuna's defaults, random start-up TPE) are not names a space may give
    assert set(registry.SAMPLERS) == {"tpe", "gp", "random", "grid"}
    assert set(registry.PRUNERS) == {"hyperband", "successive_halving", "median", "percentile", "none"}
