"""Figures a reviewer can trust (issue 22's report findings), each on stored studies built with optuna.

1 unshared seeds are never dropped silently; 2 a baselines row never mixes configurations; 4 seeds needed
is a priori and from the test actually used; 5 zero-spread and tied arms keep their exact p in Holm's
family, degenerate Welch and NaN pairs give no p = 0; 6 two-sided captions, Δ in words, each interval from
the procedure of its p, factorial effects with intervals. Also the rliable-style aggregates.
"""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp
from stored_studies import FACTORIAL, add, comparison_study, factorial_study, new_study

from reports import ablation, baselines, cli, literature, power, stats
from study.errors import UserError

ONE_OUT = {"se": {"setting": "se", "full": "both", "ablated": "none"},
           "mixup": {"setting": "mixup_alpha", "full": 0.2, "ablated": 0.0}}


def ablation_of(runs: dict[str, dict[int, float]], design: str = "one_out", name: str = "abl"):
    """An ablation study from {variant: {seed: accuracy}}, components read off the variant's name."""
    reference = "bare" if design == "add_one" else "full"
    study = new_study(name, kind="ablation", design=design, reference_variant=reference, seeds=3, components=ONE_OUT)
    for variant, by_seed in runs.items():
        if variant == "full":
            on = ["se", "mixup"]
        elif variant == "bare":
            on = []
        elif variant.startswith("no "):
            on = [c for c in ("se", "mixup") if c != variant[3:]]
        else:
            on = [variant.removeprefix("only ")]
        for seed, value in by_seed.items():
            add(study, value, config={"seed": seed}, variant=variant, components_on=on)
    return study


# --- 1: unshared seeds --------------------------------------------------------------------------------

FULL = {0: 0.73, 1: 0.75, 2: 0.72, 3: 0.76, 4: 0.74}  # mean 74.0
NO_SE = {0: 0.72, 1: 0.74, 7: 0.585, 8: 0.59, 9: 0.595}  # mean 64.6; -1 pp on the two seeds it shares with full


def test_most_runs_unshared_falls_back_to_welch_on_every_run():
    rows = ablation.variants(ablation_of({"full": FULL, "no se": NO_SE})).data.set_index("variant")
    welch = sp.ttest_ind(list(NO_SE.values()), list(FULL.values()), equal_var=False)
    assert rows.loc["no se", "test"] == "Welch"  # not "paired, no spread (n=2)" with 6 of 10 runs gone
    assert rows.loc["no se", "delta"] == pytest.approx(0.646 - 0.74)  # the means the row shows, not -1 pp
    assert rows.loc["no se", "p"] == pytest.approx(welch.pvalue)
    ci = welch.confidence_interval()
    assert rows.loc["no se", ["ci_low", "ci_high"]].tolist() == pytest.approx([ci.low, ci.high])
    assert rows.loc["no se", "left_out"] == 0
    assert rows.loc["no se", "test_detail"] == "Welch; 5 vs 5 runs (only 2 seeds shared: unpaired, every run kept)"


def test_paired_rows_say_how_many_runs_had_no_partner():
    variant = {0: 0.72, 1: 0.745, 2: 0.70, 3: 0.755}  # seeds 0-3 of full's 0-4
    rows = ablation.variants(ablation_of({"full": FULL, "no se": variant})).data.set_index("variant")
    assert rows.loc["no se", "test"] == "sign-flip exact" and rows.loc["no se", "pairs"] == 4
    assert rows.loc["no se", "left_out"] == 1
    assert rows.loc["no se", "delta"] == pytest.approx(np.mean([-0.01, -0.005, -0.02, -0.005]))
    assert rows.loc["no se", "test_detail"] == "sign-flip exact; 4 pairs, 1 run left out (no partner seed or no finite value)"


# --- 2: the baselines row -------------------------------------------------------------------------------

def test_full_budget_row_takes_only_final_runs_of_its_own_configuration(monkeypatch):
    monkeypatch.setattr(literature, "published", lambda model, dataset: 0.90 if model == "naivenet" else None)
    final = new_study("baselines-final", kind="final", source_study="baselines", seeds=2)
    # comparison_study's trial 0 is naivenet on all data, trial 2 on a quarter of it
    for source, values in ((0, (0.69, 0.71)), (2, (0.49, 0.51)), (4, (0.80, 0.82))):
        for seed, v in enumerate(values):
            model = "resnet18" if source == 4 else "naivenet"
            add(final, v, candidate=f"trial {source}", model=model, seed=seed, source_trial=source, test_accuracy=v)
    rows = baselines.models(comparison_study(), final).data.set_index("model")
    assert rows.loc["naivenet", "test_accuracy_mean"] == pytest.approx(0.70)  # not 0.60 ± 0.116 over both fractions
    assert rows.loc["naivenet", "test_accuracy_std"] == pytest.approx(math.sqrt(0.0002))
    assert rows.loc["naivenet", "gap"] == pytest.approx(-0.20)


