"""`python -m study bench --only search`: does the default search earn its compute?

Every arm (a sampler and a pruner) searches the same space with the same epoch budget (study.search.budget)
on several seeds; each seed's studies share the training seed, and trial 0 of every study is the
space's defaults. The seeds start at FIRST_SEED, past TUNED_SEEDS, on which the defaults were
chosen: nothing is judged on the seeds that tuned it.

A study's best validation accuracy is a best-of-N on the very images that selected it, so it is
not the figure that judges an arm. Each arm's chosen configuration (its best finished trial) is
retrained RESCORE_RUNS times with fresh training seeds on held-out splits (other `split_seed`s:
validation images the search never ranked on), and the mean of those runs is the arm's re-scored
accuracy on that seed. Per arm against random search it reports, on the re-scored accuracies paired
by seed: the mean difference, the exact two-sided sign-flip p and the 95% interval that inverts the
same test (`sign_flip`), and the probability of improvement P(A > B) (Agarwal et al. 2021) with a
paired percentile-bootstrap interval. Beside them: the selecting bests, the seeds on which an arm's
selecting best beats random's, the epochs it needs to reach random search's best (as a share of
random's), and the defaults' seed-to-seed spread (trial 0 of each seed's random study).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import math
import multiprocessing
import os
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from rich.console import Console

from study.bench import search_figures as figures
from study.bench.arms import ARMS
from study.config import Config
from study.engine.results import Diverged
from study.engine.train import train
from study.errors import UserError
from study.search import runner
from study.spaces import space as spaces
from study.spaces.kinds import Search
from study.store import record

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "naivenet32_cifar10.py"
SAMPLER_SEED_OFFSET = 1000  # so that no arm's random start-up replays random search's trials
TUNED_SEEDS = range(0, 5)  # the seeds the search defaults were chosen on (docs/search.md)
FIRST_SEED = 100  # the bench's seeds start here, past TUNED_SEEDS
RESCORE_RUNS = 2  # retrainings of each chosen configuration on fresh seeds and held-out splits
RESCORE_SEED_OFFSET = 50_000  # training seeds of the re-scoring runs: no search trial uses them


@dataclass(frozen=True)
class Plan:
    """How big the A/B runs are; None takes the space's own value (epochs, budget_epochs, data_fraction)."""

    seeds: int
    arms: tuple[str, ...]
    epochs: int | None = None
    budget_epochs: int | None = None
    data_fraction: float | None = None
    first_seed: int = FIRST_SEED
    rescore: int = RESCORE_RUNS


# Quick: 3 seeds x 2 arms x 24 epochs (4 full-length trials of 6 epochs) on half the data. On a
# quarter, 6 epochs of the defaults' recipe stay at chance (0.10) and every arm ties.
QUICK = Plan(seeds=3, arms=("random", "random_successive_halving", "default"), epochs=6, budget_epochs=24,
             data_fraction=0.5)
# Full: the space as shipped, the arms the defaults were chosen among (hours on 2 CPU cores); 8 seeds,
# because the exact sign-flip test cannot reach p < 0.05 below 6 pairs (its smallest p is 2 / 2^n),
# so fewer seeds bound no 95% interval whatever the data.
FULL = Plan(seeds=8, arms=tuple(ARMS))


def rescore_configs(config: Config, runs: int, seed: int) -> list[Config]:
    """The re-scoring runs of a chosen configuration: fresh training seeds, and held-out splits (other
    split seeds than the search's: validation images it never ranked on)."""
    return [config.replace(seed=RESCORE_SEED_OFFSET + runs * seed + r, split_seed=config.split_seed + 1 + r)
            for r in range(runs)]


def _study(space: spaces.Space, arm: str, fixed: dict[str, Any], budget: int, folder: str) -> list[optuna.trial.FrozenTrial]:
    """One arm's study on one seed, in a SQLite file of its own (so that parallel jobs never share a lock)."""
    seed = fixed["seed"]
    options = runner.Options(storage=f"sqlite:///{folder}/{arm}-{seed}.db", study_name=f"{arm}-{seed}",
                             compute={"epochs": budget}, seed=seed + (0 if arm == "random" else SAMPLER_SEED_OFFSET),
                             sampler=ARMS[arm].sampler, pruner=ARMS[arm].pruner)
    study = runner.run(space, fixed, options, console=Console(file=io.StringIO()))
    return study.get_trials(deepcopy=False)


