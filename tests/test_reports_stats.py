"""Table arithmetic against values worked out by hand: mean, std, Welch CI and p, deltas, interactions, Pareto."""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from scipy import stats as sp
from stored_studies import (
    ABLATION,
    FACTORIAL,
    FINAL,
    PATH,
    ablation_study,
    comparison_study,
    factorial_study,
    final_study,
    new_study,
    path_study,
)

from reports import ablation, ablation_path, baselines, final, literature, power, search, stats
from study.search import progress
from study.store import record


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Welch-Satterthwaite written out: (delta, CI low, CI high, two-sided p)."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    delta = np.mean(a) - np.mean(b)
    half = sp.t.ppf(0.975, df) * se
    return delta, delta - half, delta + half, 2 * sp.t.sf(abs(delta / se), df)


def test_summary_mean_and_sample_std():
    s = stats.summary([0.5, 0.6, 0.7])
    assert (s.n, s.mean, s.std) == (3, pytest.approx(0.6), pytest.approx(0.1))
    assert math.isnan(stats.summary([0.5]).std)  # one seed has no spread
    assert stats.summary([]).n == 0


def test_welch_matches_the_formula_and_the_hand_computed_values():
    a, b = ABLATION["no se"], ABLATION["full"]  # means 0.62 and 0.72; variances 0.0007 and 0.0004
    c = stats.welch(a, b)
    assert c.delta == pytest.approx(-0.10)
    # by hand: se^2 = 0.0007/3 + 0.0004/3 = 3.6667e-4, t = -0.1 / 0.019149 = -5.2223, df = 3.7231
    assert c.delta / ((c.ci_high - c.ci_low) / 2 / sp.t.ppf(0.975, 3.7231)) == pytest.approx(-5.2223, abs=1e-3)
    assert (c.delta, c.ci_low, c.ci_high, c.p) == pytest.approx(welch_by_hand(a, b))
    assert 0.005 < c.p < 0.05


