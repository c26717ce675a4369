"""The ablation path (Fawcett & Hoos 2016) from a study's reference trial to its best, by real retraining.

Starting at the reference configuration, each step trains every configuration that changes one more
of the remaining parameters to the best trial's value, keeps the change that gains most, and goes
on until every parameter has its best value. Every run is a trial of its own study, so an
interrupted path resumes without retraining what it already has.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table
from scipy import stats

from study import data, record, storage
from study.errors import UserError
from study.progress import TABLE_BOX, StudyProgress, fmt_setting
from study.train import resolve_device
from study.trial import train_told

# studies that commands derive from a search and store beside it
DERIVED = ("-ablation-path", "-final")


def load_source(url: str, study_name: str | None) -> optuna.Study:
    store = storage.open_storage(url)
    names = optuna.get_all_study_names(store)
    if study_name is None:
        searches = [n for n in names if not n.endswith(DERIVED)]
        if len(searches) != 1:
            raise UserError(f"{url} holds studies {names}; pick one with --study-name")
        study_name = searches[0]
    if study_name not in names:
        raise UserError(f"no study {study_name!r} in {url}; it holds: {', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=study_name, storage=store)
    record.check_ours(study, url, "pass another with --study-name")
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
    seed_list = [start.seed + i for i in range(n_seeds)]
    storage.check_study_name(f"{source.study_name}-ablation-path")
    resolve_device(start.device)  # what would fail every run fails here, before the path's study is made
    data.load(start.dataset, start.data_dir)

    path_study = optuna.create_study(
        storage=storage.open_storage(url, heartbeat=False), study_name=f"{source.study_name}-ablation-path",
        direction="maximize", load_if_exists=True, pruner=optuna.pruners.NopPruner(),
    )
    record.write_study(path_study, kind="ablation_path", source_study=source.study_name, seeds=n_seeds,
                       dataset=info.dataset, space=info.space, space_path=info.space_path)
    done = {
        (frozenset(record.trial_info(t).changed), record.trial_info(t).seed): t.value
        for t in path_study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE
    }
    store = storage.artifact_store(url)
    steps = len(goal)
    budget = n_seeds * (1 + steps * (steps + 1) // 2)

    with StudyProgress(console, budget, len(done)) as progress:

        def score(changed: frozenset[str], step: int) -> list[float]:
            values = []
            for seed in seed_list:
                if (changed, seed) not in done:
                    config = start.replace(**{p: goal[p] for p in changed}, seed=seed)
                    # a failed run (NaN) counts as no evidence for its change
                    done[(changed, seed)] = train_told(path_study, config, progress, store, changed=sorted(changed),
                                                       seed=seed, path_step=step, variant=_label(changed))
                values.append(done[(changed, seed)])
            return values

        current: frozenset[str] = frozenset()
        base = score(current, 0)
        path = [_step(0, "reference", None, None, base, None)]
        while len(current) < steps:
            tried = {p: score(current | {p}, len(current) + 1) for p in goal if p not in current}
            param = max(tried, key=lambda p: _mean(tried[p]))
            current = current | {param}
            path.append(_step(len(current), param, start.to_dict()[param], goal[param], tried[param], path[-1]))
    record.write_study(path_study, path=path)
    console.print(path_table(path, path_study.study_name))
    return path


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.fmean(finite) if finite else float("-inf")


def _step(step: int, param: str, old: Any, new: Any, values: list[float], previous: dict | None) -> dict[str, Any]:
    mean = _mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    gain = mean - previous["val_accuracy_mean"] if previous else 0.0
    half = _gain_half_width(values, previous["values"]) if previous else math.nan
    return {"step": step, "param": param, "from": old, "to": new, "val_accuracy_mean": mean,
            "val_accuracy_std": std, "gain": gain, "seeds": len(values), "values": values,
            # None, not NaN, when there is no interval: the path is stored as JSON and compared after loading
            "gain_ci_half_width": None if half != half else half,
            "within_noise": None if half != half else bool(abs(gain) <= half)}


def _gain_half_width(values: list[float], before: list[float]) -> float:
    """Half the 95% t interval of the step's gain over the seeds both runs share (NaN below two seeds).

    Both configurations ran the same seeds, so the gain is judged on the paired differences: a gain
    inside this half-width is within the seeds' noise, and the table marks it so.
    """
    d = [a - b for a, b in zip(values, before) if a == a and b == b]
    if len(d) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d)))


def path_table(path: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=f"{title} (accuracy in %, gain in points; ~ marks a gain within its 95% seed noise)", box=TABLE_BOX)
    for col in ("step", "parameter", "change", "val acc (mean ± std)", "gain", "± 95%", "note"):
        table.add_column(col, justify="right")
    for s in path:
        change = "" if s["step"] == 0 else f"{fmt_setting(s['from'])} -> {fmt_setting(s['to'])}"
        half = s.get("gain_ci_half_width")
        table.add_row(str(s["step"]), s["param"], change,
                      f"{100 * s['val_accuracy_mean']:.2f} ± {100 * s['val_accuracy_std']:.2f}",
                      "" if s["step"] == 0 else f"{100 * s['gain']:+.2f}", "" if half is None else f"{100 * half:.2f}",
                      "~ within noise" if s.get("within_noise") else "")
    return table
