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

import numpy as np
import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from study.config import Config
from study.engine.train import Diverged, train
from study.errors import UserError
from study.paired import probability_of_improvement, sign_flip
from study.search import runner
from study.spaces import space as spaces
from study.store import record
from study.store.states import FINISHED

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "naivenet32_cifar10.py"
SAMPLER_SEED_OFFSET = 1000  # so that no arm's random start-up replays random search's trials
TUNED_SEEDS = range(0, 5)  # the seeds the search defaults were chosen on (docs/search.md)
FIRST_SEED = 100  # the bench's seeds start here, past TUNED_SEEDS
RESCORE_RUNS = 2  # retrainings of each chosen configuration on fresh seeds and held-out splits
RESCORE_SEED_OFFSET = 50_000  # training seeds of the re-scoring runs: no search trial uses them

# name: (sampler, pruner); "default" is the space's own sampler and pruner with study.samplers.registry
ARMS = {
    "random": ("random", "none"),
    "random_successive_halving": ("random", "successive_halving"),  # pruning without a model: what TPE adds
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


def versus(arm: Any, baseline: Any) -> dict[str, Any]:
    """`arm` against `baseline`, paired by seed: the figures the table prints beside each arm."""
    d = np.asarray(arm, dtype=float) - np.asarray(baseline, dtype=float)
    p, low, high = sign_flip(d)
    improvement, i_low, i_high = probability_of_improvement(arm, baseline)
    return {"mean_difference": float(d.mean()), "differences": d.tolist(), "p": p, "ci_low": low, "ci_high": high,
            "test": "exact sign-flip, two-sided", "p_improvement": improvement,
            "p_improvement_low": i_low, "p_improvement_high": i_high}


def chosen(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The configuration a study chose: its best finished trial."""
    return max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)


def rescore_configs(config: Config, runs: int, seed: int) -> list[Config]:
    """The re-scoring runs of a chosen configuration: fresh training seeds, and held-out splits (other
    split seeds than the search's: validation images it never ranked on)."""
    return [config.replace(seed=RESCORE_SEED_OFFSET + runs * seed + r, split_seed=config.split_seed + 1 + r)
            for r in range(runs)]


def summarize(studies: dict[str, list[list[optuna.trial.FrozenTrial]]],
              rescored: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """The figures from stored studies: `studies[arm][seed]` is that study's trials; "random" is required.
    `rescored[arm][seed]`, where given, is the arm's chosen configuration re-scored on fresh runs."""
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
            "trials": [len([t for t in trials if t.state in FINISHED]) for trials in per_seed],
            "epochs_per_trial": [[len(t.intermediate_values) for t in trials] for trials in per_seed],
        }
        if rescored is not None:
            arms[arm]["rescored"] = rescored[arm]
            arms[arm]["median_rescored"] = statistics.median(rescored[arm])
            arms[arm]["vs_random"] = None if arm == "random" else versus(rescored[arm], rescored["random"])
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
    picks = [rescore_configs(record.config(chosen(t)), plan.rescore, seed) for (_, seed), t in zip(cells, trials)]
    unique = {c.identity(): c for runs in picks for c in runs}
    console.log(f"re-scoring: {len(unique)} runs")
    scores = dict(zip(unique, _map(_rescore, [(c,) for c in unique.values()], jobs)))
    means = [statistics.fmean(scores[c.identity()] for c in runs) for runs in picks]
    studies = {arm: [t for (a, _), t in zip(cells, trials) if a == arm] for arm in arms}
    rescored = {arm: [m for (a, _), m in zip(cells, means) if a == arm] for arm in arms}
    result = summarize(studies, rescored)
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


def _interval(low: float, high: float, scale: float = 1.0, digits: int = 1) -> str:
    if math.isnan(low):
        return "n/a"
    ends = [("-inf" if x == -math.inf else "+inf") if math.isinf(x) else f"{scale * x:+.{digits}f}" for x in (low, high)]
    return f"[{ends[0]}, {ends[1]}]"


def table(result: dict[str, Any]) -> Table:
    d = result["defaults"]
    first = result.get("first_seed", 0)
    t = Table(title=f"search bench: {result['space']}, {result['budget_epochs']} epochs per study "
                    f"({result['epochs']} per trial, data_fraction {result['data_fraction']}), seeds {first}-"
                    f"{first + result['seeds'] - 1}; defaults {d['mean']:.3f} ± {d['std']:.3f} (range {d['range']:.3f}); "
                    f"re-scored: each chosen configuration retrained {result.get('rescore_runs', 0)}x on fresh seeds and "
                    "held-out splits; Δ, its 95% CI and p (exact sign-flip, two-sided) on the re-scored accuracy, "
                    "paired by seed, in points")
    for col in ("arm", "best per seed (selecting)", "re-scored per seed", "median re-scored", "Δ vs random",
                "95% CI", "p", "P(arm > random) [95% CI]", "beats random (selecting)", "compute to random's best",
                "trials"):
        t.add_column(col, justify="right")
    for arm, a in result["arms"].items():
        share = a["median_share_of_random_compute"]
        v = a.get("vs_random")
        t.add_row(arm, " / ".join(f"{b:.3f}" for b in a["bests"]),
                  " / ".join(f"{b:.3f}" for b in a.get("rescored", [])),
                  f"{a['median_rescored']:.3f}" if "median_rescored" in a else "",
                  "-" if v is None else f"{100 * v['mean_difference']:+.1f}",
                  "-" if v is None else _interval(v["ci_low"], v["ci_high"], 100),
                  "-" if v is None else f"{v['p']:.3f}",
                  "-" if v is None else f"{v['p_improvement']:.2f} "
                                        f"{_interval(v['p_improvement_low'], v['p_improvement_high'], 1, 2)}",
                  "-" if arm == "random" else f"{a['beats_random']}/{result['seeds']}",
                  "not reached" if share is None else f"{share:.2f}", f"{statistics.median(a['trials']):.0f}")
    return t


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
    if plan.first_seed < TUNED_SEEDS.stop and plan.first_seed + plan.seeds > TUNED_SEEDS.start:
        console.log(f"note: seeds {TUNED_SEEDS.start}-{TUNED_SEEDS.stop - 1} chose the search defaults; "
                    "a bench on them does not judge the defaults")
    result = run(plan, args.space, args.data_dir, args.device, console, args.jobs)
    console.print(table(result))
    return result
