"""Paired comparisons over seeds, each test with the interval that inverts it: the exact sign-flip
test of a mean difference, and the probability of improvement P(A > B) (Agarwal et al. 2021).

Used where the study itself judges a gain (the ablation path's re-scored steps, the search bench);
the report tables (reports/stats.py) use the same test.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
EXACT_FLIPS_MAX = 16  # pairs up to which every sign pattern is enumerated (65,536)
SEED = 0  # Monte-Carlo sign flips beyond EXACT_FLIPS_MAX are seeded: the same runs give the same p
BOOTSTRAP_RESAMPLES = 2000


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return d.mean(axis=axis)


def sign_flip_p(d: Sequence[float]) -> float:
    """Two-sided p of the sign-flip permutation test on the mean difference (exact up to EXACT_FLIPS_MAX pairs)."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    resamples = 2 ** n if n <= EXACT_FLIPS_MAX else 99_999
    result = stats.permutation_test((d,), _mean, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, alternative="two-sided", rng=SEED)
    return float(result.pvalue)


def sign_flip_interval(d: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The shifts the two-sided exact sign-flip test does not reject at 1 - confidence: its inverted interval.

    The test of a shift s flips signs of d - s. Flipping a subset S beats the observed sum exactly when
    the mean of d over S lies on the far side of s, so the one-sided p at s counts the 2^n - 1 subset
    means below (above) s, plus the identity (Hartigan 1969). Two-sided p = 2 x the smaller one-sided p
    (scipy's convention), so s is kept while at least m = floor(2^(n-1) alpha) subset means lie on each
    side: the interval runs from the m-th smallest subset mean to the m-th largest; with m = 0 (fewer
    than 6 pairs at 95%) no shift is rejected and both ends are infinite.
    """
    d = np.asarray(d, dtype=float)
    n, alpha = len(d), 1 - confidence
    m = math.floor(2 ** (n - 1) * alpha + 1e-12)
    if n == 0 or m == 0:
        return -math.inf, math.inf
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # every subset mean is the common value
        return float(d.mean()), float(d.mean())
    if n > EXACT_FLIPS_MAX:
        return math.nan, math.nan  # the table uses the t interval there
    masks = np.array(list(itertools.product((0, 1), repeat=n))[1:], dtype=float)
    means = np.sort(masks @ d / masks.sum(axis=1))
    return float(means[m - 1]), float(means[-m])


def sign_flip(d: Any, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The exact two-sided sign-flip test of a mean paired difference and the interval inverting it, as
    (p, low, high); NaN throughout below two differences."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return math.nan, math.nan, math.nan
    return (sign_flip_p(d), *sign_flip_interval(d, confidence))


def _improvement(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) over all pairs of runs, ties counting half (rliable's probability of improvement)."""
    gt = (a[..., :, None] > b[..., None, :]).mean(axis=(-2, -1))
    eq = (a[..., :, None] == b[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(a: Any, b: Any, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """P(A > B) and its percentile-bootstrap interval, resampling seeds with their pairs kept (a[i] and
    b[i] share seed i). Returns (P, low, high); the interval is NaN below two seeds."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    point = float(_improvement(a, b))
    if len(a) < 2:
        return point, math.nan, math.nan
    result = stats.bootstrap((a, b), _improvement, paired=True, vectorized=True, method="percentile",
                             confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES, random_state=0)
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)
