"""Compute budgets (study.search.budget), search defaults sized to them, and the search bench's figures."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from processes import ONE_KNOB_SPACE
from rich.console import Console

from study.bench import search as search_bench
from study.bench import search_figures
from study.errors import UserError
from study.samplers import registry
from study.search import budget as budgets
from study.search import runner, studies
from study.spaces import space as spaces
from study.store.states import FINISHED
from study.store.vocabulary import StoppedBy

ROOT = Path(__file__).resolve().parents[1]
TINY = '"""tiny: a one-knob space for budget tests."""' + ONE_KNOB_SPACE


@pytest.fixture
def tiny(tmp_path) -> spaces.Space:
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return spaces.load(path)


def _fixed(data_dir: str, epochs: int = 3) -> dict:
    return {"data_dir": data_dir, "epochs": epochs, "data_fraction": 0.05, "device": "cpu"}


def _epochs(study: optuna.Study) -> int:
    return sum(len(t.intermediate_values) for t in study.get_trials() if t.state in FINISHED)


def test_epoch_budget_ends_at_exactly_its_epochs_cutting_the_last_trial(tiny, data_dir, tmp_path):
    study = runner.run(tiny, _fixed(data_dir), runner.Options(storage=f"sqlite:///{tmp_path}/a.db", compute={"epochs": 10}))
    trials = study.get_trials()
    assert _epochs(study) == 10
    assert [len(t.intermediate_values) for t in trials] == [3, 3, 3, 1]
    assert trials[-1].state == TrialState.PRUNED and trials[-1].user_attrs["stopped_by"] == StoppedBy.BUDGET


def test_pruned_trials_epochs_buy_more_trials(tiny, data_dir, tmp_path, monkeypatch):
    # a pruner that stops every trial after its second epoch: each trial then costs 2 of the 10 epochs
    monkeypatch.setattr(studies, "pruner", lambda *a, **k: optuna.pruners.ThresholdPruner(lower=1.0, n_warmup_steps=2))
    study = runner.run(tiny, _fixed(data_dir), runner.Options(storage=f"sqlite:///{tmp_path}/a.db", compute={"epochs": 10}))
    trials = study.get_trials()
    assert _epochs(study) == 10
    assert len(trials) == 5 > 10 // 3  # a trial budget would have bought 3 whatever pruning saved
    assert all(t.state == TrialState.PRUNED and len(t.intermediate_values) == 2 for t in trials)


def test_resume_continues_to_the_same_epoch_total(tiny, data_dir, tmp_path):
    url = f"sqlite:///{tmp_path}/a.db"
    first = runner.run(tiny, _fixed(data_dir), runner.Options(storage=url, trials=2, compute={"epochs": 10}))  # stopped early
    assert _epochs(first) == 6
    second = runner.run(tiny, _fixed(data_dir), runner.Options(storage=url, compute={"epochs": 10}))
    assert _epochs(second) == 10 and len(second.get_trials()) == 4
    third = runner.run(tiny, _fixed(data_dir), runner.Options(storage=url, compute={"epochs": 10}))
    assert third.get_trials() == second.get_trials()


def test_two_workers_share_an_epoch_budget_exactly(tiny, data_dir, tmp_path):
    db = tmp_path / "a.db"
    r = subprocess.run([sys.executable, "-m", "study", "run", str(tiny.path), "--data-dir", data_dir, "--epochs", "2",
                        "--budget", "9ep", "--workers", "2", "--storage", f"sqlite:///{db}", "--set", "data_fraction=0.05"],
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    assert _epochs(study) == 9
    assert len({t.number for t in study.get_trials()}) == len(study.get_trials())


@pytest.mark.parametrize("text, parsed", [("120ep", {"epochs": 120}), ("600s", {"seconds": 600.0}),
                                          ("10m", {"seconds": 600.0}), ("1.5h", {"seconds": 5400.0})])
def test_budget_flag_parses(text, parsed):
    assert budgets.parse(text) == parsed


@pytest.mark.parametrize("text", ["120", "12x", "0ep", "1.5ep", ""])
def test_bad_budget_flag_is_one_line(text):
    with pytest.raises(UserError, match="--budget .* 120ep"):
        budgets.parse(text)


def test_space_budget_epochs_sets_a_compute_budget(tmp_path):
    path = tmp_path / "b.py"
    path.write_text(TINY + "budget_epochs = 50\n")
    space = spaces.load(path)
    assert budgets.resolve(space.kind, None, None) == budgets.Budget(epochs=50)
    assert budgets.resolve(space.kind, 4, {"seconds": 60.0}) == budgets.Budget(trials=4, seconds=60.0)
    path.write_text(TINY + "budget_epochs = 0\n")
    with pytest.raises(UserError, match="budget_epochs=0 is invalid"):
        spaces.load(path)


def test_defaults_follow_the_budget():
    assert registry.first_rung(10) == 4 and registry.first_rung(6) == 3
    assert registry.startup_trials(10) == 3 and registry.startup_trials(60) == 10
    assert registry.full_trials(budgets.Budget(epochs=100), 10) == 10
    hb = registry.pruner("hyperband", 10, 10)  # a small budget: Hyperband's first bracket only
    assert isinstance(hb, optuna.pruners.SuccessiveHalvingPruner)
    assert (hb._min_resource, hb._reduction_factor) == (4, 2)
    big = registry.pruner("hyperband", 10, 40)
    assert isinstance(big, optuna.pruners.HyperbandPruner) and big._reduction_factor == 3
    # wrapped, Hyperband no longer narrows the sampler's view to one bracket's trials
    study = optuna.create_study(pruner=budgets.Budget(epochs=100).pruner(big, 10))
    trial = study.ask()
    assert optuna.pruners._filter_study(study, study._storage.get_trial(trial._trial_id)) is study


def _trial(number_values: list[float], complete: bool, reference: bool = False) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED,
        value=number_values[-1] if complete else None,
        intermediate_values=dict(enumerate(number_values, 1)),
        params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        user_attrs={"reference": reference},
    )


@pytest.mark.parametrize("name", ["hyperband", "successive_halving", "median", "percentile"])
def test_every_pruner_first_prunes_at_the_measured_rung(name):
    # steps are epochs, from 1: after three trials at 0.5, one at 0.1 is kept through epoch 3 and pruned at 4 of 10
    study = optuna.create_study(direction="maximize", pruner=registry.pruner(name, 10, 10))

    def epoch_pruned_at(accuracy: float) -> int | None:
        trial = study.ask()
        for epoch in range(1, 11):
            trial.report(accuracy, epoch)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                return epoch
        study.tell(trial, accuracy)
        return None

    assert [epoch_pruned_at(0.5) for _ in range(3)] == [None] * 3
    assert epoch_pruned_at(0.1) == registry.first_rung(10) == 4


def test_a_trial_that_trained_all_its_epochs_completes_even_at_a_rung():
    # the quick bench's plan: 6 epochs, first rung 3, factor 2, so successive halving has a rung at
    # epoch 6 too; a trial below the others' there was pruned after training all 6 epochs
    epochs = 6
    study = optuna.create_study(direction="maximize", pruner=budgets.Budget(trials=10).pruner(
        registry.pruner("hyperband", epochs, 4), epochs))

    def run(curve: list[float]) -> TrialState:
        trial = study.ask()
        for epoch, accuracy in enumerate(curve, 1):
            trial.report(accuracy, epoch)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                return TrialState.PRUNED
        study.tell(trial, curve[-1])
        return TrialState.COMPLETE

    assert [run([0.5] * 6) for _ in range(3)] == [TrialState.COMPLETE] * 3
    assert run([0.6] * 5 + [0.1]) == TrialState.COMPLETE
    assert run([0.1] * 6) == TrialState.PRUNED  # still pruned at the first rung, epoch 3


def test_search_bench_figures_from_hand_made_studies():
    random = [
        [_trial([0.2, 0.3], True, True), _trial([0.2, 0.4], True), _trial([0.1, 0.35], True)],
        [_trial([0.2, 0.32], True, True), _trial([0.2, 0.30], True), _trial([0.1, 0.2], True)],
    ]
    default = [  # seed 0: reaches 0.4 after 2 + 1 + 2 = 5 of random's 6 epochs; seed 1 never reaches 0.32
        [_trial([0.2, 0.3], True, True), _trial([0.1], False), _trial([0.3, 0.45], True), _trial([0.1], False)],
        [_trial([0.2, 0.32], True, True), _trial([0.1, 0.31], True), _trial([0.1, 0.2], True)],
    ]
    result = search_figures.summarize({"random": random, "default": default})
    arm = result["arms"]["default"]
    assert arm["bests"] == [0.45, 0.32] and arm["beats_random"] == 1
    assert arm["epochs_to_reach_random_best"] == [5, 2]  # a tie with random's best counts as reached
    assert arm["median_share_of_random_compute"] == pytest.approx((5 / 6 + 2 / 6) / 2)
    assert result["arms"]["random"]["beats_random"] == 0
    assert arm["trials"] == [4, 3] and arm["epochs_per_trial"] == [[2, 1, 2, 1], [2, 2, 2]]
    assert result["defaults"]["values"] == [0.3, 0.32]
    assert result["defaults"]["range"] == pytest.approx(0.02)


def test_search_bench_runs_its_arms_and_parallel_jobs_give_the_same_figures(tiny, data_dir):
    plan = search_bench.Plan(seeds=2, arms=("default",), epochs=2, budget_epochs=4, data_fraction=0.05)
    quiet = Console(file=io.StringIO())
    one = search_bench.run(plan, tiny.path, data_dir, "cpu", quiet)
    assert set(one["arms"]) == {"random", "default"} and one["budget_epochs"] == 4
    assert [sum(e) for e in one["arms"]["random"]["epochs_per_trial"]] == [4, 4]  # exactly the budget
    assert len(one["defaults"]["values"]) == 2 and all(0 < v < 1 for v in one["defaults"]["values"])
    assert all(len(a["rescored"]) == 2 and all(0 < v < 1 for v in a["rescored"]) for a in one["arms"].values())
    assert one["first_seed"] == search_bench.FIRST_SEED and one["arms"]["default"]["vs_random"]["test"].startswith("exact")
    assert search_bench.run(plan, tiny.path, data_dir, "cpu", quiet, jobs=2) == one  # seeded: jobs change nothing
    printed = Console(file=io.StringIO(), width=200)
    printed.print(search_figures.table(one))
    assert " / ".join(f"{b:.3f}" for b in one["arms"]["default"]["bests"]) in printed.file.getvalue()


@pytest.mark.parametrize("args, match", [
    (["run", "spaces/naivenet32_cifar10.py", "--budget", "12x"], "error: --budget '12x' is invalid"),
    (["bench", "--only", "search", "--arms", "random,bogus"], "error: --arms: unknown arm(s) bogus"),
    (["bench", "--only", "search", "--jobs", "0"], "error: --jobs 0 is invalid"),
    (["bench", "--only", "search", "--seeds", "1"], "error: --seeds 1 is invalid"),
    (["bench", "--only", "search", "--rescore", "0"], "error: --rescore 0 is invalid"),
    (["bench", "--only", "search", "--data-fraction", "1.5"], "error: --data-fraction 1.5 is invalid"),
])
def test_bad_budget_or_arm_on_the_command_line_is_one_line(args, match, capsys, monkeypatch):
    from study import cli

    monkeypatch.chdir(ROOT)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(match) and err.count("\n") == 1


def test_a_grid_budget_counts_cells_and_lets_the_lowest_live_trial_of_a_cell_train_it():
    from study.store import record

    study = optuna.create_study(direction="maximize")
    grid = budgets.Budget.grid(frozenset({("full", 0), ("full", 1)}))
    for _ in range(2):  # two nodes queue the grid at once
        for seed in (0, 1):
            study.enqueue_trial({"variant": "full", "seed": seed})
    assert grid.trials_to_start(study.trials) == 4 and grid.max_attempts is None and not grid.spent(study.trials)
    first, second, dup = study.ask(), study.ask(), study.ask()  # cells (full, 0), (full, 1), and (full, 0) again
    assert grid.claim(study, first).number == 0 and grid.claim(study, second).number == 1
    with pytest.raises(budgets.BudgetReached, match="stepped aside: cell full, seed 0 is trial 0's"):
        grid.claim(study, dup)
    study.tell(dup, state=TrialState.FAIL)
    study.tell(first, 0.5)
    study.tell(second, 0.5)
    assert not grid.spent(study.trials)  # a duplicate is still queued: it is popped, and steps aside, too
    late = study.ask()
    with pytest.raises(budgets.BudgetReached, match="is trial 1's"):  # a finished cell: whatever its number
        grid.claim(study, late)
    study.tell(late, state=TrialState.FAIL)
    assert grid.spent(study.trials) and grid.trials_to_start(study.trials) == 0
    junk = study.ask()  # asked once the queue is empty: the sampler's trial is no cell's
    with pytest.raises(budgets.BudgetReached, match="no cell was left in the queue"):
        grid.claim(study, junk)
    study.tell(junk, state=TrialState.FAIL)
    assert all(record.stepped_aside(t) for t in study.trials if t.state == TrialState.FAIL)
    assert budgets.progress_total(grid, study.trials, 1) == 2
