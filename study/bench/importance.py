"""`python -m study.bench.importance`: how many completed trials importances need before they repeat.

For each count of completed trials, several independent studies over spaces/naivenet128.py's
parameters are scored by a synthetic objective with known structure (lr matters most, then
aug_strength, then width; weight_decay, depth and se not at all) plus seed noise. By default the
studies are what reports meet: TPE as the search uses it (study.samplers.registry, spread start-up),
successive halving pruning on a synthetic learning curve, the real trial noise (NOISE, 2.7 points:
the defaults' seed-to-seed spread), and only the completed trials (the survivors of pruning) fitted.
Each study gets one PED-ANOVA and one fANOVA fit. Printed per count: the share of studies whose
fit ranks lr (the truly dominant parameter) first, the median distance between two studies'
importance vectors (total variation: half the summed absolute difference; 0 identical, 1 disjoint)
per method, and the median distance between the two methods on one study.

The criterion, here and nowhere else: importance.MIN_TRIALS is the smallest count measured at which
fANOVA's fits of independent studies repeat (median distance <= AGREE) and PED-ANOVA and fANOVA
agree with each other (median distance <= AGREE). It asks for repeatability, not for ranking lr
first: neither method ranks it first in most studies at any count measured (reports/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import math
from typing import Any, Callable

import numpy as np
import optuna
import pandas as pd

from reports import importance
from study.samplers import registry
from study.spaces import space as spaces

NOISE = 0.027  # the defaults' seed-to-seed spread of validation accuracy (docs/search.md: std 0.016-0.026 on 542 images)
AGREE = 0.3  # median total-variation distance
EPOCHS = 10


def _objective(c) -> float:
    return 0.6 - 0.08 * (math.log10(c.lr) + 1.7) ** 2 + 0.04 * c.aug_strength + 0.01 * c.width


def synthetic_trials(space_path: str, n: int, seed: int, noise: float = 0.01, sampler: str = "random",
                     prune: bool = False) -> list[optuna.trial.FrozenTrial]:
    """A study of `n` completed trials (and with `prune`, the trials pruned on the way).

    With `prune`, each trial reports a learning curve over EPOCHS epochs (its final value times
    sqrt(epoch / EPOCHS), with the noise at every epoch) to the search's successive halving."""
    plan = spaces.load(space_path).bind()
    full = max(n, 10)
    study = optuna.create_study(
        direction="maximize", sampler=registry.sampler(sampler, seed, full),
        pruner=registry.pruner("successive_halving" if prune else "none", EPOCHS, full))
    rng = np.random.default_rng(seed)
    completed = 0
    while completed < n:
        trial = study.ask()
        value = _objective(plan.config(trial)) + rng.normal(0, noise)
        if prune:
            pruned = False
            for epoch in range(1, EPOCHS):
                trial.report(value * math.sqrt(epoch / EPOCHS) + rng.normal(0, noise), epoch)
                if trial.should_prune():
                    pruned = True
                    break
            if pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
        study.tell(trial, value)
        completed += 1
    return study.trials


def measure(space: str, counts: list[int], repeats: int, noise: float, sampler: str, prune: bool,
            report: Callable[[dict[str, Any]], None] = lambda row: None) -> pd.DataFrame:
    """The figures per count of completed trials, and whether the criterion holds there; `report`
    sees each count's row as soon as it is measured."""
    rows = []
    for n in counts:
        fits: dict[str, list[pd.Series]] = {m: [] for m in importance.METHODS}
        for r in range(repeats):
            trials = [t for t in synthetic_trials(space, n, r, noise, sampler, prune)
                      if t.state == optuna.trial.TrialState.COMPLETE]
            params = importance.varied(trials)
            for m in importance.METHODS:
                fits[m].append(pd.Series(importance.fit(trials, params, m, seed=r)).reindex(params).fillna(0.0))
        first = {m: np.mean([f.idxmax() == "lr" for f in fits[m]]) for m in importance.METHODS}
        repeat = {m: np.median([importance.distance(a, b) for a, b in itertools.combinations(fits[m], 2)])
                  for m in importance.METHODS}
        across = float(np.median([importance.distance(a, b) for a, b in zip(*fits.values())]))
        rows.append({"trials": n, "lr_first_ped": first["ped_anova"], "lr_first_fanova": first["fanova"],
                     "repeat_ped": repeat["ped_anova"], "repeat_fanova": repeat["fanova"], "ped_to_fanova": across,
                     "criterion": bool(repeat["fanova"] <= AGREE and across <= AGREE)})
        report(rows[-1])
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="spaces/naivenet128.py")
    p.add_argument("--counts", default="20,40,80,120,160")
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--noise", type=float, default=NOISE, help=f"seed noise of the objective (default {NOISE})")
    p.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    p.add_argument("--no-prune", dest="prune", action="store_false", help="no successive halving")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"noise {args.noise}, sampler {args.sampler}, {'pruned' if args.prune else 'not pruned'}, "
          f"{args.repeats} studies per count", flush=True)
    print("trials  lr first: PED  fANOVA  repeat: PED  fANOVA  PED to fANOVA  criterion", flush=True)
    met: list[int] = []

    def report(row: dict[str, Any]) -> None:
        print(f"{row['trials']:>6}  {row['lr_first_ped']:>13.2f}  {row['lr_first_fanova']:>6.2f}  {row['repeat_ped']:>11.2f}  "
              f"{row['repeat_fanova']:>6.2f}  {row['ped_to_fanova']:>13.2f}  {'met' if row['criterion'] else 'not met'}",
              flush=True)
        if row["criterion"] and not met:
            met.append(row["trials"])
            print(f"criterion first met at: {row['trials']}", flush=True)

    measure(args.space, sorted(int(x) for x in args.counts.split(",")), args.repeats, args.noise, args.sampler,
            args.prune, report)
    if not met:
        print("criterion first met at: none of these counts", flush=True)


if __name__ == "__main__":
    main()
