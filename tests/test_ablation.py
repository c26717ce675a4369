import json
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study.config import Config
from study.errors import UserError
from study.search import runner
from study.spaces import space as spaces
from study.store.folders import artifact_store
from study.workflows.ablation_path import ablation_path


def write_space(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ablate.py"
    path.write_text('"""A tiny ablation."""\n' + textwrap.dedent(body))
    return path


TINY = """
model = "naivenet"
dataset = "cifar10"
resolution = 32
epochs = 1
seeds = 2
components = {"se": ("both", "none"), "augmentation": {"aug_strength": (1.0, 0.0)}}
"""


def test_designs_enumerate_their_variants(tmp_path):
    body = TINY.replace("}\n", ', "mixup": {"mixup_alpha": (0.2, 0.0)}}\n')
    one_out = spaces.load(write_space(tmp_path, body))
    assert [v.name for v in one_out.kind.variants()] == ["full", "no se", "no augmentation", "no mixup"]
    add_one = spaces.load(write_space(tmp_path, body + 'design = "add_one"\n'))
    variants = add_one.kind.variants()
    assert [v.name for v in variants] == ["bare", "only se", "only augmentation", "only mixup"]
    assert variants[1].settings == {"se": "both", "aug_strength": 0.0, "mixup_alpha": 0.0}
    factorial = spaces.load(write_space(tmp_path, body + 'design = "factorial"\n')).kind.variants()
    assert len(factorial) == 8 == len({v.name for v in factorial}) == len({tuple(v.settings.items()) for v in factorial})
    assert {"full", "bare", "se+mixup"} <= {v.name for v in factorial}


@pytest.mark.parametrize("body,match", [
    (TINY.replace('("both", "none")', '("both", "sometimes")'), "component 'se'.*none, frontend"),
    (TINY.replace('("both", "none")', '"both"'), r"\(full, ablated\)"),
    (TINY + "def suggest(t):\n    return {}\n", "split it into several files"),
    (TINY + 'design = "leave_two_out"\n', "one_out, add_one, factorial"),
])
def test_bad_ablation_spaces(tmp_path, body, match):
    with pytest.raises(UserError, match=match):
        spaces.load(write_space(tmp_path, body))


def test_one_out_grid_runs_each_cell_once_and_stores_diagnostics(data_dir, tmp_path):
    space = spaces.load(write_space(tmp_path, TINY))
    storage = f"sqlite:///{tmp_path}/ablate.db"
    # batch 16: enough steps that the first epoch's gradient norms go to the artifact store
    fixed = {"data_dir": data_dir, "data_fraction": 0.1, "record_grad_norms": True, "batch_size": 16}
    study = runner.run(space, fixed, runner.Options(storage=storage))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    cells = sorted((t.user_attrs["variant"], t.params["seed"]) for t in trials)
    assert cells == sorted((v, s) for v in ("full", "no se", "no augmentation") for s in (0, 1))
    no_se = next(t for t in trials if t.user_attrs["variant"] == "no se")
    assert no_se.user_attrs["config"]["se"] == "none" and no_se.user_attrs["components_on"] == ["augmentation"]
    assert study.user_attrs["kind"] == "ablation" and study.user_attrs["reference_variant"] == "full"
    assert study.user_attrs["components"]["augmentation"] == {"setting": "aug_strength", "full": 1.0, "ablated": 0.0}

    confusion = trials[0].user_attrs["confusion_matrix"]
    assert len(confusion) == 10 and sum(map(sum, confusion)) == trials[0].user_attrs["val_images"]
    store = artifact_store(storage)
    with store.open_reader(trials[0].user_attrs["grad_norms_artifact"]) as f:
        norms = json.load(f)
    assert "backend.6" in norms and all(len(v) == len(norms["backend.6"]) > 1 for v in norms.values())

    again = runner.run(space, fixed, runner.Options(storage=storage))
    assert len(again.get_trials()) == 6

    with pytest.raises(UserError, match="--set se"):
        runner.run(space, {**fixed, "se": "none"}, runner.Options(storage=storage))


def test_ablation_path_walks_from_reference_to_best(data_dir, tmp_path):
    storage = f"sqlite:///{tmp_path}/search.db"
    source = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    source.set_user_attr("seeds", 1)
    reference = Config(dataset="cifar10", resolution=32, epochs=1, data_dir=data_dir, data_fraction=0.1)
    best = reference.replace(lr=0.05, se="none", aug_strength=0.0)
    dists = {"lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True),
             "se": optuna.distributions.CategoricalDistribution(["none", "both"]),
             "aug_strength": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for config, value, attrs in ((reference, 0.2, {"reference": True}), (best, 0.3, {})):
        params = {k: config.to_dict()[k] for k in dists}
        source.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, value=value, user_attrs={"config": config.to_dict(), **attrs}))

    path = ablation_path(storage, None, {}, seeds=1)
    assert [s["step"] for s in path] == [0, 1, 2, 3]
    assert {s["param"] for s in path[1:]} == {"lr", "se", "aug_strength"}
    assert all(s["to"] == best.to_dict()[s["param"]] for s in path[1:])
    stored = optuna.load_study(study_name="search-ablation-path", storage=storage)
    # each step keeps the change that scored best on the choosing seed (0) among the trials stored for
    # that step, and reports its re-score on the fresh seed (1)
    kept: list[str] = []
    for step in path[1:]:
        runs = [t for t in stored.trials if t.user_attrs["path_step"] == step["step"]]
        tried = {frozenset(t.user_attrs["changed"]) - set(kept): t.value for t in runs if t.user_attrs["seed"] == 0}
        (best_change,) = max(tried, key=tried.get)
        assert step["param"] == best_change and step["choosing_mean"] == tried[frozenset([best_change])]
        kept.append(best_change)
        (fresh,) = [t for t in runs if t.user_attrs["seed"] == 1]
        assert set(fresh.user_attrs["changed"]) == set(kept) and step["val_accuracy_mean"] == fresh.value
    assert len(stored.trials) == (1 + 3 + 2 + 1) + (1 + 3) and stored.user_attrs["path"] == path
    last = next(t for t in stored.trials if t.user_attrs["path_step"] == 3)
    assert {k: last.user_attrs["config"][k] for k in dists} == {k: best.to_dict()[k] for k in dists}

    ablation_path(storage, None, {}, seeds=1)  # resumes: nothing new to train
    assert len(optuna.load_study(study_name="search-ablation-path", storage=storage).trials) == 11


