"""Ablation tables: one row per variant against the reference variant, factorial interactions, the ablation path."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import optuna
import pandas as pd

from reports import stats
from reports.tables import Table, ci, complete, count, mean, number, pct, pm, pvalue, seconds, seeds_text
from study import record

ALPHA = 0.05  # the table's significance level, family-wise across its arms


def _variants(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Completed trials by variant, in the order the design enqueued them."""
    by_variant: dict[str, list[optuna.trial.FrozenTrial]] = defaultdict(list)
    for t in sorted(complete(study), key=lambda t: t.number):
        variant = record.trial_info(t).variant
        by_variant["?" if variant is None else str(variant)].append(t)
    return dict(by_variant)


def _seed(t: optuna.trial.FrozenTrial) -> object:
    return record.setting(t, "seed")


def compare(trials: list[optuna.trial.FrozenTrial], base: list[optuna.trial.FrozenTrial]) -> stats.Comparison:
    """Paired on the seeds both sides ran when at least two are shared; Welch on all runs otherwise."""
    mine = {_seed(t): t.value for t in trials if _seed(t) is not None}
    theirs = {_seed(t): t.value for t in base if _seed(t) is not None}
    shared = sorted(set(mine) & set(theirs), key=str)
    if len(shared) >= 2:
        return stats.paired([mine[k] for k in shared], [theirs[k] for k in shared])
    return stats.welch([t.value for t in trials], [t.value for t in base])


def _needed(c: stats.Comparison, alpha: float) -> float:
    return stats.seeds_needed(c.delta, c.spread, alpha) if c.test != "Welch" else float("nan")


def variants(study: optuna.Study, alpha: float = ALPHA) -> Table | str:
    """n seeds, accuracy mean ± std, delta against the reference (paired where seeds match), raw and Holm p, seeds needed."""
    groups = _variants(study)
    reference = record.study_info(study).reference_variant
    if not groups:
        return "no completed trial"
    if reference not in groups:
        return f"the reference variant {reference!r} has no completed trial, so there is nothing to compare against"
    ordered = sorted(groups.items(), key=lambda kv: kv[0] != reference)  # reference first, then design order
    comparisons = {name: compare(trials, groups[reference]) for name, trials in ordered if name != reference}
    adjusted = dict(zip(comparisons, stats.holm([c.p for c in comparisons.values()])))
    # "seeds needed" aims at Holm's strictest step, alpha / arms, so the delta survives whatever its rank
    tested = sum(c.p == c.p for c in comparisons.values())  # arms whose test gave a p (NaN: no spread to test)
    level = alpha / max(1, tested)
    rows = []
    for name, trials in ordered:
        s = stats.summary([t.value for t in trials])
        c = comparisons.get(name, stats.Comparison(0.0, *[float("nan")] * 3, test=""))
        rows.append({
            "variant": name, "components_on": " ".join(record.trial_info(trials[0]).components_on),
            "n": s.n, "val_accuracy_mean": s.mean, "val_accuracy_std": s.std,
            "delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "test": c.test, "pairs": c.n if c.test else None,
            "p": c.p, "p_holm": adjusted.get(name, float("nan")), "seeds_needed": _needed(c, level),
            "params": mean(trials, lambda i: i.params), "flops_per_image": mean(trials, lambda i: i.flops_per_image),
            "seconds": mean(trials, lambda i: i.seconds),
        })
    data = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "variant": data["variant"], "n": data["n"],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        f"Δ vs {reference} [95% CI]": [ci(d, lo, hi) for d, lo, hi in zip(data["delta"], data["ci_low"], data["ci_high"])],
        "test": [f"{t} (n={n:.0f})" if t else "" for t, n in zip(data["test"], data["pairs"])],
        "p": data["p"].map(pvalue), "p (Holm)": data["p_holm"].map(pvalue),
        f"seeds for p<{alpha:g}": data["seeds_needed"].map(seeds_text),
        "params": data["params"].map(count), "FLOPs/img": data["flops_per_image"].map(count),
        "time": data["seconds"].map(seconds),
    })
    title = (f"Variants against {reference!r} (accuracy in %, mean ± std over seeds; p adjusted across the "
             f"{tested} tested arm{'s' if tested != 1 else ''} by Holm; "
             f"seeds for p<{alpha:g}: paired seeds that would make the observed Δ "
             f"significant after adjustment with {stats.POWER:.0%} power)")
    return Table("ablation", title, data, shown)


def interactions(study: optuna.Study) -> Table | str:
    """For each pair of components of a factorial design: accuracy with both, either and neither, and their interaction."""
    names = list(record.study_info(study).components)
    done = [(t.value, record.trial_info(t).components_on) for t in complete(study)]
    if len(names) < 2:
        return "a factorial design of fewer than two components has no interactions"
    rows = []
    for a, b in itertools.combinations(names, 2):
        cells = {(ia, ib): [value for value, on in done if (a in on) == ia and (b in on) == ib]
                 for ia in (True, False) for ib in (True, False)}
        if not all(cells.values()):
            continue
        rows.append({
            "a": a, "b": b, "both": np.mean(cells[True, True]), "a_only": np.mean(cells[True, False]),
            "b_only": np.mean(cells[False, True]), "neither": np.mean(cells[False, False]),
            "interaction": stats.interaction(cells[True, True], cells[True, False], cells[False, True], cells[False, False]),
        })
    if not rows:
        return "no pair of components has completed trials in all four cells"
    data = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "A": data["a"], "B": data["b"], "both (%)": data["both"].map(pct), "A only (%)": data["a_only"].map(pct),
        "B only (%)": data["b_only"].map(pct), "neither (%)": data["neither"].map(pct),
        "interaction (pp)": data["interaction"].map(lambda x: pct(x, True)),
    })
    title = "Two-way interactions (mean accuracy over the other components; interaction = A's gain with B minus without)"
    return Table("interactions", title, data, shown)


def path(study: optuna.Study) -> Table | str:
    """The stored ablation path: each step's change and the accuracy it added."""
    steps = record.study_info(study).path
    if not steps:
        return "the path is not stored yet: `python -m study ablation-path` writes it when it finishes"
    data = pd.DataFrame([{
        "step": s["step"], "parameter": s["param"], "from": s.get("from"), "to": s.get("to"),
        "val_accuracy_mean": s["val_accuracy_mean"], "val_accuracy_std": s.get("val_accuracy_std"), "gain": s["gain"],
        "gain_ci_half_width": s.get("gain_ci_half_width"), "within_noise": s.get("within_noise"),
    } for s in steps])
    shown = pd.DataFrame({
        "step": data["step"], "parameter": data["parameter"],
        "change": ["" if s == 0 else f"{number(f)} → {number(t)}" for s, f, t in zip(data["step"], data["from"], data["to"])],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        "gain (pp)": data["gain"].map(lambda x: pct(x, True)),
        "± 95% (pp)": data["gain_ci_half_width"].map(pct),
        "note": data["within_noise"].map(lambda w: "within noise" if w is True else ""),
    })
    source = record.study_info(study).source_study or "?"
    title = (f"Ablation path from the reference to the best trial of {source} (a gain inside the 95% interval of "
             "its paired seed differences is marked within noise)")
    return Table("ablation_path", title, data, shown)
