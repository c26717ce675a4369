"""`python -m study final`: the chosen configurations retrained, each scored once on the test set; a rerun trains nothing."""

import optuna

from study import cli
from study.config import Config
from study.engine import data
from study.engine import evaluate as evaluation
from study.search import trial as trial_module
from study.workflows import test_score as final


def stored_search(storage: str, data_dir: str) -> optuna.Study:
    """Three finished trials of a tiny search, as `run` stores them (config in the user attributes)."""
    source = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    source.set_user_attr("seeds", 2)
    base = Config(dataset="cifar10", resolution=32, epochs=1, data_dir=data_dir, data_fraction=0.1, batch_size=64)
    lr = optuna.distributions.FloatDistribution(1e-3, 0.1, log=True)
    for value, rate in ((0.20, 0.01), (0.30, 0.05), (0.25, 0.02)):
        config = base.replace(lr=rate)
        source.add_trial(optuna.trial.create_trial(
            params={"lr": rate}, distributions={"lr": lr}, value=value, user_attrs={"config": config.to_dict()}))
    return source


def test_final_scores_the_test_set_once_and_a_rerun_trains_nothing(data_dir, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path}/search.db"
    stored_search(storage, data_dir)
    test_size = len(data.load("cifar10", data_dir).test_labels)
    scored = []
    evaluate = evaluation.evaluate

    def counting(model, x, y, *args, **kwargs):
        scored.append(len(y) == test_size)
        return evaluate(model, x, y, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", counting)
    study = final.test_score(storage, None, {}, top=2, seeds=2)
    assert study.study_name == "search-final" and study.user_attrs["kind"] == "final"
    trials = study.get_trials(deepcopy=False)
    assert sorted((t.user_attrs["candidate"], t.user_attrs["seed"]) for t in trials) == [
        ("trial 1", 0), ("trial 1", 1), ("trial 2", 0), ("trial 2", 1)]  # the two best, two seeds each
    assert all(t.value == t.user_attrs["test_accuracy"] and 0 < t.value < 1 for t in trials)
    assert {t.user_attrs["config"]["lr"] for t in trials} == {0.05, 0.02}
    assert sum(scored) == 4  # one test-set evaluation per run, none during training
    source = optuna.load_study(study_name="search", storage=storage)
    assert all("test_accuracy" not in t.user_attrs for t in source.trials)  # the search itself never saw it

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun must not train")

    monkeypatch.setattr(trial_module, "train_array", no_training)
    assert cli.main(["final", f"{tmp_path}/search.db", "--top", "2", "--seeds", "2"]) == 0
    assert len(optuna.load_study(study_name="search-final", storage=storage).trials) == 4
    assert sum(scored) == 4


def test_final_bad_inputs(tmp_path, capsys):
    assert cli.main(["final", str(tmp_path / "missing.db")]) == 2
    assert "missing.db does not exist" in capsys.readouterr().err
    assert cli.main(["final", str(tmp_path / "missing.db"), "--top", "0"]) == 2
    assert "--top 0 is invalid" in capsys.readouterr().err
    # a study of ours with no trial yet (a plain Optuna study is refused before: tests/test_bad_stored.py)
    optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path}/empty.db",
                        direction="maximize").set_user_attr("kind", "search")
    assert cli.main(["final", str(tmp_path / "empty.db")]) == 2
    assert "study empty has no completed trial" in capsys.readouterr().err


def test_final_trains_anew_when_the_settings_differ_from_the_stored_runs(data_dir, tmp_path, monkeypatch):
    from fake_train import FakeTrain

    storage = f"sqlite:///{tmp_path}/search.db"
    stored_search(storage, data_dir)  # trained with epochs=1
    fake = FakeTrain(lambda config: 0.1 * config.epochs)
    monkeypatch.setattr(trial_module, "train_array", fake)
    final.test_score(storage, None, {}, top=1, seeds=2)
    assert [c.epochs for c in fake.trained] == [1, 1]
    longer = final.test_score(storage, None, {"epochs": 30}, top=1, seeds=2)
    assert [c.epochs for c in fake.trained] == [1, 1, 30, 30]  # the 1-epoch scores do not stand in for 30 epochs
    runs = {(t.user_attrs["candidate"], t.user_attrs["seed"]): t.value for t in longer.trials}
    assert runs == {("trial 1", 0): 0.1, ("trial 1", 1): 0.1,
                    ("trial 1 (epochs=30)", 0): 3.0, ("trial 1 (epochs=30)", 1): 3.0}
    final.test_score(storage, None, {"epochs": 30, "data_dir": f"{data_dir}/."}, top=1, seeds=2)  # where it runs: reused
    final.test_score(storage, None, {}, top=1, seeds=2)
    assert len(fake.trained) == 4
    final.test_score(storage, None, {"data_fraction": 0.2}, top=1, seeds=2)
    assert len(fake.trained) == 6 and fake.trained[-1].data_fraction == 0.2
