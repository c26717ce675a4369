"""Ablation tables: one row per variant against the reference variant, factorial effects, the ablation path.

docs/statistics.md states the procedures; the arithmetic is in reports/stats.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import defaultdict

import numpy as np
import optuna
import pandas as pd

from reports import stats
from reports.tables import (
    Table,
    ci_only,
    complete,
    count,
    mean,
    number,
    pct,
    pm,
    pvalue,
    seconds,
    seeds_text,
    share_ci,
)
from study.store import record
from study.store.vocabulary import read_ci_end

ALPHA = 0.05  # the table's significance level, family-wise across its arms
MIN_EFFECT = 0.01  # the smallest accuracy difference worth detecting (1 pp): "seeds needed" aims at it

Trials = list[optuna.trial.FrozenTrial]


def _variants(study: optuna.Study) -> dict[str, Trials]:
    """Completed trials by variant, in the order the design enqueued them."""
    by_variant: dict[str, Trials] = defaultdict(list)
    for t in sorted(complete(study), key=lambda t: t.number):
        variant = record.trial_info(t).variant
        by_variant["?" if variant is None else str(variant)].append(t)
    return dict(by_variant)


def _seed(t: optuna.trial.FrozenTrial) -> object:
    return record.setting(t, "seed")


def _by_seed(trials: Trials) -> dict[object, float]:
    """Finite values by seed; a trial without a seed or a finite value has no partner to pair with."""
    return {_seed(t): float(t.value) for t in trials if _seed(t) is not None and math.isfinite(t.value)}


def shared_seeds(trials: Trials, base: Trials) -> list[object]:
    mine, theirs = _by_seed(trials), _by_seed(base)
    return sorted(set(mine) & set(theirs), key=str)


def differences(trials: Trials, base: Trials) -> list[float]:
    """`trials` minus `base` on each seed both ran."""
    mine, theirs = _by_seed(trials), _by_seed(base)
    return [mine[k] - theirs[k] for k in shared_seeds(trials, base)]


def compare(trials: Trials, base: Trials) -> stats.Comparison:
    """Paired on the seeds both sides ran, when they hold at least two pairs and most of the runs; the runs
    without a partner are counted in `left_out`. Otherwise Welch on every run, so none is dropped."""
    mine, theirs = _by_seed(trials), _by_seed(base)
    shared = shared_seeds(trials, base)
    runs = len(trials) + len(base)
    if len(shared) >= 2 and 2 * len(shared) > runs - 2 * len(shared):
        c = stats.paired([mine[k] for k in shared], [theirs[k] for k in shared])
        return dataclasses.replace(c, left_out=c.left_out + runs - 2 * len(shared))
    return stats.welch([t.value for t in trials], [t.value for t in base])


def direction(on: list[str], reference_on: list[str], variant: str, reference: str) -> str:
    """What the variant does to the reference, in words: "removing se", "adding mixup", "removing se and adding mixup"."""
    removed = [c for c in reference_on if c not in on]
    added = [c for c in on if c not in reference_on]
    words = ([f"removing {' and '.join(removed)}"] if removed else []) + ([f"adding {' and '.join(added)}"] if added else [])
    return " and ".join(words) or f"running {variant!r} instead of {reference!r}"


def test_text(c: stats.Comparison, shared: int) -> str:
    """The row's test, what took part and what was left out."""
    if not c.test:
        return ""
    if not math.isfinite(c.p):
        left = f", {c.left_out} run{'s' if c.left_out != 1 else ''} left out" if c.left_out else ""
        return f"none: {c.n_a} vs {c.n_b} runs{left}; a test needs two on each side"
    if c.paired:
        runs = f"{c.left_out} run{'s' if c.left_out != 1 else ''}"
        left = f", {runs} left out (no partner seed or no finite value)" if c.left_out else ", none left out"
        return f"{c.test}; {c.n} pair{'s' if c.n != 1 else ''}{left}"
    why = f" (only {shared} seed{'s' if shared != 1 else ''} shared: unpaired, every run kept)" if shared else ""
    left = f", {c.left_out} non-finite left out" if c.left_out else ""
    return f"{c.test}; {c.n_a} vs {c.n_b} runs{why}{left}"


