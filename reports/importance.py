"""Parameter importances with their reliability: bootstrap fits of PED-ANOVA and fANOVA, and where they disagree.

A single importance fit on a few trials looks as certain as one on hundreds. Each method is fitted
on RESAMPLES bootstrap resamples of the completed trials (fANOVA also with a new forest seed per
fit), so the spread across fits is shown beside the mean. Below `min_trials` completed trials nothing
is shown: the smallest count at which the criterion of study/bench/importance.py holds, measured
there at the real trial noise (docs/probes/importance_minimum.log; figures in reports/README.md).
It depends on how the study sampled: random sampling meets it from 80 completed trials; TPE with
successive halving, as the search runs, met it at no count measured (20 to 320), so the
importances of a model-sampled study are withheld at any size, with that reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd

MIN_TRIALS = 80  # random sampling (and grids): the criterion first held at 80 completed trials
# samplers whose trials the criterion was measured on, with their minimum; a study of another sampler
# (TPE, GP: the search's) is held to UNMEASURED_REASON
MEASURED = {"random": MIN_TRIALS, "grid": MIN_TRIALS}
UNMEASURED_REASON = ("on TPE-sampled, pruned studies at the real trial noise, importances of independent studies "
                     "repeated within 0.3 at no count measured (20 to 320 completed trials)")
RESAMPLES = 8
METHODS = ("ped_anova", "fanova")
# two methods disagree on a parameter when their means differ by more than this and their
# bootstrap spreads (mean ± std) do not overlap
DISAGREE = 0.15


@dataclass(frozen=True)
class Fits:
    """One column per parameter, one row per bootstrap fit, per method (fanova is None without scikit-learn)."""

    ped_anova: pd.DataFrame
    fanova: pd.DataFrame | None


def min_trials(sampler: str | None) -> int | None:
    """Completed trials from which a study sampled by `sampler` shows importances; None: at no count."""
    return MEASURED.get(sampler or "")


def varied(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    return sorted({p for t in trials for p in t.params if len({repr(u.params.get(p)) for u in trials}) > 1})


def _study(trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    """A scratch in-memory study of these trials, created without Optuna's "new study" log line per fit."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(level)
    study.add_trials(trials)
    return study


def fit(trials: list[optuna.trial.FrozenTrial], params: list[str], method: str, seed: int) -> dict[str, float]:
    """One importance fit of `method` on these trials (normalised to sum to 1)."""
    study = _study(trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns about few trials; MIN_TRIALS and the spread speak to that
        if method == "ped_anova":
            # PED-ANOVA, given a target, counts lower as better: the accuracy is negated
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=params, target=lambda t: -t.value)
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), params=params)


def bootstrap(trials: list[optuna.trial.FrozenTrial], params: list[str], resamples: int = RESAMPLES, seed: int = 0) -> Fits:
    """Each method fitted on `resamples` bootstrap resamples of the trials (the same resamples for both)."""
    rng = np.random.default_rng(seed)
    samples = [[trials[i] for i in rng.integers(0, len(trials), len(trials))] for _ in range(resamples)]
    # duplicated trials share a number; Optuna's in-memory study renumbers what add_trials gets
    ped = pd.DataFrame([fit(s, params, "ped_anova", k) for k, s in enumerate(samples)], columns=params).fillna(0.0)
    try:
        fanova = pd.DataFrame([fit(s, params, "fanova", k) for k, s in enumerate(samples)], columns=params).fillna(0.0)
    except ImportError:
        fanova = None  # fANOVA's random forest needs scikit-learn: its columns show "–"
    return Fits(ped, fanova)


def disagreements(fits: Fits) -> list[str]:
    """Sentences naming where PED-ANOVA and fANOVA disagree: the top parameter, and parameters far apart."""
    if fits.fanova is None:
        return []
    ped, fan = fits.ped_anova, fits.fanova
    said = []
    top_ped, top_fan = ped.mean().idxmax(), fan.mean().idxmax()
    if top_ped != top_fan:
        said.append(f"PED-ANOVA ranks {top_ped} first, fANOVA ranks {top_fan} first")
    for p in ped.columns:
        gap = abs(ped[p].mean() - fan[p].mean())
        if gap > DISAGREE and gap > ped[p].std() + fan[p].std():
            said.append(f"{p}: PED-ANOVA {ped[p].mean():.2f} against fANOVA {fan[p].mean():.2f}")
    return said


def distance(a: pd.Series, b: pd.Series) -> float:
    """Total variation between two normalised importance vectors: 0 identical, 1 disjoint."""
    return float((a - b).abs().sum() / 2)