def test_configurations_that_differ_beyond_the_seed_get_rows_of_their_own():
    study = new_study("widths", kind="comparison")
    for width, values in ((1.0, (0.60, 0.62)), (2.0, (0.70, 0.72))):
        for seed, v in enumerate(values):
            add(study, v, config={"model": "cnn", "width": width, "seed": seed, "epochs": 2}, model="cnn")
    rows = baselines.models(study).data.set_index("model")
    assert rows.loc["cnn (width=1.0)", "val_accuracy_mean"] == pytest.approx(0.61)
    assert rows.loc["cnn (width=2.0)", "val_accuracy_mean"] == pytest.approx(0.71)


# --- 4: seeds needed ------------------------------------------------------------------------------------

def sign_flip_power_by_scipy(effect: float, n: int, alpha: float, draws: int = 3000) -> float:
    """Power of scipy's own exact sign-flip test, vectorised over draws (an implementation apart from stats')."""
    d = np.random.default_rng(7).normal(effect, 1.0, size=(draws, n))
    p = sp.permutation_test((d,), lambda x, axis: x.mean(axis=axis), permutation_type="samples", vectorized=True,
                            n_resamples=2 ** n, axis=1).pvalue
    return float(np.mean(p < alpha))


def test_seeds_needed_has_the_power_of_the_sign_flip_test_it_runs():
    # 1.5 sd at 0.05: a t-test's power says 6 seeds (0.83); the sign-flip test the table runs at 6 has 0.66
    n = int(power.seeds_needed(0.015, 0.01, 0.05))
    assert n == 7
    assert sign_flip_power_by_scipy(1.5, n, 0.05) >= 0.78
    assert sign_flip_power_by_scipy(1.5, n - 1, 0.05) < 0.72


def test_seeds_needed_is_a_priori_from_the_pooled_noise_not_the_observed_delta():
    noise = {0: 0.004, 1: -0.006, 2: 0.002}

    def study(shift: float, name: str):
        return ablation_of({"full": {s: 0.70 for s in noise},
                            "no se": {s: 0.70 + shift + e for s, e in noise.items()},
                            "no mixup": {s: 0.70 - shift - 2 * e for s, e in noise.items()}}, name=name)

    small, large = (ablation.variants(study(shift, name)).data.set_index("variant") for shift, name in
                    ((-0.002, "small"), (-0.08, "large")))
    assert small.loc["no se", "seeds_needed"] == large.loc["no se", "seeds_needed"]  # the observed Δ plays no part
    pooled = math.sqrt((np.var(list(noise.values()), ddof=1) * (1 + 4)) / 2)  # both arms' differences, 2 df each
    assert large.loc["no se", "seeds_needed"] == power.seeds_needed(0.01, pooled, 0.05 / 2)
    two_pp = ablation.variants(study(-0.08, "two"), min_effect=0.02).data.set_index("variant")
    assert two_pp.loc["no se", "seeds_needed"] < large.loc["no se", "seeds_needed"]  # a larger effect needs fewer


def test_seeds_needed_for_welch_rows_simulates_welch():
    n = int(power.seeds_needed(0.01, 0.01, 0.05, paired_seeds=False))
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.01, 0.01, size=(4000, n)), rng.normal(0.0, 0.01, size=(4000, n))
    simulated = np.mean(sp.ttest_ind(a, b, axis=1, equal_var=False).pvalue < 0.05)
    assert 0.77 < simulated < 0.86  # Welch at 1 sd needs about 17 a side
    assert np.mean(sp.ttest_ind(a[:, :n - 2], b[:, :n - 2], axis=1, equal_var=False).pvalue < 0.05) < 0.8


# --- 5: zero spread, ties, degenerate Welch, NaN ----------------------------------------------------------

def test_a_zero_spread_arm_and_a_tied_arm_stay_in_holms_family():
    seeds = range(5)
    rows = ablation.variants(ablation_of({"full": {s: 0.70 + 0.01 * s for s in seeds},
                                          "no se": {s: 0.68 + 0.01 * s for s in seeds},  # -2 pp on every seed
                                          "no mixup": {s: 0.70 + 0.01 * s for s in seeds}})).data.set_index("variant")
    assert rows.loc["no se", "p"] == pytest.approx(2 / 32)  # exact: only the all-minus and all-plus patterns
    assert rows.loc["no mixup", "p"] == pytest.approx(1.0)  # tied on every seed
    assert rows.loc["no se", "p_holm"] == pytest.approx(2 * 2 / 32)  # two arms in the family


