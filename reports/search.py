"""Overview and search tables: what each study is, its top trials, the reference against the best, importances."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from reports import importance
from reports.tables import Table, best, complete, count, devices, number, pct, pm_number, seconds
from study.config import DATASET_CLASSES, FULL_TEST_IMAGES, FULL_TRAIN_IMAGES
from study.store import record
from study.store.ranking import top_trials as top_trial_rows
from study.store.record import StudyInfo, setting

TOP = 10
TOP_COLUMNS = ("trial", "val_accuracy", "epochs", "model_params", "flops_per_image", "seconds")
NOT_RECORDED = "not recorded"


def kind(study: optuna.Study) -> str:
    return record.study_info(study).kind


def _dataset(info: StudyInfo) -> str:
    d = record.dataset(info)
    if d is None:
        return NOT_RECORDED
    train, test = d.train_images, d.test_images
    # every CIFAR data set has these full sets; fewer images is a subset
    full = (FULL_TRAIN_IMAGES, FULL_TEST_IMAGES) if d.name in DATASET_CLASSES else None
    subset = full is not None and (train, test) != full
    size = f"{train:,} train / {test:,} test images" if train is not None and test is not None else "image counts not recorded"
    return f"{d.name or '?'} ({'subset: ' if subset else ''}{size}{f' of {full[0]:,} / {full[1]:,}' if subset else ''})"


def _per_trial_data(study: optuna.Study) -> str:
    done = complete(study)
    if not done:
        return "no completed trial"
    t, info = done[0], record.trial_info(done[0])
    return (f"{number(info.train_images)} train / {number(info.val_images)} validation images "
            f"at {number(setting(t, 'resolution'))} px, data_fraction {number(setting(t, 'data_fraction'))}")


def overview_column(study: optuna.Study) -> dict[str, Any]:
    """One study's overview as field -> value (raw where it is a number)."""
    info = record.study_info(study)
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    durations = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
    return {
        "kind": info.kind,
        "space file": _recorded(info.space_path),
        "data set": _dataset(info),
        "per trial": _per_trial_data(study),
        "device": devices(study),
        "trials complete": states[TrialState.COMPLETE],
        "trials pruned": states[TrialState.PRUNED],
        "trials failed": states[TrialState.FAIL] - sum(record.stepped_aside(t) for t in trials),  # those trained nothing
        "trials running or waiting": states[TrialState.RUNNING] + states[TrialState.WAITING],
        "compute time (s)": sum(durations),
        # a trial budget is stored as its count, a compute budget as text ("100 epochs")
        "budget": f"{info.budget} trials" if isinstance(info.budget, int) else _recorded(info.budget),
        "sampler": _recorded(info.sampler),
        "pruner": _recorded(info.pruner),
    }


def _recorded(value: str | None) -> str:
    """Studies of earlier releases may lack an attribute: their overview says so."""
    return NOT_RECORDED if value is None else value


def overview(studies: list[optuna.Study]) -> Table:
    data = pd.DataFrame({s.study_name: overview_column(s) for s in studies})
    shown = data.copy().astype(object)
    shown.loc["compute time (s)"] = [seconds(x) for x in data.loc["compute time (s)"]]
    shown = shown.rename(index={"compute time (s)": "compute time"})
    data.index.name = shown.index.name = "field"
    return Table("overview", "Studies", data.reset_index(), shown.reset_index())


def top_trials(study: optuna.Study, n: int = TOP) -> Table:
    rows = top_trial_rows(study, n)
    names = list(rows[0]["params"]) if rows else []
    data = pd.DataFrame([{**{c: r[c] for c in TOP_COLUMNS}, **r["params"]} for r in rows])
    shown = pd.DataFrame({
        "trial": data["trial"], "val acc (%)": data["val_accuracy"].map(pct), "epochs": data["epochs"].map(number),
        "params": data["model_params"].map(count), "FLOPs/img": data["flops_per_image"].map(count),
        "time": data["seconds"].map(seconds), **{p: data[p].map(number) for p in names},
    })
    return Table("top_trials", f"Top {len(rows)} completed trials", data, shown)