def test_ablation_path_table_rounds_settings_and_marks_gains_within_noise():
    from rich.console import Console

    from study.workflows.ablation_path import _step, path_table

    start = _step(0, "reference", [0.8] * 6, [0.80, 0.85, 0.80, 0.85, 0.80, 0.85], None)
    noisy = _step(1, "mixup_alpha", [0.9] * 6, [0.83, 0.83, 0.83, 0.83, 0.83, 0.83], start)  # +0.5 pp, seeds disagree
    steady = _step(2, "lr", [0.9] * 6, [0.89, 0.90, 0.89, 0.90, 0.89, 0.90], noisy)  # +6.5 pp on every seed
    assert noisy["gain"] == pytest.approx(0.005) and noisy["within_noise"] is True
    assert steady["within_noise"] is False and start["within_noise"] is None
    assert steady["gain_p"] == pytest.approx(2 / 64) and 0 < steady["gain_ci_low"] < steady["gain"] < steady["gain_ci_high"]
    few = _step(1, "lr", [0.9] * 3, [0.89, 0.90, 0.89], _step(0, "reference", [0.8] * 3, [0.8] * 3, None))
    assert (few["gain_ci_low"], few["gain_ci_high"], few["within_noise"]) == ("-inf", "inf", True)  # 3 seeds bound nothing
    console = Console(record=True, width=250)
    noisy.update({"from": 1.0, "to": 0.8379179943092606})
    steady.update({"from": 0.0001, "to": 1.846455695582041e-05})
    console.print(path_table([start, noisy, steady], "path"))
    text = console.export_text()
    assert "1.0 -> 0.838" in text and "0.0001 -> 1.85e-05" in text and "0.8379179943" not in text
    assert text.count("~ within noise") == 1  # the noisy step only
    assert "+0.50" in text and "82.50 ± 2.74" in text and "90.00" in text  # re-scored, and when chosen


