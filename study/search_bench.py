"""`python -m study bench --only search`: does the default search earn its compute?

Every arm (a sampler and a pruner) searches the same space with the same epoch budget (study.budget)
on several seeds; each seed's studies share the training seed, and trial 0 of every study is the
space's defaults. Per arm it reports the median best validation accuracy at the budget, the seeds
on which it beats random search's best, the epochs it needs to reach random search's final best
(as a share of random's), and, to tell gains from noise, the defaults' own seed-to-seed spread:
trial 0 of each seed's random study, the defaults trained with that seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
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
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from study import record, runner
from study import space as spaces
from study.errors import UserError

SPACE = Path(__file__).resolve().parents[1] / "spaces" / "naivenet32_cifar10.py"
SAMPLER_SEED_OFFSET = 1000  # so that no arm's random start-up replays random search's trials
# name: (sampler, pruner); "default" is the space's own sampler and pruner with study.search_defaults
ARMS = {
    "random": ("random", "none"),
    "default": (None, None),
    "optuna_defaults": ("tpe_optuna", "hyperband_optuna"),  # TPE's 10 start-up trials, Hyperband from epoch 1
    "tpe_random_startup": ("tpe_random_startup", None),  # the former default: random start-up trials
    "tpe_no_pruning": ("tpe", "none"),
    "tpe_successive_halving": ("tpe", "successive_halving"),
    "tpe_median": ("tpe", "median"),
    "tpe_percentile": ("tpe", "percentile"),
    "gp_hyperband": ("gp", "hyperband"),
}


@dataclass(frozen=True)
class Plan:
    """How big the A/B runs are; None takes the space's own value (epochs, budget_epochs, data_fraction)."""

    seeds: int
    arms: tuple[str, ...]
    epochs: int | None = None
    budget_epochs: int | None = None
    data_fraction: float | None = None


# Quick: 3 seeds x 2 arms x 24 epochs (4 full-length trials of 6 epochs) on half the data. On a
# quarter, 6 epochs of the defaults' recipe stay at chance (0.10) and every arm ties.
QUICK = Plan(seeds=3, arms=("random", "default"), epochs=6, budget_epochs=24, data_fraction=0.5)
# Full: the space as shipped, 5 seeds, the arms the defaults were chosen among (hours on 2 CPU cores).
FULL = Plan(seeds=5, arms=tuple(ARMS))


def arm_space(space: spaces.Space, arm: str) -> spaces.Space:
    sampler, pruner = ARMS[arm]
    return dataclasses.replace(space, sampler=sampler or space.sampler, pruner=pruner or space.pruner)


def epochs_to_reach(trials: list[optuna.trial.FrozenTrial], target: float) -> int | None:
    """Epochs trained, in trial order, until a trial finishes with validation accuracy >= `target`."""
    spent = 0
    for t in sorted(trials, key=lambda t: t.number):
        spent += len(t.intermediate_values)
        if t.state == TrialState.COMPLETE and t.value >= target:
            return spent
    return None


def best(trials: list[optuna.trial.FrozenTrial]) -> float:
    return max(t.value for t in trials if t.state == TrialState.COMPLETE)


def _reference(trials: list[optuna.trial.FrozenTrial]) -> float:
    return next(t.value for t in trials if record.trial_info(t).reference and t.state == TrialState.COMPLETE)


def summarize(studies: dict[str, list[list[optuna.trial.FrozenTrial]]]) -> dict[str, Any]:
    """The figures from stored studies: `studies[arm][seed]` is that study's trials; "random" is required."""
    randoms = studies["random"]
    targets = [best(trials) for trials in randoms]
    random_epochs = [sum(len(t.intermediate_values) for t in trials) for trials in randoms]
    defaults = [_reference(trials) for trials in randoms]
    arms = {}
    for arm, per_seed in studies.items():
        bests = [best(trials) for trials in per_seed]
        reach = [epochs_to_reach(trials, target) for trials, target in zip(per_seed, targets)]
        shares = [float("inf") if r is None else r / e for r, e in zip(reach, random_epochs)]
        median_share = statistics.median(shares)
        arms[arm] = {
            "median_best": statistics.median(bests), "bests": bests,
            "beats_random": sum(b > t for b, t in zip(bests, targets)),
            "epochs_to_reach_random_best": reach,
            # None: the arm missed random's final best on most seeds
            "median_share_of_random_compute": None if median_share == float("inf") else median_share,
            "trials": [len([t for t in trials if t.state in runner.FINISHED]) for trials in per_seed],
            "epochs_per_trial": [[len(t.intermediate_values) for t in trials] for trials in per_seed],
        }
    spread = statistics.stdev(defaults) if len(defaults) > 1 else 0.0
    return {
        "seeds": len(randoms), "arms": arms,
        "defaults": {"values": defaults, "mean": statistics.mean(defaults), "std": spread,
                     "range": max(defaults) - min(defaults)},
    }


