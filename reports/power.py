"""Seeds needed, a priori: the simulated power of the very test a table uses, at each seed count.

docs/statistics.md states why the power is simulated rather than taken from a formula.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import numpy as np
from scipy import stats

from reports.stats import PAIRED_T_MIN, SEED, finite

POWER = 0.8  # the usual target power for "seeds needed"
MAX_SEEDS = 10_000  # "seeds needed" beyond this is shown as more than it
SIMULATIONS = 20_000  # draws per seed count when "seeds needed" simulates a test's power (SE 0.003 at 80%)


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """The pooled standard deviation of several groups about their own means (NaN without a degree of freedom)."""
    squares, df = 0.0, 0
    for g in groups:
        x = finite(g)
        if len(x) > 1:
            squares += float(((x - x.mean()) ** 2).sum())
            df += len(x) - 1
    return math.sqrt(squares / df) if df else math.nan


def _sign_flip_power(effect: float, n: int, alpha: float, rng: np.random.Generator) -> float:
    """Simulated power of the exact two-sided sign-flip test with n normal differences of mean `effect` (sd 1)."""
    d = rng.normal(effect, 1.0, size=(SIMULATIONS, n))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    null = d @ signs.T  # sums under every flip; the first pattern is the identity
    observed = null[:, :1]
    tol = 1e-9 * np.abs(observed)
    greater = (null >= observed - tol).mean(axis=1)
    less = (null <= observed + tol).mean(axis=1)
    return float(np.mean(np.minimum(1, 2 * np.minimum(greater, less)) < alpha))


def _paired_t_power(effect: float, n: int, alpha: float, rng: np.random.Generator) -> float:
    """Simulated power of the two-sided paired t-test: mean and variance of n normal differences drawn
    from their exact sampling distributions, so the cost does not grow with n."""
    mean = rng.normal(effect, 1 / math.sqrt(n), SIMULATIONS)
    var = rng.chisquare(n - 1, SIMULATIONS) / (n - 1)
    t = mean / np.sqrt(var / n)
    return float(np.mean(2 * stats.t.sf(np.abs(t), n - 1) < alpha))


def _welch_power(effect: float, n: int, alpha: float, rng: np.random.Generator) -> float:
    """Simulated power of Welch's two-sided test with n runs per side (sd 1 each), as _paired_t_power draws them."""
    diff = rng.normal(effect, math.sqrt(2 / n), SIMULATIONS)
    va, vb = (rng.chisquare(n - 1, (2, SIMULATIONS)) / (n - 1)) / n
    df = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
    t = diff / np.sqrt(va + vb)
    return float(np.mean(2 * stats.t.sf(np.abs(t), df) < alpha))


def power(effect: float, n: int, alpha: float, paired_seeds: bool = True) -> float:
    """Simulated power, at n seeds, of the test the tables use there, for a standardised effect (delta / sd)."""
    rng = np.random.default_rng(SEED)
    if not paired_seeds:
        return _welch_power(effect, n, alpha, rng)
    if n < PAIRED_T_MIN:
        return _sign_flip_power(effect, n, alpha, rng)
    return _paired_t_power(effect, n, alpha, rng)


@functools.lru_cache(maxsize=256)
def _needed(effect: float, alpha: float, paired_seeds: bool, target: float) -> float:
    n = 2
    while n < PAIRED_T_MIN:  # the sign-flip region is small: every count is tried
        if power(effect, n, alpha, paired_seeds) >= target:
            return float(n)
        n += 1
    if power(effect, MAX_SEEDS, alpha, paired_seeds) < target:
        return math.inf
    low, high = PAIRED_T_MIN - 1, MAX_SEEDS  # power(low) < target <= power(high); power grows with n
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power(effect, mid, alpha, paired_seeds) >= target else (mid, high)
    return float(high)


def seeds_needed(effect: float, sd: float, alpha: float, paired_seeds: bool = True, target: float = POWER) -> float:
    """Seeds (per variant) at which the test the table uses finds a true difference `effect` with `target` power.

    A priori: `effect` is the smallest difference worth detecting, set before looking (not the observed
    delta), and `sd` the study's pooled seed-to-seed standard deviation (of the paired differences for a
    paired test, of single runs for Welch). The power of that very test (sign-flip below PAIRED_T_MIN
    pairs, paired t from there, or Welch) is simulated with normal noise at each count.
    NaN without a spread to go on; infinite beyond MAX_SEEDS.
    """
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd <= 0 or effect == 0:
        return math.nan
    return _needed(round(abs(effect) / sd, 9), alpha, paired_seeds, target)
