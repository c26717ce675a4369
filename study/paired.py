"""Paired comparisons over seeds, each test with the interval that inverts it: the exact sign-flip
test of a mean difference, and the probability of improvement P(A > B) (Agarwal et al. 2021).

Used where the study itself judges a gain (the ablation path's re-scored steps, the search bench);
the report tables have their own in reports/stats.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
EXACT_FLIPS_MAX_N = 12  # up to 2^12 sign vectors enumerated; beyond, a seeded Monte-Carlo sample of them
BOOTSTRAP_RESAMPLES = 2000


def _sign_vectors(n: int) -> np.ndarray:
    """Every vector of n signs (2^n rows), or beyond EXACT_FLIPS_MAX_N a seeded sample with the identity first."""
    if n <= EXACT_FLIPS_MAX_N:
        return 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    rng = np.random.default_rng(0)
    return np.vstack([np.ones(n, dtype=int), rng.choice((-1, 1), size=(2 ** EXACT_FLIPS_MAX_N - 1, n))])


def _flip_p(d: np.ndarray, signs: np.ndarray) -> float:
    """Two-sided sign-flip p of mean(d) = 0: the share of sign vectors whose |sum| reaches the observed one."""
    sums = np.abs(signs @ d)
    return float(np.mean(sums >= sums[0] * (1 - 1e-12) - 1e-15))


def sign_flip(d: Any, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The exact two-sided sign-flip test of a mean paired difference, and the interval inverting it.

    p is the share of the 2^n sign vectors under which |mean| is at least the observed one (what
    scipy.stats.permutation_test computes). The interval holds every shift delta the same test does
    not reject at 1 - confidence when applied to d - delta, so p < 1 - confidence exactly when the
    interval excludes 0. scipy inverts no permutation test, so it is done here: p(delta) changes only
    where a sign vector's sum crosses the observed one, which is where delta is the mean of a subset
    of d; p is evaluated between and beyond those points. Where the test cannot reject even a shift
    beyond every difference (its smallest p, 2 / 2^n, is above 1 - confidence: n <= 5 at 95%), that
    end is infinite. Returns (p, low, high); NaN throughout below two differences.
    """
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan, math.nan, math.nan
    signs = _sign_vectors(n)
    alpha = 1 - confidence
    p = _flip_p(d - 0.0, signs)
    if n <= EXACT_FLIPS_MAX_N:
        subsets = signs[1:] < 0  # every non-empty subset (the rows other than all +1)
        points = np.unique(np.round((subsets @ d) / subsets.sum(axis=1), 12))
    else:
        points = np.linspace(d.min(), d.max(), 2001)
    span = max(float(np.ptp(d)), 1e-9)
    probes = np.concatenate([[points[0] - span], (points[:-1] + points[1:]) / 2, [points[-1] + span], points])
    kept = sorted(float(x) for x in probes if _flip_p(d - x, signs) > alpha)
    if not kept:
        return p, math.nan, math.nan
    low = -math.inf if kept[0] < points[0] else max(x for x in points if x <= kept[0])
    high = math.inf if kept[-1] > points[-1] else min(x for x in points if x >= kept[-1])
    return p, float(low), float(high)


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