def reference_vs_best(study: optuna.Study) -> Table | str:
    """Parameter by parameter, the seed's defaults (the reference trial) against the best trial."""
    done = complete(study)
    reference = next((t for t in done if record.trial_info(t).reference), None)
    if reference is None:
        return "no completed reference trial (trial 0 with the seed's defaults)"
    top = best(study)
    names = sorted(set(reference.params) | set(top.params))
    rows = [{"parameter": p, "reference": reference.params.get(p), "best": top.params.get(p),
             "changed": reference.params.get(p) != top.params.get(p)} for p in names]
    rows.append({"parameter": "val_accuracy", "reference": reference.value, "best": top.value,
                 "changed": top.number != reference.number})
    data = pd.DataFrame(rows)
    shown = data.copy().astype(object)
    shown["reference"] = [pct(v) if p == "val_accuracy" else number(v) for p, v in zip(data["parameter"], data["reference"])]
    shown["best"] = [pct(v) if p == "val_accuracy" else number(v) for p, v in zip(data["parameter"], data["best"])]
    shown["changed"] = data["changed"].map({True: "yes", False: ""})
    shown.loc[shown["parameter"] == "val_accuracy", "parameter"] = "val acc (%)"
    title = f"Reference (trial {reference.number}) against the best trial ({top.number})"
    return Table("reference_vs_best", title, data, shown)


def slice_data(study: optuna.Study) -> pd.DataFrame:
    """One row per (completed trial, searched parameter): the value tried, the accuracy, and the axis it needs."""
    rows = []
    for t in complete(study):
        for p, v in t.params.items():
            d = t.distributions[p]
            axis = "category" if isinstance(d, CategoricalDistribution) else ("log" if getattr(d, "log", False) else "linear")
            rows.append({"parameter": p, "x": v if axis != "category" else str(v), "val_accuracy": t.value,
                         "trial": t.number, "axis": axis})
    return pd.DataFrame(rows, columns=["parameter", "x", "val_accuracy", "trial", "axis"])


def importances(study: optuna.Study) -> Table | str:
    """PED-ANOVA and fANOVA importance of every searched parameter: mean and std over bootstrap fits."""
    done = complete(study)
    params = importance.varied(done)
    sampler = record.study_info(study).sampler
    need = importance.min_trials(sampler)
    if need is None:
        return (f"withheld: {len(done)} completed trial(s) sampled by {sampler or 'an unrecorded sampler'}; "
                f"{importance.UNMEASURED_REASON} (see reports/README.md, Importances)")
    if len(done) < need or not params:
        return (f"withheld: {len(done)} completed trial(s) varying {len(params)} parameter(s); importances need "
                f"{need} completed trials and a varied parameter before repeated fits agree "
                "(see reports/README.md, Importances)")
    fits = importance.bootstrap(done, params)
    data = pd.DataFrame({"parameter": params})
    for method, f in (("ped_anova", fits.ped_anova), ("fanova", fits.fanova)):
        data[f"{method}_mean"] = f.mean().reindex(params).to_numpy() if f is not None else float("nan")
        data[f"{method}_std"] = f.std().reindex(params).to_numpy() if f is not None else float("nan")
    shown = pd.DataFrame({"parameter": params, **{
        label: [pm_number(mean, std) for mean, std in zip(data[f"{method}_mean"], data[f"{method}_std"])]
        for method, label in (("ped_anova", "PED-ANOVA"), ("fanova", "fANOVA"))}})
    said = importance.disagreements(fits)
    title = (f"Parameter importances over {len(done)} completed trials (mean ± std over {importance.RESAMPLES} bootstrap fits)"
             + (f"; the methods disagree: {'; '.join(said)}" if said else ""))
    return Table("importances", title, data, shown)