def test_welch_without_any_spread_gives_no_p_of_zero():
    c = stats.welch([0.6, 0.6], [0.5, 0.5])
    assert c.p == pytest.approx(1 / 3)  # exact two-sample permutation: 2 of the 6 splits are as extreme
    assert c.test == stats.Test.PERMUTATION and math.isnan(c.ci_low) and math.isnan(c.ci_high)


def test_a_nan_inside_a_paired_arm_is_left_out_not_tested():
    c = stats.paired([0.7, math.nan, 0.74], [0.6, 0.6, 0.6])
    assert c.n == 2 and c.left_out == 2 and c.p == pytest.approx(0.5)  # 2 pairs: 2 of 4 patterns
    assert stats.welch([0.7, math.nan, 0.74], [0.6, 0.62]).left_out == 1


# --- 6: labels and intervals ------------------------------------------------------------------------------

def test_the_sign_flip_interval_is_the_sign_flip_test_inverted():
    d = np.array([0.012, -0.004, 0.021, 0.008, 0.015, 0.003, 0.018])
    low, high = stats.sign_flip_interval(d)
    for shift in np.linspace(-0.01, 0.03, 161):
        p = sp.permutation_test((d - shift,), lambda x, axis: x.mean(axis=axis), permutation_type="samples",
                                vectorized=True, n_resamples=2 ** len(d)).pvalue
        if abs(shift - low) > 1e-9 and abs(shift - high) > 1e-9:
            assert (p > 0.05) == (low < shift < high), shift
    assert stats.sign_flip_interval(d[:5]) == (-math.inf, math.inf)  # 2 / 32 > 0.05: no shift can be rejected


def test_every_interval_comes_from_the_procedure_of_its_p():
    d = [0.01, 0.03, 0.02]
    c = stats.paired(d, [0, 0, 0])
    assert c.p == pytest.approx(0.25) and (c.ci_low, c.ci_high) == (-math.inf, math.inf)  # not a t interval beside it
    eight = np.array([0.010, 0.012, 0.008, 0.011, 0.009, 0.013, 0.010, 0.007])
    t = sp.ttest_1samp(eight, 0.0)
    c = stats.paired(eight, np.zeros(8))
    assert (c.p, c.ci_low, c.ci_high) == pytest.approx((t.pvalue, *t.confidence_interval()))


def test_captions_say_two_sided_and_effects_read_in_words():
    one_out = ablation.variants(ablation_of({"full": FULL, "no se": {s: v - 0.02 for s, v in FULL.items()}}))
    add_one = ablation.variants(ablation_of({"bare": FULL, "only se": {s: v + 0.01 for s, v in FULL.items()}},
                                            design="add_one"))
    for table in (one_out, add_one, ablation.interactions(factorial_study()), ablation.main_effects(factorial_study())):
        assert "two-sided" in table.title
    assert one_out.shown.loc[1, "effect (Δ = variant − full, pp)"] == "removing se changes accuracy by -2.00"
    assert add_one.shown.loc[1, "effect (Δ = variant − bare, pp)"] == "adding se changes accuracy by +1.00"


def test_factorial_effects_carry_intervals():
    row = ablation.interactions(factorial_study()).data.iloc[0]
    cells = [FACTORIAL[v] for v in ("full", "se", "mixup", "bare")]  # both, A only, B only, neither
    se2 = sum(np.var(c, ddof=1) / len(c) for c in cells)
    df = se2 ** 2 / sum((np.var(c, ddof=1) / len(c)) ** 2 / (len(c) - 1) for c in cells)
    half = sp.t.ppf(0.975, df) * math.sqrt(se2)
    assert [row["ci_low"], row["ci_high"]] == pytest.approx([0.05 - half, 0.05 + half])
    assert row["p"] == pytest.approx(2 * sp.t.sf(0.05 / math.sqrt(se2), df))
    effects = ablation.main_effects(factorial_study()).data.set_index("component")
    assert effects.loc["se", "effect"] == pytest.approx((0.81 + 0.71) / 2 - (0.61 + 0.56) / 2)
    assert effects.loc["se", "ci_low"] < effects.loc["se", "effect"] < effects.loc["se", "ci_high"]