def run(plan: Plan, space_path: str | Path, data_dir: str | None, device: str, console: Console,
        jobs: int = 1) -> dict[str, Any]:
    """Every arm of `plan` on every seed, in temporary storages; returns `summarize`'s figures.

    `jobs` > 1 trains that many studies at once, in spawned processes with the CPU threads split
    between them. Every study is seeded, so the figures do not depend on `jobs` (on a CPU, bit for bit).
    """
    space = spaces.load(space_path)
    if not isinstance(space.kind, Search):
        raise UserError(f"{space_path} is a {space.kind.name} space; the search bench needs a space with suggest()")
    epochs = plan.epochs or space.defaults.epochs
    budget = plan.budget_epochs or space.kind.budget_epochs or epochs * space.kind.trials
    arms = ("random", *(a for a in plan.arms if a != "random"))
    seeds = range(plan.first_seed, plan.first_seed + plan.seeds)
    cells = [(arm, seed) for seed in seeds for arm in arms]
    fixed = {"data_dir": data_dir, "device": device, "epochs": epochs}
    if plan.data_fraction is not None:
        fixed["data_fraction"] = plan.data_fraction
    with tempfile.TemporaryDirectory() as tmp:
        console.log(f"search bench: {len(cells)} studies of {budget} epochs ({', '.join(arms)} x seeds {seeds.start}-"
                    f"{seeds.stop - 1}), {jobs} at a time; then each chosen configuration retrained {plan.rescore}x")
        args = [(space, arm, {**fixed, "seed": seed}, budget, tmp) for arm, seed in cells]
        trials = _map(_study, args, jobs)
    # arms that chose the same configuration on a seed share its re-scoring runs (seeded: the same numbers)
    picks = [rescore_configs(record.config(figures.chosen(t)), plan.rescore, seed) for (_, seed), t in zip(cells, trials)]
    unique = {c.identity(): c for runs in picks for c in runs}
    console.log(f"re-scoring: {len(unique)} runs")
    scores = dict(zip(unique, _map(_rescore, [(c,) for c in unique.values()], jobs)))
    means = [statistics.fmean(scores[c.identity()] for c in runs) for runs in picks]
    studies = {arm: [t for (a, _), t in zip(cells, trials) if a == arm] for arm in arms}
    rescored = {arm: [m for (a, _), m in zip(cells, means) if a == arm] for arm in arms}
    result = figures.summarize(studies, rescored)
    result.update(space=space.name, epochs=epochs, budget_epochs=budget, first_seed=plan.first_seed,
                  rescore_runs=plan.rescore, data_fraction=plan.data_fraction or space.defaults.data_fraction)
    return result


def _map(function: Any, args: list[tuple[Any, ...]], jobs: int) -> list[Any]:
    """`function` over `args`, in `jobs` spawned processes with the CPU threads split between them."""
    if jobs == 1:
        return list(itertools.starmap(function, args))
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(max(1, (os.cpu_count() or 1) // jobs),)) as pool:
        return list(pool.map(function, *zip(*args)))


def _rescore(config: Config) -> float:
    """One re-scoring run: the validation accuracy of `config` on its own (held-out) split; NaN if it diverges."""
    try:
        value = train(config).val_accuracy
    except Diverged:
        return math.nan
    return math.nan if value is None else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default=str(SPACE), help="search space for --only search (default: the laptop space)")
    parser.add_argument("--arms", help=f"comma-separated arms for --only search, of: {', '.join(ARMS)} "
                                       "(default: random,random_successive_halving,default with --quick, else all); "
                                       "random is always run")
    parser.add_argument("--seeds", type=int, help="seeds per arm for --only search (default: 3 with --quick, else 8)")
    parser.add_argument("--first-seed", type=int, help=f"--only search: the first of the seeds (default {FIRST_SEED}; "
                        f"seeds {TUNED_SEEDS.start}-{TUNED_SEEDS.stop - 1} chose the defaults)")
    parser.add_argument("--rescore", type=int, help="--only search: retrainings of each chosen configuration on fresh "
                        f"seeds and held-out splits (default {RESCORE_RUNS})")
    parser.add_argument("--trial-epochs", type=int, help="--only search: epochs per trial (default: the plan's)")
    parser.add_argument("--budget-epochs", type=int, help="--only search: epochs per study (default: the plan's)")
    parser.add_argument("--data-fraction", type=float, help="--only search: share of the training data (default: the plan's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="studies trained at once by --only search, the CPU threads split between them (default 1)")


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan --quick picks, with the command line's own values in place of its."""
    plan = QUICK if args.quick else FULL
    if args.arms:
        unknown = set(args.arms.split(",")) - set(ARMS)
        if unknown:
            raise UserError(f"--arms: unknown arm(s) {', '.join(sorted(unknown))}; choose among {', '.join(ARMS)}")
        plan = dataclasses.replace(plan, arms=tuple(args.arms.split(",")))
    if args.seeds is not None:
        if args.seeds < 2:
            raise UserError(f"--seeds {args.seeds} is invalid: the defaults' spread needs at least 2 seeds")
        plan = dataclasses.replace(plan, seeds=args.seeds)
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs} is invalid: it must be >= 1")
    for flag, field, low in (("first_seed", "first_seed", 0), ("rescore", "rescore", 1), ("trial_epochs", "epochs", 1),
                             ("budget_epochs", "budget_epochs", 1)):
        value = getattr(args, flag, None)
        if value is not None:
            if value < low:
                raise UserError(f"--{flag.replace('_', '-')} {value} is invalid: it must be >= {low}")
            plan = dataclasses.replace(plan, **{field: value})
    if getattr(args, "data_fraction", None) is not None:
        if not 0 < args.data_fraction <= 1:
            raise UserError(f"--data-fraction {args.data_fraction} is invalid: it must be in (0, 1]")
        plan = dataclasses.replace(plan, data_fraction=args.data_fraction)
    return plan


def main(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    plan = plan_from(args)
    if plan.first_seed < TUNED_SEEDS.stop and plan.first_seed + plan.seeds > TUNED_SEEDS.start:
        console.log(f"note: seeds {TUNED_SEEDS.start}-{TUNED_SEEDS.stop - 1} chose the search defaults; "
                    "a bench on them does not judge the defaults")
    result = run(plan, args.space, args.data_dir, args.device, console, args.jobs)
    console.print(figures.table(result))
    return result
