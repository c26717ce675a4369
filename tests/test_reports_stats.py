"""Table arithmetic against values worked out by hand: mean, std, Welch CI and p, deltas, interactions, Pareto."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from reports import ablation, baselines, search, stats
from test_reports_studies import ABLATION, PATH, ablation_study, comparison_study, factorial_study, path_study


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
    for variant in ("no se", "no mixup"):
        got = rows.loc[variant, ["delta", "ci_low", "ci_high", "p"]].tolist()
        assert got == pytest.approx(welch_by_hand(ABLATION[variant], ABLATION["full"]))
    assert rows.loc["no mixup", "delta"] == pytest.approx(-0.02)
    assert rows.loc["full", "delta"] == 0 and math.isnan(rows.loc["full", "p"])
    assert rows.loc["no se", "params"] == 900 and rows.loc["full", "seconds"] == pytest.approx(11.0)
    shown = table.shown.set_index("variant")
    assert shown.loc["no se", "val acc (%)"] == "62.00 ± 2.65"
    assert shown.loc["no se", "Δ vs full [95% CI]"].startswith("-10.00 [")


def test_reference_variant_missing_is_said():
    study = ablation_study()
    study.set_user_attr("reference_variant", "bare")
    assert "'bare' has no completed trial" in ablation.variants(study)


def test_factorial_interactions():
    table = ablation.interactions(factorial_study())
    row = table.data.iloc[0]
    assert (row["a"], row["b"]) == ("se", "mixup")
    assert [row["both"], row["a_only"], row["b_only"], row["neither"]] == pytest.approx([0.81, 0.71, 0.61, 0.56])
    assert row["interaction"] == pytest.approx(0.05)  # (0.81 - 0.61) - (0.71 - 0.56)


def test_ablation_path_table_holds_the_stored_path():
    table = ablation.path(path_study())
    assert table.data["gain"].tolist() == pytest.approx([s["gain"] for s in PATH])
    assert table.shown["change"].tolist() == ["", "0.01 → 0.05", "both → none"]
    assert table.shown["gain (pp)"].tolist() == ["+0.00", "+6.00", "-1.00"]


def test_baselines_one_row_per_model_at_full_budget(monkeypatch):
    published = {("resnet18", "cifar10"): 0.95}
    monkeypatch.setattr(baselines, "published_lookup", lambda: lambda model, dataset: published.get((model, dataset)))
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


def test_overview_counts_states_and_names_a_subset():
    column = search.overview_column(ablation_study())
    assert (column["trials complete"], column["trials failed"]) == (8, 1)
    assert column["data set"] == "cifar10 (subset: 5,438 train / 1,017 test images of 50,000 / 10,000)"
