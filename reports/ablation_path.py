"""The ablation path table: the steps `python -m study ablation-path` stored, each change's re-scored gain."""

from __future__ import annotations

import math

import optuna
import pandas as pd

from reports.tables import Table, ci_only, number, pct, pm, pvalue
from study.store import record
from study.store.vocabulary import read_ci_end


def path(study: optuna.Study) -> Table | str:
    """The stored ablation path: each step's change, the accuracy it added re-scored on fresh seeds, and
    that gain's exact sign-flip CI and p. A path stored before re-scoring shows its gain and half-width."""
    steps = record.study_info(study).path
    if not steps:
        return "the path is not stored yet: `python -m study ablation-path` writes it when it finishes"
    rescored = any("choosing_mean" in s for s in steps)
    data = pd.DataFrame([{
        "step": s["step"], "parameter": s["param"], "from": s.get("from"), "to": s.get("to"),
        "val_accuracy_mean": s["val_accuracy_mean"], "val_accuracy_std": s.get("val_accuracy_std"), "gain": s["gain"],
        **({"choosing_mean": s.get("choosing_mean", math.nan), "gain_ci_low": read_ci_end(s.get("gain_ci_low")),
            "gain_ci_high": read_ci_end(s.get("gain_ci_high")), "gain_p": s.get("gain_p", math.nan)} if rescored else
           {"gain_ci_half_width": s.get("gain_ci_half_width")}),
        "within_noise": s.get("within_noise"),
    } for s in steps])
    shown = pd.DataFrame({
        "step": data["step"], "parameter": data["parameter"],
        "change": ["" if s == 0 else f"{number(f)} → {number(t)}" for s, f, t in zip(data["step"], data["from"], data["to"])],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
    })
    if rescored:
        shown["when chosen (%)"] = data["choosing_mean"].map(pct)
        shown["gain (pp)"] = data["gain"].map(lambda x: pct(x, True))
        shown["95% CI (pp)"] = [ci_only(lo, hi) if s else "" for s, lo, hi in
                                zip(data["step"], data["gain_ci_low"], data["gain_ci_high"])]
        shown["p"] = data["gain_p"].map(pvalue)
    else:
        shown["gain (pp)"] = data["gain"].map(lambda x: pct(x, True))
        shown["± 95% (pp)"] = data["gain_ci_half_width"].map(pct)
    shown["note"] = data["within_noise"].map(lambda w: "within noise" if w is True else "")
    source = record.study_info(study).source_study or "?"
    title = (f"Ablation path from the reference to the best trial of {source} (each change chosen on some seeds and "
             "its gain re-scored on fresh seeds that chose nothing; 95% CI and two-sided p of the exact sign-flip "
             "test on the paired seed differences; a gain whose CI holds 0 is marked within noise)" if rescored else
             f"Ablation path from the reference to the best trial of {source} (a gain inside the 95% interval of "
             "its paired seed differences is marked within noise)")
    return Table("ablation_path", title, data, shown)