def sign_flip_by_hand(d) -> float:
    """Every one of the 2^n sign patterns: the share whose |mean| is at least the observed one."""
    observed = abs(np.mean(d))
    means = [abs(np.mean(np.multiply(d, signs))) for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(m >= observed - 1e-12 for m in means) / len(means)


# eight seeds whose accuracy varies by seed far more than B's small, steady gain over A
SEED_LEVEL = [0.60, 0.70, 0.65, 0.75, 0.62, 0.72, 0.68, 0.58]
A = SEED_LEVEL
B = [a + g for a, g in zip(SEED_LEVEL, [0.010, 0.012, 0.008, 0.011, 0.009, 0.013, 0.010, 0.007])]


def test_paired_t_matches_scipy_and_finds_what_welch_misses():
    c = stats.paired(B, A)
    expected = sp.ttest_rel(B, A)
    ci = expected.confidence_interval()
    assert c.test == "paired t" and c.n == 8
    assert (c.delta, c.ci_low, c.ci_high, c.p) == pytest.approx((np.mean(np.subtract(B, A)), ci.low, ci.high, expected.pvalue))
    assert c.p < 1e-5  # the gain is there on every seed
    assert stats.welch(B, A).p > 0.5  # unpaired, the seed-to-seed spread swallows it


def test_sign_flip_below_eight_pairs_is_exact():
    a, b = B[:5], A[:5]
    c = stats.paired(a, b)
    assert c.test == "sign-flip exact"
    assert c.p == pytest.approx(sign_flip_by_hand(np.subtract(a, b)))  # 2 / 32: all five gains positive
    assert c.p == pytest.approx(2 / 32)
    mixed = stats.paired([0.71, 0.69, 0.72, 0.70], [0.70, 0.70, 0.70, 0.70])
    assert mixed.p == pytest.approx(sign_flip_by_hand([0.01, -0.01, 0.02, 0.0]))


def test_holm_against_a_hand_calculation():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept at the running max 0.06
    got = stats.holm([0.01, 0.04, 0.03, float("nan"), 0.005])
    assert got[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(got[3]) and got[4] == pytest.approx(0.02)
    assert stats.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1


@pytest.mark.parametrize("delta, spread, alpha", [(0.01, 0.02, 0.05), (0.004, 0.006, 0.05 / 3)])
def test_seeds_needed_reaches_its_power_in_a_simulation(delta, spread, alpha):
    n = int(power.seeds_needed(delta, spread, alpha))
    rng = np.random.default_rng(0)

    def simulated_power(k: int) -> float:
        d = rng.normal(delta, spread, size=(4000, k))
        return float(np.mean(sp.ttest_1samp(d, 0.0, axis=1).pvalue < alpha))

    assert n >= stats.PAIRED_T_MIN  # the paired t-test is the one the table uses at that many seeds
    assert 0.77 < simulated_power(n) < 0.86  # the simulated power at n is the 80% aimed for
    assert simulated_power(max(2, n - 3)) < 0.8  # and fewer seeds fall short


def test_seeds_needed_for_small_effects_and_no_spread():
    assert power.seeds_needed(0.01, 0.0, 0.05) != power.seeds_needed(0.01, 0.0, 0.05)  # NaN: nothing to go on
    assert power.seeds_needed(0.5, 0.01, 0.05) == 6  # huge effect: the sign-flip test's own floor, 2 / 2^6 < 0.05
    assert power.seeds_needed(-0.1, 0.010000000000000009, 0.05) == 6  # the sign of the effect does not matter
    assert power.seeds_needed(1e-6, 0.05, 0.05) == math.inf


def test_unmatched_cells_fall_back_to_welch():
    table = ablation.variants(factorial_study())  # its trials store no seed
    rows = table.data.set_index("variant")
    assert set(rows.loc[["se", "mixup", "bare"], "test"]) == {"Welch"}
    assert rows.loc["bare", "p"] == pytest.approx(welch_by_hand(FACTORIAL["bare"], FACTORIAL["full"])[3])
    assert table.shown.set_index("variant").loc["bare", "test (two-sided)"] == "Welch; 2 vs 2 runs"


def test_welch_needs_two_values_per_side():
    c = stats.welch([0.7], [0.6, 0.65])
    assert c.delta == pytest.approx(0.075) and math.isnan(c.ci_low) and math.isnan(c.p)


def test_interaction_is_a_difference_of_differences():
    assert stats.interaction([0.8], [0.7], [0.6], [0.55]) == pytest.approx(0.05)


def test_pareto_front_keeps_what_nothing_beats():
    assert stats.pareto_front([0.9, 0.8, 0.85, 0.7], [10, 5, 20, 5]) == [True, True, False, False]


def test_ablation_rows_against_the_full_model():
    table = ablation.variants(ablation_study())
    rows = table.data.set_index("variant")
    assert list(rows.index) == ["full", "no se", "no mixup"]  # reference first, then design order
    assert list(rows["n"]) == [3, 3, 2]  # the failed trial does not count
    assert rows.loc["no se", "val_accuracy_mean"] == pytest.approx(0.62)
    assert rows.loc["no se", "val_accuracy_std"] == pytest.approx(math.sqrt(0.0007))
    # every variant ran seeds 0.. as the reference did: paired, seed by seed, by the exact sign-flip test,
    # whose inverted 95% interval is unbounded at 3 pairs (its smallest p is 0.25): no t interval beside it
    assert rows.loc["no se", ["ci_low", "ci_high"]].tolist() == [-math.inf, math.inf]
    assert rows.loc["no se", "p"] == pytest.approx(sign_flip_by_hand(np.subtract(ABLATION["no se"], ABLATION["full"])))
    assert rows.loc["no se", "test"] == "sign-flip exact" and rows.loc["no se", "pairs"] == 3
    assert rows.loc["no se", "left_out"] == 0
    # "no mixup" lost exactly 1 point on both of its seeds: no spread, yet the exact test has its p (2 of 4 patterns)
    assert rows.loc["no mixup", "pairs"] == 2 and rows.loc["no mixup", "left_out"] == 1  # full's seed 2 has no partner
    assert rows.loc["no mixup", "p"] == pytest.approx(0.5)
    assert rows.loc["no se", "p"] == pytest.approx(0.25)  # 3 seeds, all lower: 2 of 8 sign patterns are as extreme
    assert rows.loc["no se", "p_holm"] == pytest.approx(0.5)  # both arms are in Holm's family: 0.25 x 2
    assert rows.loc["no mixup", "delta"] == pytest.approx(-0.01)  # on its two seeds, not against all three of full
    assert rows.loc["full", "delta"] == 0 and math.isnan(rows.loc["full", "p"])
    # a priori: 1 pp at Holm's strictest level 0.05 / 2 with the pooled sd of the paired differences
    pooled = math.sqrt((np.var(np.subtract(ABLATION["no se"], ABLATION["full"]), ddof=1) * 2 + 0) / 3)
    assert rows.loc["no se", "seeds_needed"] == power.seeds_needed(0.01, pooled, 0.025)
    assert rows.loc["no mixup", "seeds_needed"] == rows.loc["no se", "seeds_needed"]  # not from either arm's own delta
    assert rows.loc["no se", "params"] == 900 and rows.loc["full", "seconds"] == pytest.approx(11.0)
    shown = table.shown.set_index("variant")
    assert shown.loc["no se", "val acc (%)"] == "62.00 ± 2.65"
    assert shown.loc["no se", "effect (Δ = variant − full, pp)"] == "removing se changes accuracy by -10.00"
    assert shown.loc["no se", "95% CI (pp)"] == "[−∞, +∞]"


def test_reference_variant_missing_is_said():
    study = ablation_study()
    record.write_study(study, reference_variant="bare")
    assert "'bare' has no completed trial" in ablation.variants(study)


def test_factorial_interactions():
    table = ablation.interactions(factorial_study())
    row = table.data.iloc[0]
    assert (row["a"], row["b"]) == ("se", "mixup")
    assert [row["both"], row["a_only"], row["b_only"], row["neither"]] == pytest.approx([0.81, 0.71, 0.61, 0.56])
    assert row["interaction"] == pytest.approx(0.05)  # (0.81 - 0.61) - (0.71 - 0.56)


def test_ablation_path_table_holds_the_stored_path():
    table = ablation_path.path(path_study())
    assert table.data["gain"].tolist() == pytest.approx([s["gain"] for s in PATH])
    assert table.shown["change"].tolist() == ["", "0.01 → 0.05", "both → none"]
    assert table.shown["gain (pp)"].tolist() == ["+0.00", "+6.00", "-1.00"]
    assert table.shown["note"].tolist() == ["", "", "within noise"]  # -1 point inside its ± 2 points
    assert table.shown["± 95% (pp)"].tolist() == ["–", "3.00", "2.00"]


def test_baselines_one_row_per_model_at_full_budget(monkeypatch):
    published = {("resnet18", "cifar10"): 0.95}
    monkeypatch.setattr(literature, "published", lambda model, dataset: published.get((model, dataset)))
    table = baselines.models(comparison_study())
    rows = table.data.set_index("model")
    assert rows.loc["naivenet", "n"] == 2  # the quarter-data runs stay on the data axis
    assert rows.loc["naivenet", "val_accuracy_mean"] == pytest.approx(0.71)
    assert rows.loc["naivenet", "test_accuracy_mean"] == pytest.approx(0.70)
    assert rows.loc["resnet18", "val_accuracy_std"] == pytest.approx(math.sqrt(0.0008))
    assert rows.loc["naivenet", "images_per_second"] == pytest.approx(1000.0)
    assert rows.loc["resnet18", "gap"] == pytest.approx(0.80 - 0.95)  # test accuracy against the published figure
    assert math.isnan(rows.loc["naivenet", "published"]) and table.shown.set_index("model").loc["naivenet", "gap (pp)"] == "–"
    fractions = baselines.data_requirements(comparison_study()).set_index(["model", "data_fraction"])
    assert fractions.loc[("naivenet", 0.25), "val_accuracy_mean"] == pytest.approx(0.51)
    curve = baselines.effort(comparison_study()).query("model == 'resnet18'")["val_accuracy"].tolist()
    assert curve == pytest.approx([0.72, 0.82])


def test_final_scores_fill_the_test_column_and_the_literature_gap(monkeypatch):
    published = {("resnet18", "cifar10"): 0.95}
    monkeypatch.setattr(literature, "published", lambda model, dataset: published.get((model, dataset)))
    scored = final_study()
    table = baselines.models(comparison_study(), final.of([scored], "baselines"))
    rows = table.data.set_index("model")
    assert rows.loc["resnet18", "test_accuracy_mean"] == pytest.approx(0.84)  # the final runs, not the search's
    assert rows.loc["resnet18", "gap"] == pytest.approx(0.84 - 0.95)
    assert "scored once, not used for selection" in table.title
    own = final.scores(scored)
    naivenet = own.data.set_index("candidate").loc["model=naivenet", "test_accuracy_mean"]
    assert naivenet == pytest.approx(np.mean(FINAL["naivenet"]))
    assert "scored once, not used for selection" in own.title and list(own.data["n"]) == [2, 2]


def test_overview_counts_states_and_names_a_subset():
    column = search.overview_column(ablation_study())
    assert (column["trials complete"], column["trials failed"]) == (8, 1)
    assert column["data set"] == "cifar10 (subset: 5,438 train / 1,017 test images of 50,000 / 10,000)"


def test_the_run_table_and_the_report_show_the_same_top_trials():
    study = new_study("top")
    lr = FloatDistribution(1e-3, 1.0, log=True)
    for value, state, attrs in [(0.5, TrialState.COMPLETE, {"params": 1000}), (0.9, TrialState.PRUNED, {}),
                                (0.7, TrialState.COMPLETE, {"params": 2000, "epochs_trained": 3})]:
        study.add_trial(optuna.trial.create_trial(state=state, value=value, params={"lr": value / 10},
                                                  distributions={"lr": lr}, user_attrs=record.trial_attrs(**attrs)))
    report = search.top_trials(study).data
    assert report["trial"].tolist() == [2, 0]  # completed only, best first; the pruned 0.9 is no result
    assert report["model_params"].tolist() == [2000, 1000] and report["lr"].tolist() == pytest.approx([0.07, 0.05])
    console = progress.make_console(plain=True)
    with console.capture() as captured:
        console.print(progress.top_trials_table(study))
    lines = [line.split() for line in captured.get().splitlines() if line.split()[:1] in (["0"], ["1"], ["2"])]
    # after `run`, pruned trials follow the completed ones; a trial that stored no epochs shows none
    assert lines == [["2", "complete", "0.7000", "3", "2,000", "0", "0.07"],
                     ["0", "complete", "0.5000", "1,000", "0", "0.05"],
                     ["1", "pruned", "0.9000", "0", "0", "0.09"]]


def test_a_study_that_stored_no_attributes_says_what_was_not_recorded():
    bare = optuna.create_study(direction="maximize")  # as a release before an attribute was stored left it
    bare.add_trial(optuna.trial.create_trial(value=0.5))
    column = search.overview_column(bare)
    assert column["kind"] == "search"
    assert [column[k] for k in ("space file", "data set", "device", "budget", "sampler", "pruner")] == ["not recorded"] * 6
    assert column["per trial"] == "– train / – validation images at – px, data_fraction –"


def test_a_rescored_path_shows_its_fresh_seed_gain_with_the_sign_flip_ci_and_p():
    """The path as `study ablation-path` stores it now: each step chosen on some seeds and re-scored on
    fresh ones; the table shows the re-score's gain, the CI and p of the same test, and the choosing mean."""
    from study.workflows.ablation_path import _step

    reference = _step(0, "reference", [0.60, 0.61, 0.62], [0.60, 0.61, 0.59, 0.60, 0.62, 0.61], None)
    step = _step(1, "lr", [0.70, 0.71, 0.72], [0.62, 0.64, 0.61, 0.63, 0.63, 0.64], reference)
    step.update({"from": 0.01, "to": 0.05})
    study = new_study("rescored-ablation-path", None, kind="ablation_path", source_study="search", path=[reference, step])
    table = ablation_path.path(study)
    assert table.shown["when chosen (%)"].tolist() == ["61.00", "71.00"]  # what the choosing seeds said
    assert table.shown["gain (pp)"].tolist() == ["+0.00", "+2.33"]  # what the fresh seeds say
    assert table.shown["p"].tolist()[1] == "0.031"  # 6 positive paired differences: 2 / 2^6, two-sided
    low, high = table.data.loc[1, ["gain_ci_low", "gain_ci_high"]]
    assert 0 < low < 0.0233 < high  # the sign-flip interval excludes 0 with 6 seeds and holds the gain
    assert "two-sided" in table.title and "fresh seeds" in table.title
    assert table.shown["note"].tolist() == ["", ""]
