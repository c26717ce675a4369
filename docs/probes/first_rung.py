"""When does validation accuracy separate trials from noise? The measurement behind the first rung.

Trains a few random configurations of a search space (one thread, a fraction of the data) and
prints, for every epoch k, the Spearman rank correlation between epoch-k and final validation
accuracy. study/samplers/registry.py takes the first epoch whose correlation is high as min_resource.

    python docs/probes/first_rung.py spaces/naivenet32_cifar10.py --configs 8 --epochs 6 \
        --data-fraction 0.5 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json

import optuna
import torch
from scipy.stats import spearmanr

from study.engine.results import Diverged
from study.engine.train import train
from study.spaces import space as spaces


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("space")
    p.add_argument("--configs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--data-fraction", type=float, default=0.5)
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = {"epochs": args.epochs, "data_fraction": args.data_fraction, "data_dir": args.data_dir, "device": "cpu"}
    plan = spaces.load(args.space).bind(fixed)
    ask = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    curves = []
    for i in range(args.configs):
        trial = ask.ask()
        config = plan.config(trial)
        try:
            curve = train(config).val_accuracy_curve
        except Diverged:
            continue
        curves.append(curve)
        print(f"config {i}: {trial.params} -> {[round(a, 3) for a in curve]}", flush=True)
    final = [c[-1] for c in curves]
    rho = [spearmanr([c[k] for c in curves], final).statistic for k in range(args.epochs)]
    print(json.dumps({"epochs": args.epochs, "configs": len(curves), "spearman_vs_final": rho, "curves": curves}))


if __name__ == "__main__":
    main()