def variants(study: optuna.Study, alpha: float = ALPHA, min_effect: float = MIN_EFFECT) -> Table | str:
    """Per variant: seeds, accuracy mean ± std and IQM, the change against the reference in words with its
    interval and two-sided p from one test, Holm's p, P(variant beats reference), seeds needed a priori."""
    groups = _variants(study)
    reference = record.study_info(study).reference_variant
    if not groups:
        return "no completed trial"
    if reference not in groups:
        return f"the reference variant {reference!r} has no completed trial, so there is nothing to compare against"
    ordered = sorted(groups.items(), key=lambda kv: kv[0] != reference)  # reference first, then design order
    base = groups[reference]
    arms = [name for name, _ in ordered if name != reference]
    comparisons = {name: compare(groups[name], base) for name in arms}
    adjusted = dict(zip(arms, stats.holm([comparisons[name].p for name in arms])))
    tested = sum(math.isfinite(comparisons[name].p) for name in arms)
    # a priori: the noise of the study (seed-to-seed, pooled over arms), never the observed deltas
    noise_paired = stats.pooled_sd([differences(groups[n], base) for n in arms if comparisons[n].paired])
    noise_runs = stats.pooled_sd([[t.value for t in trials] for _, trials in ordered])
    level = alpha / max(1, len(arms))  # Holm's strictest step: the arm survives whatever its rank
    reference_on = list(record.trial_info(base[0]).components_on)
    rows = []
    for name, trials in ordered:
        values = [t.value for t in trials]
        s = stats.summary(values)
        centre, centre_low, centre_high = stats.iqm(values)
        row = {"variant": name, "components_on": " ".join(record.trial_info(trials[0]).components_on),
               "n": s.n, "val_accuracy_mean": s.mean, "val_accuracy_std": s.std,
               "val_accuracy_iqm": centre, "iqm_low": centre_low, "iqm_high": centre_high}
        if name == reference:
            row.update(effect="", delta=0.0, ci_low=math.nan, ci_high=math.nan, test="", pairs=None, left_out=None,
                       test_detail="", p=math.nan, p_holm=math.nan, p_better=math.nan, p_better_low=math.nan,
                       p_better_high=math.nan, seeds_needed=math.nan)
        else:
            c = comparisons[name]
            better = stats.probability_of_improvement(values, [t.value for t in base])
            noise = noise_paired if c.paired else noise_runs
            row.update(
                effect=direction(list(record.trial_info(trials[0]).components_on), reference_on, name, reference),
                delta=c.delta, ci_low=c.ci_low, ci_high=c.ci_high, test=c.test, pairs=c.n if c.paired else 0,
                left_out=c.left_out, test_detail=test_text(c, len(shared_seeds(trials, base))),
                p=c.p, p_holm=adjusted[name], p_better=better[0], p_better_low=better[1], p_better_high=better[2],
                seeds_needed=stats.seeds_needed(min_effect, noise, level, paired_seeds=c.paired))
        row.update(params=mean(trials, lambda i: i.params), flops_per_image=mean(trials, lambda i: i.flops_per_image),
                   seconds=mean(trials, lambda i: i.seconds))
        rows.append(row)
    data = pd.DataFrame(rows)
    effect_header = f"effect (Δ = variant − {reference}, pp)"
    shown = pd.DataFrame({
        "variant": data["variant"], "n": data["n"],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        effect_header: [f"{e} changes accuracy by {pct(d, True)}" if e else "(reference)"
                        for e, d in zip(data["effect"], data["delta"])],
        "95% CI (pp)": [ci_only(lo, hi) if e else "" for e, lo, hi in zip(data["effect"], data["ci_low"], data["ci_high"])],
        "test (two-sided)": data["test_detail"],
        "p": data["p"].map(pvalue), "p (Holm)": data["p_holm"].map(pvalue),
        f"P(beats {reference}) [95% CI]": [share_ci(x, lo, hi) for x, lo, hi in
                                           zip(data["p_better"], data["p_better_low"], data["p_better_high"])],
        f"seeds for Δ={100 * min_effect:g} pp": data["seeds_needed"].map(seeds_text),
        "params": data["params"].map(count), "FLOPs/img": data["flops_per_image"].map(count),
        "time": data["seconds"].map(seconds),
    })
    noise_text = "; ".join(part for part in (
        f"sd of paired seed differences {pct(noise_paired)} pp" if math.isfinite(noise_paired) else "",
        f"sd of single runs {pct(noise_runs)} pp" if any(not comparisons[n].paired for n in arms) else "") if part)
    title = (f"Variants against {reference!r}: Δ = variant − {reference} in validation accuracy (mean ± std over seeds, in %); "
             f"each Δ's 95% CI and two-sided p come from the one test named in its row (paired on shared seeds: exact "
             f"sign-flip below {stats.PAIRED_T_MIN} pairs, with its inverted interval, unbounded below 6 pairs; paired t "
             f"from {stats.PAIRED_T_MIN}; Welch unpaired); p adjusted across the {tested} tested arm{'s' if tested != 1 else ''} "
             f"by Holm; P(beats {reference}): the chance one run of the variant beats one of {reference!r}, stratified "
             f"bootstrap 95% CI; seeds for Δ={100 * min_effect:g} pp: seeds per variant at which the row's test, at Holm's "
             f"strictest level {alpha:g}/{max(1, len(arms))}, detects a true difference of {100 * min_effect:g} pp with "
             f"{stats.POWER:.0%} power, simulated a priori from the study's pooled seed noise"
             f"{f' ({noise_text})' if noise_text else ''}, not from the observed Δ")
    return Table("ablation", title, data, shown)


def _cells(study: optuna.Study, a: str, b: str) -> dict[tuple[bool, bool], Trials]:
    return {(ia, ib): [t for t in complete(study)
                       if (a in record.trial_info(t).components_on) == ia and (b in record.trial_info(t).components_on) == ib]
            for ia in (True, False) for ib in (True, False)}


