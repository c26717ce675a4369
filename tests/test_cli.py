"""The command line as a user runs it: subprocesses from a scratch folder, real data, real studies."""

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from processes import study_cli

ROOT = Path(__file__).resolve().parents[1]
SPACE32 = str(ROOT / "spaces" / "naivenet32_cifar10.py")


def test_train_json_has_the_promised_metrics(data_dir, tmp_path):
    r = study_cli("train", SPACE32, "--data-dir", data_dir, "--set", "lr=0.05", "--set", "data_fraction=0.2",
                  "--epochs", "1", "--json", "--test", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("params", "flops_per_image", "val_accuracy", "images_per_second", "seconds", "test_accuracy"):
        assert key in metrics
    assert 0 <= metrics["val_accuracy"] <= 1 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["config"]["lr"] == 0.05 and metrics["epochs_trained"] == 1


@pytest.mark.parametrize("args,match", [
    (["train", SPACE32, "--set", "speed=3"], "unknown setting 'speed'"),
    (["train", SPACE32, "--set", "se=sometimes"], "se='sometimes' is not supported"),
    (["run", "spaces/nope.py"], "not found"),
    (["train", SPACE32, "--data-dir", "/nonexistent/data"], "--data-dir"),
])
def test_bad_input_is_one_line_and_exit_2(args, match, tmp_path):
    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and match in r.stderr and r.stderr.count("\n") == 1


def test_run_fixes_set_values_for_every_trial(data_dir, tmp_path):
    r = study_cli("run", SPACE32, "--data-dir", data_dir, "--trials", "2", "--epochs", "1",
                  "--set", "lr=0.02", "--set", "data_fraction=0.1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="naivenet32_cifar10", storage=f"sqlite:///{tmp_path}/runs/naivenet32_cifar10.db")
    assert len(study.trials) == 2
    assert all(t.user_attrs["config"]["lr"] == 0.02 and "lr" not in t.params for t in study.trials)
    assert "optuna-dashboard sqlite:///runs/naivenet32_cifar10.db" in r.stdout
    # stdout is a pipe here, as in CI or nohup: plain lines, no bars, nothing clipped at 80 columns
    lines = r.stdout.splitlines()
    assert not any(c in r.stdout for c in "━╸╺\r\x1b…")  # bar glyphs, carriage returns, escape codes, clipping
    rule = max((line for line in lines if set(line.strip()) == {"─"}), key=len)  # the top-trials table's rule
    assert max(map(len, lines)) <= len(rule)
    finished = [line for line in lines
                if line.startswith(("trial 0 ", "trial 1 ")) and " val_acc " in line and "epoch" not in line]
    assert len(finished) == 2 and all("weight_decay=" in line and "aug_strength=" in line for line in finished)


def test_end_to_end_search_prunes_and_learns_then_resumes(data_dir, tmp_path):
    storage = f"sqlite:///{tmp_path}/e2e.db"
    args = ["run", SPACE32, "--data-dir", data_dir, "--trials", "6", "--epochs", "3", "--storage", storage]
    r = study_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="naivenet32_cifar10", storage=storage)
    states = [t.state for t in study.trials]
    # trial 0 always finishes; successive halving (factor 2 at this budget) keeps a trial only when it
    # ranks in the top half at epoch 2, so how many more finish depends on the draw
    assert states.count(TrialState.COMPLETE) >= 2 and states.count(TrialState.PRUNED) >= 1
    assert all(len(t.intermediate_values) == 2 for t in study.trials if t.state == TrialState.PRUNED)  # the first rung
    assert study.best_value > 0.25  # chance is 0.10
    reference = study.trials[0]
    assert reference.user_attrs["reference"] and reference.params["lr"] == 0.05 and reference.params["se"] == "both"
    assert len(reference.user_attrs["val_accuracy_curve"]) == 3 and reference.user_attrs["params"] > 0
    assert study.user_attrs["dataset"]["train_images"] == 5438

    again = study_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert len(optuna.load_study(study_name="naivenet32_cifar10", storage=storage).trials) == 6
