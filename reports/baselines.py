"""Baseline comparison tables: one row per model at its full budget, and the effort and data axes."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import optuna
import pandas as pd

from reports import final as final_scores
from reports import literature, stats
from reports.tables import MISSING, Table, complete, count, mean, missing, number, pct, pm, recorded, seconds
from study.store import record
from study.store.record import setting

Trials = list[optuna.trial.FrozenTrial]


def model_of(t: optuna.trial.FrozenTrial) -> str:
    return str(record.trial_info(t).model or setting(t, "model", "?"))


def _by_model(study: optuna.Study) -> dict[str, Trials]:
    groups: dict[str, Trials] = defaultdict(list)
    for t in sorted(complete(study), key=lambda t: t.number):
        groups[model_of(t)].append(t)
    return dict(groups)


def _configuration(t: optuna.trial.FrozenTrial) -> tuple[tuple[str, str], ...]:
    """The trial's configuration without its seed: runs that share it are seeds of one setting."""
    return tuple(sorted((k, repr(v)) for k, v in record.trial_info(t).config.items() if k != "seed"))


def _budget(t: optuna.trial.FrozenTrial) -> tuple[float, float]:
    """Training images seen, in epochs of the whole set (then the data fraction, to break ties)."""
    fraction = setting(t, "data_fraction", 1.0)
    return setting(t, "epochs", 0) * fraction, fraction


def full_budget(trials: Trials) -> list[Trials]:
    """The model's runs at its largest budget, one group per configuration (seed aside): runs of other
    budgets (the effort and data axes) stay out of its row, and configurations that differ in anything
    else get rows of their own rather than one mean over both."""
    largest = max(_budget(t) for t in trials)
    groups: dict[tuple[tuple[str, str], ...], Trials] = defaultdict(list)
    for t in trials:
        if _budget(t) == largest:
            groups[_configuration(t)].append(t)
    return list(groups.values())


def _label(model: str, runs: Trials, groups: list[Trials]) -> str:
    """The model's name, with the settings that tell its full-budget configurations apart where it has several."""
    if len(groups) == 1:
        return model
    configs = [dict(_configuration(g[0])) for g in groups]
    differing = sorted(k for k in set().union(*configs) if len({c.get(k) for c in configs}) > 1)
    mine = record.trial_info(runs[0]).config
    return f"{model} ({', '.join(f'{k}={mine.get(k)}' for k in differing)})"


def _test_values(final: optuna.Study, runs: Trials, model: str, only_configuration: bool) -> list[float]:
    """The final runs that retrained one of `runs`; by model name alone only for a final study that stored no
    source trial and a model with a single configuration (nothing else it could mix in)."""
    numbers = {t.number for t in runs}
    done = complete(final)
    if any(record.trial_info(t).source_trial is not None for t in done):
        return [t.value for t in done if record.trial_info(t).source_trial in numbers]
    return final_scores.test_values(final, lambda i: i.model, model) if only_configuration else []


