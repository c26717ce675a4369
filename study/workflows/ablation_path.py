"""The ablation path (Fawcett & Hoos 2016) from a study's reference trial to its best, by real retraining.

Starting at the reference configuration, each step trains every configuration that changes one more
of the remaining parameters to the best trial's value, keeps the change that gains most, and goes
on until every parameter has its best value. What a step reports is measured on other seeds than
those that chose it (`walk`), so that the choice does not inflate the gain. Every run is a trial of its own study, so an
interrupted path resumes without retraining what it already has; a stored run counts only when it
trained the whole configuration asked for (`Config.identity`), so other settings (--epochs 30) train anew.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from study import paired
from study.config import fmt_setting
from study.engine import datasets
from study.engine.device import resolve_device
from study.errors import UserError
from study.search import recovery
from study.search.progress import TABLE_BOX, StudyProgress
from study.search.trial import train_one_trial
from study.store import checks, record, storage
from study.store.folders import artifact_store
from study.store.urls import check_study_name
from study.store.vocabulary import DERIVED_SUFFIXES, INF, Derived, StudyKind, ci_end


def load_source(url: str, study_name: str | None) -> optuna.Study:
    store = storage.open_storage(url)
    names = optuna.get_all_study_names(store)
    if study_name is None:
        searches = [n for n in names if not n.endswith(DERIVED_SUFFIXES)]
        if len(searches) != 1:
            raise UserError(f"{url} holds studies {names}; pick one with --study-name")
        study_name = searches[0]
    if study_name not in names:
        raise UserError(f"no study {study_name!r} in {url}; it holds: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=store)
    checks.check_ours(study, url, "pass another with --study-name")
    return study


def _endpoints(source: optuna.Study) -> tuple[optuna.trial.FrozenTrial, optuna.trial.FrozenTrial]:
    complete = [t for t in source.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    reference = next((t for t in complete if record.trial_info(t).reference), None)
    if reference is None or not complete:
        raise UserError(f"study {source.study_name} has no completed reference trial (trial 0); run the search first")
    return reference, max(complete, key=lambda t: t.value)


def _label(changed: frozenset[str]) -> str:
    return "+".join(sorted(changed)) or "reference"


def ablation_path(
    url: str,
    study_name: str | None,
    fixed: dict[str, Any],
    seeds: int | None = None,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Walk the path, store it as `<source>-ablation-path`, and return its steps."""
    console = console or Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = load_source(url, study_name)
    info = record.study_info(source)
    reference, best = _endpoints(source)
    start = record.config(reference).replace(**fixed)
    goal = {p: record.setting(best, p) for p in best.params if best.params[p] != reference.params.get(p)}
    n_seeds = seeds or info.seeds or 3
    choosing = [start.seed + i for i in range(n_seeds)]
    fresh = [start.seed + n_seeds + i for i in range(n_seeds)]  # never among the seeds that choose
    name = Derived.ABLATION_PATH.name_for(source.study_name)
    check_study_name(name)
    resolve_device(start.device)  # what would fail every run fails here, before the path's study is made
    datasets.load(start)

    path_study = optuna.create_study(
        storage=storage.open_storage(url, heartbeat=False), study_name=name,
        direction="maximize", load_if_exists=True, pruner=optuna.pruners.NopPruner(),
    )
    record.write_study(path_study, kind=StudyKind.ABLATION_PATH, source_study=source.study_name, seeds=n_seeds,
                       dataset=info.dataset, space=info.space, space_path=info.space_path)
    recovery.fail_dead(path_study)  # a killed earlier run's trial: its cell is trained again below
    # a stored run stands in for a requested one only when it trained the very same configuration
    done = {record.config(t).identity(): t.value
            for t in path_study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
    store = artifact_store(url)
    steps = len(goal)
    budget = n_seeds * (1 + steps * (steps + 1) // 2) + len(fresh) * (1 + steps)

    with StudyProgress(console, budget, 0) as progress:

        def run(changed: frozenset[str], seed: int, step: int) -> float:
            config = start.replace(**{p: goal[p] for p in changed}, seed=seed)
            if config.identity() not in done:
                # a failed run (NaN) counts as no evidence for its change
                done[config.identity()] = train_one_trial(path_study, config, progress, store, changed=sorted(changed),
                                                     seed=seed, path_step=step, variant=_label(changed))
            return done[config.identity()]

        path = walk(list(goal), choosing, fresh, run)
    for s in path[1:]:
        s["from"], s["to"] = start.to_dict()[s["param"]], goal[s["param"]]
    record.write_study(path_study, path=path)
    console.print(path_table(path, path_study.study_name))
    return path


def walk(params: list[str], choosing: list[int], fresh: list[int],
         run: Callable[[frozenset[str], int, int], float]) -> list[dict[str, Any]]:
    """The path's steps: at each, the change that gains most on the `choosing` seeds is kept, and the
    kept configuration is re-scored on the `fresh` seeds, which choose nothing. A step's accuracy,
    gain and interval are that re-score's, paired seed by seed with the previous step's re-score:
    the largest of several noisy gains, read on the runs that picked it, is biased upwards (by about
    1 point in a simulation with no true effect, 5 changes and 3 seeds); on fresh seeds it is not.
    `run(changed, seed, step)` returns the validation accuracy of the start with `changed` applied."""
    current: frozenset[str] = frozenset()
    chosen_at = [run(current, seed, 0) for seed in choosing]
    path = [_step(0, "reference", chosen_at, [run(current, seed, 0) for seed in fresh], None)]
    while len(current) < len(params):
        step = len(current) + 1
        tried = {p: [run(current | {p}, seed, step) for seed in choosing] for p in params if p not in current}
        param = max(tried, key=lambda p: _mean(tried[p]))
        current = current | {param}
        path.append(_step(step, param, tried[param], [run(current, seed, step) for seed in fresh], path[-1]))
    return path


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.fmean(finite) if finite else float("-inf")


def _step(step: int, param: str, choosing: list[float], values: list[float], previous: dict | None) -> dict[str, Any]:
    """One step as stored: its re-scored accuracy on the fresh seeds (`values`) and its gain over the
    previous step's, with the exact sign-flip p and interval of the paired seed differences."""
    mean = _mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    d = [a - b for a, b in zip(values, previous["values"]) if a == a and b == b] if previous else []
    p, low, high = paired.sign_flip(d) if previous else (math.nan, math.nan, math.nan)
    # None, not NaN, where there is no figure: the path is stored as JSON and compared after loading
    return {"step": step, "param": param, "from": None, "to": None, "val_accuracy_mean": mean,
            "val_accuracy_std": std, "gain": statistics.fmean(d) if d else 0.0, "seeds": len(values), "values": values,
            "choosing_values": choosing, "choosing_mean": _mean(choosing),
            "gain_p": _finite(p), "gain_ci_low": ci_end(low), "gain_ci_high": ci_end(high),
            "gain_test": "exact sign-flip, two-sided, on the fresh seeds" if previous else None,
            "within_noise": None if low != low else bool(low <= 0 <= high)}


def _finite(x: float) -> float | None:
    """NaN and infinities as None: JSON has neither."""
    return None if x != x or math.isinf(x) else float(x)


def _end(x: float | str | None) -> str:
    if x is None:
        return ""
    return ("+inf" if x == INF else "-inf") if isinstance(x, str) else f"{100 * x:+.2f}"


def path_table(path: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=f"{title} (accuracy in %, gain in points, re-scored on fresh seeds that chose nothing; the "
                        "95% CI and two-sided p of the exact sign-flip test on the paired seed differences; ~ marks a gain "
                        "whose CI holds 0; below 6 seeds the test cannot reach p < 0.05, so no CI is bounded)",
                  box=TABLE_BOX)
    for col in ("step", "parameter", "change", "val acc (mean ± std)", "when chosen", "gain", "95% CI", "p", "note"):
        table.add_column(col, justify="right")
    for s in path:
        change = "" if s["step"] == 0 else f"{fmt_setting(s['from'])} -> {fmt_setting(s['to'])}"
        ci = "" if s.get("gain_ci_low") is None else f"[{_end(s['gain_ci_low'])}, {_end(s['gain_ci_high'])}]"
        chosen = s.get("choosing_mean")
        table.add_row(str(s["step"]), s["param"], change,
                      f"{100 * s['val_accuracy_mean']:.2f} ± {100 * s['val_accuracy_std']:.2f}",
                      "" if chosen is None else f"{100 * chosen:.2f}",
                      "" if s["step"] == 0 else f"{100 * s['gain']:+.2f}", ci,
                      "" if s.get("gain_p") is None else f"{s['gain_p']:.3f}",
                      "~ within noise" if s.get("within_noise") else "")
    return table
