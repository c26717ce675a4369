"""Baseline comparison tables: one row per model at its full budget, and the effort and data axes."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import optuna
import pandas as pd

from reports import final as final_scores
from reports import literature, stats
from reports.tables import MISSING, Table, complete, count, mean, number, pct, pm, recorded, seconds
from study import record
from study.record import setting

Trials = list[optuna.trial.FrozenTrial]


def model_of(t: optuna.trial.FrozenTrial) -> str:
    return str(record.trial_info(t).model or setting(t, "model", "?"))


def _by_model(study: optuna.Study) -> dict[str, Trials]:
    groups: dict[str, Trials] = defaultdict(list)
    for t in sorted(complete(study), key=lambda t: t.number):
        groups[model_of(t)].append(t)
    return dict(groups)


def _full_budget(trials: Trials) -> Trials:
    """The model's runs at its largest epoch budget and data fraction: the axis runs stay out of its row."""
    epochs = max(setting(t, "epochs", 0) for t in trials)
    fraction = max(setting(t, "data_fraction", 1.0) for t in trials)
    return [t for t in trials if setting(t, "epochs", 0) == epochs and setting(t, "data_fraction", 1.0) == fraction]


def models(study: optuna.Study, final: optuna.Study | None = None) -> Table | str:
    """One row per model at its full budget; test accuracy from `final` (`study final`'s runs) when given."""
    groups = _by_model(study)
    if not groups:
        return "no completed trial"
    d = record.dataset(record.study_info(study))
    dataset = d.name if d is not None and d.name else ""
    rows = []
    for name, trials in groups.items():
        runs = _full_budget(trials)
        tests = (final_scores.test_values(final, lambda i: i.model, name) if final is not None
                 else recorded(runs, lambda i: i.test_accuracy))
        val, test = stats.summary([t.value for t in runs]), stats.summary(tests)
        paper = literature.published(name, dataset)
        rows.append({
            "model": name, "n": val.n, "epochs": setting(runs[0], "epochs"), "data_fraction": setting(runs[0], "data_fraction"),
            "val_accuracy_mean": val.mean, "val_accuracy_std": val.std, "test_accuracy_mean": test.mean,
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
        "test acc (%)": [pm(m, s) for m, s in zip(data["test_accuracy_mean"], data["test_accuracy_std"])],
        "params": data["params"].map(count), "FLOPs/img": data["flops_per_image"].map(count),
        "img/s": data["images_per_second"].map(lambda x: number(round(x)) if x == x else MISSING),
        "time": data["seconds"].map(seconds), "device": data["device"],
        "published (%)": data["published"].map(pct), "gap (pp)": data["gap"].map(lambda x: pct(x, True)),
    })
    title = (f"Models at their full budget (accuracy in %, mean ± std over seeds)"
             f"{f'; test accuracy from {final.study_name}, scored once, not used for selection' if final is not None else ''}")
    return Table("baselines", title, data, shown)


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