def models(study: optuna.Study, final: optuna.Study | None = None) -> Table | str:
    """One row per model at its full budget; test accuracy from `final` (`study final`'s runs) when given."""
    groups = _by_model(study)
    if not groups:
        return "no completed trial"
    d = record.dataset(record.study_info(study))
    dataset = d.name if d is not None and d.name else ""
    rows = []
    for name, trials in groups.items():
        configurations = {_configuration(t) for t in trials}
        full = full_budget(trials)
        for runs in full:
            tests = (_test_values(final, runs, name, len(configurations) == 1) if final is not None
                     else recorded(runs, lambda i: i.test_accuracy))
            val, test = stats.summary([t.value for t in runs]), stats.summary(tests)
            centre = stats.iqm([t.value for t in runs])
            paper = literature.published(name, dataset)
            rows.append({
                "model": _label(name, runs, full), "n": val.n, "epochs": setting(runs[0], "epochs"),
                "data_fraction": setting(runs[0], "data_fraction"),
                "val_accuracy_mean": val.mean, "val_accuracy_std": val.std,
                "val_accuracy_iqm": centre[0], "iqm_low": centre[1], "iqm_high": centre[2],
                "test_accuracy_mean": test.mean,
                "test_accuracy_std": test.std, "params": mean(runs, lambda i: i.params),
                "flops_per_image": mean(runs, lambda i: i.flops_per_image),
                "images_per_second": mean(runs, lambda i: i.images_per_second), "seconds": mean(runs, lambda i: i.seconds),
                "device": ", ".join(sorted({str(record.trial_info(t).device or "?") for t in runs})),
                "published": paper,
                # the gap is measured on test where it was evaluated, as the literature reports test accuracy
                "gap": None if paper is None else (test.mean if test.n else val.mean) - paper,
            })
    data = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "model": data["model"], "n": data["n"], "epochs": data["epochs"].map(number),
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        "val IQM (%) [95% CI]": [_iqm_text(m, lo, hi) for m, lo, hi in
                                 zip(data["val_accuracy_iqm"], data["iqm_low"], data["iqm_high"])],
        "test acc (%)": [pm(m, s) for m, s in zip(data["test_accuracy_mean"], data["test_accuracy_std"])],
        "params": data["params"].map(count), "FLOPs/img": data["flops_per_image"].map(count),
        "img/s": data["images_per_second"].map(lambda x: number(round(x)) if x == x else MISSING),
        "time": data["seconds"].map(seconds), "device": data["device"],
        "published (%)": data["published"].map(pct), "gap (pp)": data["gap"].map(lambda x: pct(x, True)),
    })
    title = (f"Models at their full budget (accuracy in %, mean ± std over seeds; IQM: interquartile mean, the mean "
             f"itself below 4 seeds, with a percentile bootstrap 95% CI)"
             f"{f'; test accuracy from {final.study_name}, scored once, not used for selection' if final is not None else ''}")
    return Table("baselines", title, data, shown)


def _iqm_text(centre: float, low: float, high: float) -> str:
    if missing(centre):
        return MISSING
    return pct(centre) if missing(low) else f"{pct(centre)} [{pct(low)}, {pct(high)}]"


def effort(study: optuna.Study) -> pd.DataFrame:
    """Mean validation accuracy after each epoch, per model and epoch budget, over the full-data runs."""
    rows = []
    for name, trials in _by_model(study).items():
        fraction = max(setting(t, "data_fraction", 1.0) for t in trials)
        budgets: dict[int, Trials] = defaultdict(list)
        for t in trials:
            if setting(t, "data_fraction", 1.0) == fraction and record.trial_info(t).val_accuracy_curve:
                budgets[setting(t, "epochs", 0)].append(t)
        for epochs, runs in budgets.items():
            # a pruned or resumed run may hold fewer epochs than its budget: only whole curves are averaged
            curves = [c for c in recorded(runs, lambda i: i.val_accuracy_curve) if len(c) == epochs]
            label = name if len(budgets) == 1 else f"{name} ({epochs} epochs)"
            for epoch, accuracy in enumerate(np.mean(curves, axis=0) if curves else [], start=1):
                rows.append({"model": label, "epoch": epoch, "val_accuracy": float(accuracy)})
    return pd.DataFrame(rows, columns=["model", "epoch", "val_accuracy"])


def data_requirements(study: optuna.Study) -> pd.DataFrame:
    """Accuracy mean and std per model and data fraction, at each model's largest epoch budget."""
    rows = []
    for name, trials in _by_model(study).items():
        epochs = max(setting(t, "epochs", 0) for t in trials)
        fractions: dict[float, list[float]] = defaultdict(list)
        for t in trials:
            if setting(t, "epochs", 0) == epochs:
                fractions[setting(t, "data_fraction", 1.0)].append(t.value)
        for fraction, values in sorted(fractions.items()):
            s = stats.summary(values)
            rows.append({"model": name, "data_fraction": fraction, "n": s.n,
                         "val_accuracy_mean": s.mean, "val_accuracy_std": s.std})
    return pd.DataFrame(rows, columns=["model", "data_fraction", "n", "val_accuracy_mean", "val_accuracy_std"])