def _study(space: spaces.Space, arm: str, fixed: dict[str, Any], budget: int, folder: str) -> list[optuna.trial.FrozenTrial]:
    """One arm's study on one seed, in a SQLite file of its own (so that parallel jobs never share a lock)."""
    seed = fixed["seed"]
    study = runner.run(arm_space(space, arm), fixed, storage=f"sqlite:///{folder}/{arm}-{seed}.db", study_name=f"{arm}-{seed}",
                       compute={"epochs": budget}, seed=seed + (0 if arm == "random" else SAMPLER_SEED_OFFSET),
                       console=Console(file=io.StringIO()))
    return study.get_trials(deepcopy=False)


def run(plan: Plan, space_path: str | Path, data_dir: str | None, device: str, console: Console,
        jobs: int = 1) -> dict[str, Any]:
    """Every arm of `plan` on every seed, in temporary storages; returns `summarize`'s figures.

    `jobs` > 1 trains that many studies at once, in spawned processes with the CPU threads split
    between them. Every study is seeded, so the figures do not depend on `jobs` (on a CPU, bit for bit).
    """
    space = spaces.load(space_path)
    if space.kind.name != "search":
        raise UserError(f"{space_path} is a {space.kind.name} space; the search bench needs a space with suggest()")
    epochs = plan.epochs or space.defaults.epochs
    budget = plan.budget_epochs or space.budget_epochs or epochs * space.trials
    arms = ("random", *(a for a in plan.arms if a != "random"))
    cells = [(arm, seed) for seed in range(plan.seeds) for arm in arms]
    fixed = {"data_dir": data_dir, "device": device, "epochs": epochs}
    if plan.data_fraction is not None:
        fixed["data_fraction"] = plan.data_fraction
    with tempfile.TemporaryDirectory() as tmp:
        console.log(f"search bench: {len(cells)} studies of {budget} epochs ({', '.join(arms)} x {plan.seeds} seeds), "
                    f"{jobs} at a time")
        args = [(space, arm, {**fixed, "seed": seed}, budget, tmp) for arm, seed in cells]
        if jobs == 1:
            trials = list(itertools.starmap(_study, args))
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                                     initargs=(max(1, (os.cpu_count() or 1) // jobs),)) as pool:
                trials = list(pool.map(_study, *zip(*args)))
    studies = {arm: [t for (a, _), t in zip(cells, trials) if a == arm] for arm in arms}
    result = summarize(studies)
    result.update(space=space.name, epochs=epochs, budget_epochs=budget,
                  data_fraction=plan.data_fraction or space.defaults.data_fraction)
    return result


def table(result: dict[str, Any]) -> Table:
    d = result["defaults"]
    t = Table(title=f"search bench: {result['space']}, {result['budget_epochs']} epochs per study "
                    f"({result['epochs']} per trial, data_fraction {result['data_fraction']}), {result['seeds']} seeds; "
                    f"defaults {d['mean']:.3f} ± {d['std']:.3f} (range {d['range']:.3f})")
    for col in ("arm", "best per seed", "median best", "- defaults", "beats random", "compute to random's best", "trials"):
        t.add_column(col, justify="right")
    for arm, a in result["arms"].items():
        share = a["median_share_of_random_compute"]
        t.add_row(arm, " / ".join(f"{b:.3f}" for b in a["bests"]), f"{a['median_best']:.3f}",
                  f"{a['median_best'] - d['mean']:+.3f}",
                  "-" if arm == "random" else f"{a['beats_random']}/{result['seeds']}",
                  "not reached" if share is None else f"{share:.2f}", f"{statistics.median(a['trials']):.0f}")
    return t


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default=str(SPACE), help="search space for --only search (default: the laptop space)")
    parser.add_argument("--arms", help=f"comma-separated arms for --only search, of: {', '.join(ARMS)} "
                                       "(default: random,default with --quick, else all); random is always run")
    parser.add_argument("--seeds", type=int, help="seeds per arm for --only search (default: 3 with --quick, else 5)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="studies trained at once by --only search, the CPU threads split between them (default 1)")


def main(args: argparse.Namespace, console: Console) -> dict[str, Any]:
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
    result = run(plan, args.space, args.data_dir, args.device, console, args.jobs)
    console.print(table(result))
    return result