def test_factorial_effects_pair_seeds_where_every_cell_ran_them():
    study = new_study("fact-seeded", kind="ablation", design="factorial", reference_variant="full", seeds=3,
                      components={"se": {}, "mixup": {}})
    on = {"full": ["se", "mixup"], "se": ["se"], "mixup": ["mixup"], "bare": []}
    level = {"full": 0.80, "se": 0.70, "mixup": 0.62, "bare": 0.55}
    for variant, seed in itertools.product(on, range(3)):
        add(study, level[variant] + 0.01 * seed + (0.002 * seed if variant == "full" else 0), config={"seed": seed},
            variant=variant, components_on=on[variant])
    row = ablation.interactions(study).data.iloc[0]
    per_seed = [(0.80 + 0.012 * s - 0.62 - 0.01 * s) - (0.70 - 0.55) for s in range(3)]
    assert row["test"] == "sign-flip exact" and row["interaction"] == pytest.approx(np.mean(per_seed))
    assert row["p"] == pytest.approx(0.25)


# --- rliable-style aggregates -------------------------------------------------------------------------------

def test_interquartile_mean_and_its_bootstrap_interval():
    x = [0.50, 0.60, 0.61, 0.62, 0.63, 0.64, 0.65, 0.90]
    centre, low, high = stats.iqm(x)
    assert centre == pytest.approx(np.mean([0.61, 0.62, 0.63, 0.64]))  # the middle half
    assert low <= centre <= high and high - low < 0.2


def test_probability_of_improvement_is_mann_whitney_over_all_pairs():
    a, b = [0.70, 0.72, 0.74, 0.71], [0.69, 0.72, 0.68]
    centre, low, high = stats.probability_of_improvement(a, b)
    assert centre == pytest.approx(sp.mannwhitneyu(a, b).statistic / (len(a) * len(b)))  # ties count half
    assert 0 <= low <= centre <= high <= 1


# --- the report option ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "nan", "100"])
def test_min_effect_outside_its_range_is_refused(tmp_path, value):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "none.db"), "-o", str(tmp_path / "r.html"), "--min-effect", value])
    with pytest.raises(UserError, match="--min-effect"):
        cli.main(args)
    assert not (tmp_path / "none.db").exists()


# --- done when: a 3-seed ablation's rows say everything a reader needs ------------------------------------------

def test_each_row_of_a_three_seed_ablation_says_test_pairs_effect_interval_p_holm_and_seeds():
    study = ablation_of({"full": {0: 0.70, 1: 0.72, 2: 0.74},
                         "no se": {0: 0.66, 1: 0.69, 2: 0.69},
                         "no mixup": {0: 0.71, 1: 0.70}})  # its seed 2 failed: full's seed 2 has no partner
    table = ablation.variants(study, min_effect=0.02)
    shown = table.shown.set_index("variant")
    row = shown.loc["no se"].drop(["P(beats full) [95% CI]", "seeds for Δ=2 pp"]).to_dict()
    assert row == {
        "n": 3, "val acc (%)": "68.00 ± 1.73",
        "effect (Δ = variant − full, pp)": "removing se changes accuracy by -4.00",
        "95% CI (pp)": "[−∞, +∞]",  # what the exact sign-flip test can bound with 3 pairs
        "test (two-sided)": "sign-flip exact; 3 pairs, none left out",
        "p": "0.250", "p (Holm)": "0.500",
        "params": "–", "FLOPs/img": "–", "time": "–",
    }
    assert shown.loc["no mixup", "test (two-sided)"] == ("sign-flip exact; 2 pairs, 1 run left out "
                                                         "(no partner seed or no finite value)")
    assert shown.loc["no mixup", "effect (Δ = variant − full, pp)"] == "removing mixup changes accuracy by -0.50"
    assert shown.loc["no mixup", "p"] == "1.000"  # +1 and -2 pp: both sign patterns of each size are as extreme
    better = stats.probability_of_improvement([0.66, 0.69, 0.69], [0.70, 0.72, 0.74])
    assert shown.loc["no se", "P(beats full) [95% CI]"] == f"{better[0]:.2f} [{better[1]:.2f}, {better[2]:.2f}]"
    noise = power.pooled_sd([[-0.04, -0.03, -0.05], [0.01, -0.02]])
    assert shown.loc["no se", "seeds for Δ=2 pp"] == f"{power.seeds_needed(0.02, noise, 0.025):.0f}"
    assert "two-sided" in table.title and "Holm's strictest level 0.05/2" in table.title
    assert "not from the observed Δ" in table.title


def test_a_row_without_a_test_says_so():
    rows = ablation.variants(ablation_of({"full": {0: 0.7}, "no se": {0: 0.6}})).data.set_index("variant")
    assert rows.loc["no se", "test_detail"] == "none: 1 vs 1 runs; a test needs two on each side"
    assert math.isnan(rows.loc["no se", "p"]) and math.isnan(rows.loc["no se", "seeds_needed"])  # no noise to go on
