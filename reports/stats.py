"""The arithmetic behind the tables: seed statistics, Welch comparisons, factorial interactions, Pareto fronts."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (n - 1); NaN for a single value


@dataclass(frozen=True)
class Comparison:
    """`a` minus `b`: the difference of means, its Welch confidence interval and two-sided p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p: float


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
        return Comparison(delta, math.nan, math.nan, math.nan)
    ci = result.confidence_interval(confidence)
    return Comparison(delta, float(ci.low), float(ci.high), float(result.pvalue))


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
