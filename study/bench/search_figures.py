"""The search bench's figures from its stored studies, and the table that prints them (study.bench.search
runs the studies; its docstring says what each figure means)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from rich.table import Table

from study.paired import probability_of_improvement, sign_flip
from study.store import record
from study.store.states import FINISHED


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