def factorial_effect(cells: list[Trials], weights: tuple[float, ...]) -> stats.Comparison:
    """A contrast of cell means (an interaction, a main effect). Seed by seed where at least two seeds ran in
    every cell: the per-seed contrast of cell means, tested as paired differences; otherwise Welch-Satterthwaite
    on the cells' runs."""
    by_seed = [defaultdict(list) for _ in cells]
    for cell, trials in zip(by_seed, cells):
        for t in trials:
            if _seed(t) is not None and math.isfinite(t.value):
                cell[_seed(t)].append(t.value)
    seeds = sorted(set.intersection(*(set(c) for c in by_seed)), key=str)
    if len(seeds) >= 2:
        per_seed = [sum(w * float(np.mean(c[s])) for w, c in zip(weights, by_seed)) for s in seeds]
        return stats.one_sample(per_seed)
    return stats.contrast([[t.value for t in trials] for trials in cells], weights)


def interactions(study: optuna.Study) -> Table | str:
    """For each pair of components of a factorial design: accuracy with both, either and neither, and their
    interaction with its 95% CI and two-sided p."""
    names = list(record.study_info(study).components)
    if len(names) < 2:
        return "a factorial design of fewer than two components has no interactions"
    rows = []
    for a, b in itertools.combinations(names, 2):
        cells = _cells(study, a, b)
        if not all(cells.values()):
            continue
        ordered = [cells[True, True], cells[True, False], cells[False, True], cells[False, False]]
        values = [[t.value for t in c] for c in ordered]
        c = factorial_effect(ordered, stats.INTERACTION_WEIGHTS)
        rows.append({
            "a": a, "b": b, "both": np.mean(values[0]), "a_only": np.mean(values[1]),
            "b_only": np.mean(values[2]), "neither": np.mean(values[3]),
            "interaction": stats.interaction(*values), "ci_low": c.ci_low, "ci_high": c.ci_high, "test": c.test,
            "n": c.n, "p": c.p,
        })
    if not rows:
        return "no pair of components has completed trials in all four cells"
    data = pd.DataFrame(rows)
    data["p_holm"] = stats.holm(data["p"].tolist())
    shown = pd.DataFrame({
        "A": data["a"], "B": data["b"], "both (%)": data["both"].map(pct), "A only (%)": data["a_only"].map(pct),
        "B only (%)": data["b_only"].map(pct), "neither (%)": data["neither"].map(pct),
        "interaction (pp)": data["interaction"].map(lambda x: pct(x, True)),
        "95% CI (pp)": [ci_only(lo, hi) for lo, hi in zip(data["ci_low"], data["ci_high"])],
        "test (two-sided)": [f"{t}; n={n}" for t, n in zip(data["test"], data["n"])],
        "p": data["p"].map(pvalue), "p (Holm)": data["p_holm"].map(pvalue),
    })
    title = ("Two-way interactions (mean accuracy over the other components; interaction = A's gain with B minus "
             "without, its 95% CI and two-sided p from one test: per-seed contrasts as paired differences where every "
             "cell ran the same seeds, Welch-Satterthwaite on the cells' runs otherwise; p adjusted across pairs by Holm)")
    return Table("interactions", title, data, shown)


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


def main_effects(study: optuna.Study) -> Table | str:
    """For each component of a factorial design: mean accuracy with it minus without (over the other
    components), its 95% CI and two-sided p, tested as the interactions are."""
    names = list(record.study_info(study).components)
    done = complete(study)
    rows = []
    for name in names:
        cells = [[t for t in done if name in record.trial_info(t).components_on],
                 [t for t in done if name not in record.trial_info(t).components_on]]
        if not all(cells):
            continue
        c = factorial_effect(cells, (1.0, -1.0))
        rows.append({"component": name, "with": np.mean([t.value for t in cells[0]]),
                     "without": np.mean([t.value for t in cells[1]]), "effect": c.delta, "ci_low": c.ci_low,
                     "ci_high": c.ci_high, "test": c.test, "n": c.n, "p": c.p})
    if not rows:
        return "no component has completed trials both with and without it"
    data = pd.DataFrame(rows)
    data["p_holm"] = stats.holm(data["p"].tolist())
    shown = pd.DataFrame({
        "component": data["component"], "with (%)": data["with"].map(pct), "without (%)": data["without"].map(pct),
        "effect": [f"adding {c} changes accuracy by {pct(e, True)}" for c, e in zip(data["component"], data["effect"])],
        "95% CI (pp)": [ci_only(lo, hi) for lo, hi in zip(data["ci_low"], data["ci_high"])],
        "test (two-sided)": [f"{t}; n={n}" for t, n in zip(data["test"], data["n"])],
        "p": data["p"].map(pvalue), "p (Holm)": data["p_holm"].map(pvalue),
    })
    title = ("Main effects (accuracy with the component minus without, averaged over the others; 95% CI and two-sided "
             "p from one test, as for the interactions; p adjusted across components by Holm)")
    return Table("main_effects", title, data, shown)
