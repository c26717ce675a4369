"""The arithmetic behind the tables: seed statistics, paired and Welch comparisons, Holm's adjustment,
seeds needed, factorial interactions, Pareto fronts.

Which test a comparison uses: variants of one ablation share seeds (same initialisation, same data
order), so their accuracies are compared seed by seed, on the paired differences. With
PAIRED_T_MIN or more pairs the paired t-test gives p. Below that, normality of the differences
cannot be checked and the t-test's p leans on it, so p comes from the exact sign-flip permutation
test on the mean difference (all 2^n flips): it tests the same statistic that the table reports,
the mean delta, whereas Wilcoxon's signed-rank test ranks the differences and so speaks about a
different quantity; with n pairs its smallest p is 2 / 2^n (0.25 at 3 seeds), which is the honest
resolution of so few seeds. The 95% CI of the mean difference is the t interval in both cases.
Cells without at least two shared seeds fall back to Welch's unpaired test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
PAIRED_T_MIN = 8
POWER = 0.8  # the usual target power for "seeds needed"
MAX_SEEDS = 10_000  # "seeds needed" beyond this is shown as more than it


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); NaN for a single value


@dataclass(frozen=True)
class Comparison:
    """`a` minus `b`: the difference of means, its confidence interval, two-sided p and the test behind them."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    test: str = "Welch"
    n: int = 0  # pairs for a paired test, else the smaller group
    spread: float = math.nan  # std of the paired differences (NaN for Welch)


def summary(values: Sequence[float]) -> Summary:
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan)
    return Summary(len(x), float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of a against b (unequal variances); the CI and p need two values on each side."""
    delta = float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Comparison(delta, math.nan, math.nan, math.nan)
    with warnings.catch_warnings():
        # scipy warns when seeds agree to the last digit; the std column already shows that
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    if not math.isfinite(result.pvalue):  # zero variance on both sides: no test is possible
        return Comparison(delta, math.nan, math.nan, math.nan, "Welch", min(len(a), len(b)))
    ci = result.confidence_interval(confidence)
    return Comparison(delta, float(ci.low), float(ci.high), float(result.pvalue), "Welch", min(len(a), len(b)))


def _mean_difference(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return d.mean(axis=axis)


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """a minus b seed by seed (a[i] and b[i] share a seed): mean difference, t CI, and p as the module says."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2:
        return Comparison(float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan, "paired", n)
    spread = float(d.std(ddof=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical differences: no spread, handled below
        result = stats.ttest_1samp(d, 0.0)
    if spread == 0:  # every seed moved by the same amount: no interval, and no test has a spread to use
        return Comparison(float(d.mean()), math.nan, math.nan, math.nan, "paired, no spread", n, spread)
    ci = result.confidence_interval(confidence)
    if n >= PAIRED_T_MIN:
        p, test = float(result.pvalue), "paired t"
    else:
        # permutation_type="samples" on one sample flips signs; with n < PAIRED_T_MIN its 2^n <= n_resamples, so exact
        perm = stats.permutation_test((d,), _mean_difference, permutation_type="samples", vectorized=True,
                                      n_resamples=2 ** n, alternative="two-sided")
        p, test = float(perm.pvalue), "sign-flip exact"
    return Comparison(float(d.mean()), float(ci.low), float(ci.high), p, test, n, spread)


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment across one table's arms (NaN p-values stay NaN and do not count).

    scipy has Benjamini-Hochberg (false_discovery_control) but not Holm, and statsmodels for one
    function is not worth the dependency: sorted ascending, the k-th p times (m - k), running max, cap 1.
    """
    values = np.asarray(p, dtype=float)
    tested = np.flatnonzero(~np.isnan(values))
    adjusted = np.full(len(values), math.nan)
    order = tested[np.argsort(values[tested], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _paired_power(effect: float, n: int, alpha: float) -> float:
    """Two-sided power of the paired t-test for a standardised effect with n pairs (noncentral t)."""
    critical, shift = stats.t.ppf(1 - alpha / 2, n - 1), effect * math.sqrt(n)
    got = stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)
    # scipy's noncentral t returns NaN far in its tail (huge effects); the normal limit is exact enough there
    return float(got) if math.isfinite(got) else float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def seeds_needed(delta: float, spread: float, alpha: float, power: float = POWER) -> float:
    """Pairs (seeds) a paired test needs to find `delta` at level `alpha` with `power`, given the differences' std.

    The paired t-test's power from the noncentral t (what statsmodels' TTestPower computes), searched
    upwards in n; below PAIRED_T_MIN the table uses the sign-flip test, whose smallest p is 2 / 2^n,
    so n is also at least what that test needs to reach alpha at all. NaN when there is no spread.
    """
    if not (math.isfinite(delta) and math.isfinite(spread)) or spread == 0 or delta == 0:
        return math.nan
    effect = abs(delta) / spread
    n = 2
    while n <= MAX_SEEDS:
        if (n >= PAIRED_T_MIN or 2.0 ** (1 - n) <= alpha) and _paired_power(effect, n, alpha) >= power:
            return float(n)
        n += 1 if n < 100 else max(1, n // 20)
    return math.inf


def interaction(both: Sequence[float], a_only: Sequence[float], b_only: Sequence[float],
                neither: Sequence[float]) -> float:
    """How much more A gains with B present than without: (both - b_only) - (a_only - neither), on means."""
    m = [float(np.mean(v)) if len(v) else math.nan for v in (both, a_only, b_only, neither)]
    return (m[0] - m[2]) - (m[1] - m[3])


def pareto_front(accuracy: Sequence[float], cost: Sequence[float]) -> list[bool]:
    """Which points no other point beats on both counts (higher accuracy, lower cost)."""
    # Optuna's Pareto helpers work on trials of one multi-objective study; these points come from
    # aggregated rows of several, so the dominance check is written out (O(n^2) over a few models).
    acc, c = np.asarray(accuracy, dtype=float), np.asarray(cost, dtype=float)
    front = []
    for i in range(len(acc)):
        dominated = (acc >= acc[i]) & (c <= c[i]) & ((acc > acc[i]) | (c < c[i]))
        front.append(not dominated.any())
    return front