def _two_trial_search(storage: str, data_dir: str) -> Config:
    source = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    reference = Config(dataset="cifar10", resolution=32, epochs=1, data_dir=data_dir, data_fraction=0.1)
    best = reference.replace(lr=0.05)
    dist = {"lr": optuna.distributions.FloatDistribution(1e-3, 0.1, log=True)}
    for config, value, attrs in ((reference, 0.2, {"reference": True}), (best, 0.3, {})):
        source.add_trial(optuna.trial.create_trial(params={"lr": config.lr}, distributions=dist, value=value,
                                                   user_attrs={"config": config.to_dict(), **attrs}))
    return reference


def test_ablation_path_trains_anew_when_the_settings_differ_from_the_stored_runs(data_dir, tmp_path, monkeypatch):
    from fake_train import FakeTrain

    from study.search import trial as trial_module

    storage = f"sqlite:///{tmp_path}/search.db"
    _two_trial_search(storage, data_dir)
    fake = FakeTrain(lambda config: 0.01 * config.epochs + config.lr)
    monkeypatch.setattr(trial_module, "train_array", fake)
    ablation_path(storage, None, {}, seeds=1)
    first = len(fake.trained)
    assert first > 0 and {c.epochs for c in fake.trained} == {1}
    ablation_path(storage, None, {}, seeds=1)
    assert len(fake.trained) == first  # the same settings: nothing new
    path = ablation_path(storage, None, {"epochs": 30}, seeds=1)
    assert len(fake.trained) == 2 * first and {c.epochs for c in fake.trained[first:]} == {30}
    assert path[0]["val_accuracy_mean"] == pytest.approx(0.30 + 0.01)  # the 30-epoch runs' score, not the stored 1-epoch


def test_grid_rerun_with_other_settings_is_refused_and_changes_nothing(data_dir, tmp_path, monkeypatch):
    from fake_train import FakeTrain

    from study.search import trial as trial_module

    monkeypatch.setattr(trial_module, "train_array", FakeTrain())
    space = spaces.load(write_space(tmp_path, TINY))
    storage = f"sqlite:///{tmp_path}/ablate.db"
    fixed = {"data_dir": data_dir, "data_fraction": 0.1}
    runner.run(space, fixed, runner.Options(storage=storage, fuse=1))
    with pytest.raises(UserError, match=r"epochs=30 \(stored: 1\).*--study-name"):
        runner.run(space, {**fixed, "epochs": 30}, runner.Options(storage=storage, fuse=1))
    study = optuna.load_study(study_name="ablate", storage=storage)
    assert len(study.trials) == 6 and {t.user_attrs["config"]["epochs"] for t in study.trials} == {1}
    # where it runs is no setting of the cells: no new cells
    runner.run(space, {**fixed, "data_dir": data_dir + "/"}, runner.Options(storage=storage, fuse=1))
    assert len(optuna.load_study(study_name="ablate", storage=storage).trials) == 6


