"""`python -m reports.importance_check`: how many completed trials importances need before they repeat.

For each trial count, several independent random-sampled studies over spaces/naivenet128.py's
parameters are scored by a synthetic objective with known structure (lr matters most, then
aug_strength, then width; weight_decay, depth and se not at all; seed noise of 1 point). Each study
gets one PED-ANOVA and one fANOVA fit. Printed per count: the share of studies whose fit ranks lr
(the truly dominant parameter) first, the median distance between two studies' importance vectors
(total variation: half the summed absolute difference; 0 identical, 1 disjoint) per method, and the
median distance between the two methods on one study. importance.MIN_TRIALS is the smallest count
where both methods rank lr first in at least 3 of 4 studies and repeat within 0.3.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import optuna
import pandas as pd

from reports import importance
from study import space as spaces


def synthetic_trials(space_path: str, n: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    space = spaces.load(space_path)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)
    for _ in range(n):
        trial = study.ask()
        c = space.kind.config(trial, {})
        value = (0.6 - 0.08 * (math.log10(c.lr) + 1.7) ** 2 + 0.04 * c.aug_strength + 0.01 * c.width
                 + rng.normal(0, 0.01))
        study.tell(trial, value)
    return study.trials


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--space", default="spaces/naivenet128.py")
    p.add_argument("--counts", default="5,10,15,20,30,40")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"{'trials':>6}  {'lr first: PED':>13}  {'fANOVA':>6}  "
          f"{'repeat distance: PED':>20}  {'fANOVA':>6}  {'PED to fANOVA':>13}")
    for n in (int(x) for x in args.counts.split(",")):
        fits: dict[str, list[pd.Series]] = {m: [] for m in importance.METHODS}
        for r in range(args.repeats):
            trials = synthetic_trials(args.space, n, seed=r)
            params = importance.varied(trials)
            for m in importance.METHODS:
                fits[m].append(pd.Series(importance.fit(trials, params, m, seed=r)).reindex(params).fillna(0.0))
        first = {m: np.mean([f.idxmax() == "lr" for f in fits[m]]) for m in importance.METHODS}
        repeat = {m: np.median([importance.distance(a, b) for a, b in itertools.combinations(fits[m], 2)])
                  for m in importance.METHODS}
        across = np.median([importance.distance(a, b) for a, b in zip(*fits.values())])
        print(f"{n:>6}  {first['ped_anova']:>13.2f}  {first['fanova']:>6.2f}  {repeat['ped_anova']:>20.2f}  "
              f"{repeat['fanova']:>6.2f}  {across:>13.2f}")

if __name__ == "__main__":
    main()
