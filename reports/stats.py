"""The arithmetic behind the tables: seed statistics, paired and unpaired comparisons with intervals from
the same procedure as their p, Holm's adjustment, factorial contrasts, rliable-style aggregates
(interquartile mean, probability of improvement) and Pareto fronts.

docs/statistics.md states the procedures and why each was chosen; every p is two-sided. Seeds needed a
priori, from the same tests' simulated power, are in reports/power.py.

Which test a comparison uses: variants of one ablation share seeds (same initialisation, same data
order), so their accuracies are compared seed by seed, on the paired differences. With fewer than
PAIRED_T_MIN pairs (or differences without spread) p comes from the exact sign-flip permutation test
on the mean difference (all 2^n flips) and the interval is that test inverted: the shifts it does not
reject. Its smallest p is 2 / 2^n, so below 6 pairs no shift is rejected at 5% and the 95% interval is
unbounded: with so few seeds that is the honest answer. From PAIRED_T_MIN pairs on, the paired t-test
and its t interval. Without pairs, Welch's test and its Welch interval; where neither side has any
spread, Welch's statistic does not exist and the exact two-sample permutation test gives p alone.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from study.paired import sign_flip_interval, sign_flip_p

CONFIDENCE = 0.95
PAIRED_T_MIN = 8
BOOTSTRAP = 2_000  # resamples of a bootstrap interval
SEED = 0  # simulations and bootstraps are seeded: the same studies give the same report


class Test:
    """The names a Comparison's `test` takes (shown in the tables as they are)."""

    SIGN_FLIP = "sign-flip exact"
    PAIRED_T = "paired t"
    WELCH = "Welch"
    PERMUTATION = "permutation exact (unpaired)"
    NONE = ""


PAIRED_TESTS = (Test.SIGN_FLIP, Test.PAIRED_T)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); NaN for a single value


@dataclass(frozen=True)
class Comparison:
    """`a` minus `b`: the difference of means, its two-sided interval and p, both from `test`.

    An unbounded interval (too few pairs for the test to reject any shift) has infinite ends.
    """

    delta: float
    ci_low: float
    ci_high: float
    p: float
    test: str = Test.WELCH
    n: int = 0  # pairs for a paired test, else the smaller group
    spread: float = math.nan  # std of the paired differences (NaN unpaired)
    left_out: int = 0  # runs that took no part: no partner seed, or no finite value
    n_a: int = 0  # runs of `a` and of `b` that took part
    n_b: int = 0

    @property
    def paired(self) -> bool:
        return self.test in PAIRED_TESTS


def summary(values: Sequence[float]) -> Summary:
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan)
    return Summary(len(x), float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan)


def finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def welch(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test of a against b and its Welch interval; non-finite values are left out and counted.

    Where neither side varies Welch's statistic is undefined (a zero standard error, not an infinitely
    strong effect): p comes from the exact two-sample permutation test, and there is no interval.
    """
    fa, fb = finite(a), finite(b)
    left_out = len(a) - len(fa) + len(b) - len(fb)
    delta = float(fa.mean() - fb.mean()) if len(fa) and len(fb) else math.nan
    base = dict(n=min(len(fa), len(fb)), left_out=left_out, n_a=len(fa), n_b=len(fb))
    if len(fa) < 2 or len(fb) < 2:
        return Comparison(delta, math.nan, math.nan, math.nan, Test.WELCH, **base)
    if np.ptp(fa) <= 1e-12 and np.ptp(fb) <= 1e-12:
        return Comparison(delta, math.nan, math.nan, _two_sample_permutation_p(fa, fb), Test.PERMUTATION, **base)
    result = stats.ttest_ind(fa, fb, equal_var=False)
    ci = result.confidence_interval(confidence)
    return Comparison(delta, float(ci.low), float(ci.high), float(result.pvalue), Test.WELCH, **base)


def _difference_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return x.mean(axis=axis) - y.mean(axis=axis)


def _two_sample_permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    splits = math.comb(len(a) + len(b), len(a))
    result = stats.permutation_test((a, b), _difference_of_means, permutation_type="independent", vectorized=True,
                                    n_resamples=min(splits, 99_999), alternative="two-sided", rng=SEED)
    return float(result.pvalue)


def paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """a minus b seed by seed (a[i] and b[i] share a seed): mean difference, interval and p as the module says.

    A pair with a non-finite value on either side is left out and counted, never tested as a number.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    kept = np.isfinite(d)
    left_out = 2 * int((~kept).sum())
    d = d[kept]
    n = len(d)
    base = dict(n=n, left_out=left_out, n_a=n, n_b=n)
    if n < 2:
        return Comparison(float(d.mean()) if n else math.nan, math.nan, math.nan, math.nan, Test.SIGN_FLIP, **base)
    spread = float(d.std(ddof=1))
    if spread <= 1e-12 * max(1.0, abs(float(d.mean()))):  # equal to the last digits: float noise, not a spread
        spread = 0.0
    if n >= PAIRED_T_MIN and spread > 0:
        result = stats.ttest_1samp(d, 0.0)
        ci = result.confidence_interval(confidence)
        return Comparison(float(d.mean()), float(ci.low), float(ci.high), float(result.pvalue), Test.PAIRED_T,
                          spread=spread, **base)
    low, high = sign_flip_interval(d, confidence)
    return Comparison(float(d.mean()), low, high, sign_flip_p(d), Test.SIGN_FLIP, spread=spread, **base)