def test_ablation_path_gains_are_unbiased_when_no_change_matters(tmp_path, monkeypatch):
    """Pure noise: every configuration scores 0.5 plus a seed's draw (sd 2.7 points, the real trial
    noise). Picking the best of several changes and reporting it on the runs that picked it gains about
    a point per step; re-scored on fresh seeds the mean gain is zero within its standard error."""
    import io

    import numpy as np
    from rich.console import Console

    from study.workflows import ablation_path as module

    storage = f"sqlite:///{tmp_path}/search.db"
    source = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    reference = Config(dataset="cifar10", resolution=32, epochs=1)
    best = reference.replace(lr=0.05, weight_decay=1e-3, width=1.5, depth=3, label_smoothing=0.0)
    names = ("lr", "weight_decay", "width", "depth", "label_smoothing")
    dists = {k: optuna.distributions.CategoricalDistribution([reference.to_dict()[k], best.to_dict()[k]]) for k in names}
    for config, value, attrs in ((reference, 0.2, {"reference": True}), (best, 0.3, {})):
        source.add_trial(optuna.trial.create_trial(params={k: config.to_dict()[k] for k in names}, distributions=dists,
                                                   value=value, user_attrs={"config": config.to_dict(), **attrs}))
    rng = np.random.default_rng(0)
    drawn: dict = {}

    def noise(study, config, *args, **kwargs):  # one draw per configuration and repetition, as a stored run
        return drawn.setdefault(config.identity(), 0.5 + 0.027 * rng.standard_normal())

    monkeypatch.setattr(module, "train_one_trial", noise)
    monkeypatch.setattr(module.datasets, "load", lambda config: None)  # no run reads images here
    gains, flagged = [], []
    for _ in range(50):
        drawn.clear()
        path = module.ablation_path(storage, None, {}, seeds=3, console=Console(file=io.StringIO()))
        gains.append([s["gain"] for s in path[1:]])
        flagged += [s["within_noise"] is False for s in path[1:]]
    # per step, 50 gains, each the mean of 3 paired differences (sd 0.027 * sqrt(2/3) = 0.022): the
    # standard error of their mean is 0.0031. Read on the runs that chose it, step 1 (the best of 5
    # changes) gains about +1.8 points and the later steps less than nothing.
    assert np.abs(np.mean(gains, axis=0)).max() < 0.01
    assert np.mean(flagged) <= 0.05


@pytest.mark.parametrize("fuse", [1, 2])
def test_nodes_that_queue_a_grid_at_once_train_each_cell_once(data_dir, tmp_path, monkeypatch, fuse):
    from fake_train import FakeTrain

    from study.search import trial as trial_module
    from study.spaces import kinds
    from study.store import record

    fake = FakeTrain()
    monkeypatch.setattr(trial_module, "train_array", fake)
    enqueue = kinds.GridPlan.enqueue

    def racing(self, study):
        # the race of nodes that start at once: another node read the trials before this one queued
        # its cells, so it queues them all again
        before = study.get_trials(deepcopy=False)
        cells = enqueue(self, study)
        study.get_trials = lambda *args, **kwargs: before
        try:
            enqueue(self, study)
        finally:
            del study.get_trials
        return cells

    monkeypatch.setattr(kinds.GridPlan, "enqueue", racing)
    space = spaces.load(write_space(tmp_path, TINY))
    storage = f"sqlite:///{tmp_path}/race.db"
    study = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=storage, fuse=fuse))
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    cells = [record.cell(t) for t in done]
    assert len(trials) == 12 and len(fake.trained) == len(done) == len(set(cells)) == 6  # 3 variants x 2 seeds
    aside = [t for t in trials if t not in done]
    assert all(t.state == TrialState.FAIL and record.stepped_aside(t) for t in aside)
    assert {record.cell(t) for t in aside} == set(cells)
    # the stepped-aside trials are not failures: reports leave them out, and a rerun re-queues none of them
    from reports import search

    assert search.overview_column(study)["trials failed"] == 0
    runner.run(space, {"data_dir": data_dir}, runner.Options(storage=storage, fuse=fuse))
    assert len(optuna.load_study(study_name="ablate", storage=storage).trials) == 12 and len(fake.trained) == 6