def one_sample(d: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """Per-seed contrasts (e.g. a factorial interaction seed by seed) tested against 0 as paired differences."""
    d = np.asarray(d, dtype=float)
    return paired(d, np.zeros_like(d), confidence)


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


# --- factorial contrasts ----------------------------------------------------------------------------------

def interaction(both: Sequence[float], a_only: Sequence[float], b_only: Sequence[float],
                neither: Sequence[float]) -> float:
    """How much more A gains with B present than without: (both - b_only) - (a_only - neither), on means."""
    m = [float(np.mean(v)) if len(v) else math.nan for v in (both, a_only, b_only, neither)]
    return (m[0] - m[2]) - (m[1] - m[3])


INTERACTION_WEIGHTS = (1.0, -1.0, -1.0, 1.0)  # both, a_only, b_only, neither


def contrast(cells: Sequence[Sequence[float]], weights: Sequence[float], confidence: float = CONFIDENCE) -> Comparison:
    """A linear contrast of independent cell means (sum of weight x mean) with Welch-Satterthwaite's t
    interval and p: the unpaired test of a factorial effect where runs share no seed."""
    x = [finite(c) for c in cells]
    estimate = float(sum(w * v.mean() for w, v in zip(weights, x))) if all(len(v) for v in x) else math.nan
    base = dict(n=min(len(v) for v in x), n_a=sum(len(v) for v in x))
    if any(len(v) < 2 for v in x):
        return Comparison(estimate, math.nan, math.nan, math.nan, Test.WELCH, **base)
    parts = [w * w * v.var(ddof=1) / len(v) for w, v in zip(weights, x)]
    se2 = sum(parts)
    if se2 == 0:
        return Comparison(estimate, math.nan, math.nan, math.nan, Test.WELCH, **base)
    df = se2 ** 2 / sum(p * p / (len(v) - 1) for p, v in zip(parts, x))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(se2)
    p = 2 * stats.t.sf(abs(estimate) / math.sqrt(se2), df)
    return Comparison(estimate, estimate - half, estimate + half, float(p), Test.WELCH, **base)


# --- rliable-style aggregates (Agarwal et al. 2021) -------------------------------------------------------

def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(x, 0.25, axis=axis)


def iqm(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Interquartile mean (the mean of the middle half of the runs) with a percentile bootstrap interval.

    With fewer than 4 runs nothing is trimmed and it is the mean. NaN interval below 2 runs.
    """
    x = finite(values)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    point = float(_iqm(x))
    if len(x) < 2:
        return point, math.nan, math.nan
    ci = _bootstrap((x,), _iqm, confidence)
    return point, ci[0], ci[1]


def _improvement(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) over every run of A against every run of B, ties counted half (the Mann-Whitney U / (n m))."""
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    diff = a[..., :, None] - b[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))


def probability_of_improvement(a: Sequence[float], b: Sequence[float],
                               confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """P(A > B): the chance a run of A beats a run of B, with a stratified (per-arm) percentile bootstrap interval."""
    fa, fb = finite(a), finite(b)
    if not len(fa) or not len(fb):
        return math.nan, math.nan, math.nan
    point = float(_improvement(fa, fb))
    if len(fa) < 2 or len(fb) < 2:
        return point, math.nan, math.nan
    ci = _bootstrap((fa, fb), _improvement, confidence)
    return point, ci[0], ci[1]


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, confidence: float) -> tuple[float, float]:
    """Percentile interval; each sample is resampled on its own (stratified), as rliable does per task and arm.

    Percentile rather than BCa: BCa's jackknife acceleration is undefined on the 2-5 runs a study has.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical runs: scipy warns of a degenerate distribution, the interval is a point
        result = stats.bootstrap(samples, statistic, n_resamples=BOOTSTRAP, confidence_level=confidence,
                                 method="percentile", vectorized=True, rng=SEED)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # every resample the same value
        low = high = float(statistic(*samples))
    return low, high


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
