"""Stored studies made wrong on purpose, and report outputs that cannot be written (case families of the
catalogue in tests/test_bad_input.py): one line, exit 2, nothing written; or, where the rest can be
used, a report that says what it left out.
"""

import contextlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest
import torch

from study import cli
from tests.test_bad_input import main, stored  # noqa: F401 - `stored` is the module's fixture too

NAME = "naivenet32_cifar10"


@pytest.fixture
def db(stored, tmp_path):  # noqa: F811 - the fixture imported above
    """A copy of the stored one-trial study, free to change."""
    out = tmp_path / "copy.db"
    with contextlib.closing(sqlite3.connect(stored / "study.db")) as src, contextlib.closing(sqlite3.connect(out)) as dst:
        src.backup(dst)  # with what is still in its write-ahead log
    return out


def copy_as(db: Path, *names: str) -> None:
    for name in names:
        optuna.copy_study(from_study_name=NAME, from_storage=f"sqlite:///{db}", to_storage=f"sqlite:///{db}",
                          to_study_name=name)


# -- report -o ---------------------------------------------------------------------------------------

def test_report_to_a_folder_is_one_line(db, tmp_path, capsys):
    (tmp_path / "page.html").mkdir()
    code, err = main(["report", db, "-o", tmp_path / "page.html", "--no-dashboard"], capsys)
    assert code == 2 and err.count("\n") == 1 and "page.html is a folder" in err, err


def test_report_tables_folder_taken_by_a_file_is_one_line(db, tmp_path, capsys):
    (tmp_path / "r_tables").write_text("mine\n")
    code, err = main(["report", db, "-o", tmp_path / "r.html", "--no-dashboard"], capsys)
    assert code == 2 and err.count("\n") == 1 and "but a file has that name" in err, err
    assert (tmp_path / "r_tables").read_text() == "mine\n" and not (tmp_path / "r.html").exists()


def test_an_output_name_too_long_for_the_file_system_is_one_line(db, tmp_path, capsys):
    code, err = main(["report", db, "-o", tmp_path / ("x" * 300 + ".html"), "--no-dashboard"], capsys)
    assert code == 2 and err.count("\n") == 1 and "File name too long" in err, err


def test_a_study_name_too_long_for_a_file_name_still_gets_its_tables(db, tmp_path, capsys):
    copy_as(db, "x" * 300)
    code, err = main(["report", db, "-o", tmp_path / "r.html", "--no-dashboard", "--tables-only"], capsys)
    assert code == 0, err
    names = [p.name for p in (tmp_path / "r_tables").glob("x*-top_trials.csv")]
    assert len(names) == 1 and len(names[0]) < 255, names


def test_studies_whose_names_read_alike_write_tables_apart(db, tmp_path, capsys):
    copy_as(db, "run 1", "run_1", "run/1")
    assert cli.main(["report", str(db), "-o", str(tmp_path / "r.html"), "--no-dashboard", "--tables-only"]) == 0
    tops = sorted(p.name for p in (tmp_path / "r_tables").glob("*top_trials.csv"))
    assert len(tops) == 4 and "run_1-top_trials.csv" in tops, tops  # one per study, the safe name kept as it is
    csvs = list((tmp_path / "r_tables").glob("*.csv"))
    assert f"{len(csvs)} tables written" in capsys.readouterr().out


def test_the_same_study_name_in_two_storages_writes_tables_apart(db, stored, tmp_path, capsys):  # noqa: F811
    code, err = main(["report", db, stored / "study.db", "-o", tmp_path / "r.html", "--no-dashboard", "--tables-only"],
                     capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "r_tables").glob("*top_trials*.csv")) == [
        f"{NAME}-top_trials-2.csv", f"{NAME}-top_trials.csv"]


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs: room for one report page (about 4.7 MB), not two (needs root to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs ({r.stderr.strip() or 'mount failed'}): needs root")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_keeps_the_earlier_page_whole_and_is_one_line(db, small_disk, tmp_path, capsys):
    assert main(["report", db, "-o", tmp_path / "good.html", "--no-dashboard"], capsys)[0] == 0
    page = small_disk / "r.html"
    shutil.copy(tmp_path / "good.html", page)
    before = page.read_bytes()
    code, err = main(["report", db, "-o", page, "--no-dashboard"], capsys)
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err, err
    assert page.read_bytes() == before  # the earlier good page, not a truncated one
    assert not list(small_disk.glob(".*.tmp"))


# -- stored attributes of the wrong type ---------------------------------------------------------------

def set_attrs(db: Path, table: str, **values: str) -> None:
    """Overwrite stored user attributes (JSON text) of the study or its trial 0, as a damaged database would."""
    owner = "trial_id" if table.startswith("trial") else "study_id"
    with contextlib.closing(sqlite3.connect(db)) as c, c:
        (row,) = c.execute(f"SELECT min({owner}) FROM {'trials' if owner == 'trial_id' else 'studies'}").fetchone()
        for key, value_json in values.items():
            c.execute(f"DELETE FROM {table} WHERE key = ? AND {owner} = ?", (key, row))
            c.execute(f"INSERT INTO {table} ({owner}, key, value_json) VALUES (?, ?, ?)", (row, key, value_json))


MALFORMED = dict(config='"lr=0.1"', params='"99k"', seconds='"12.5"', confusion_matrix="[[1, 2], [3]]",
                 grad_norms='{"conv": "big"}', val_accuracy_curve='[0.1, "x"]')


def test_report_leaves_out_malformed_stored_attributes_and_names_each(db, tmp_path, capsys):
    set_attrs(db, "trial_user_attributes", **MALFORMED)
    set_attrs(db, "study_user_attributes", dataset='"cifar10"', commands='"python -m study run"')
    code, err = main(["report", db, "-o", tmp_path / "r.html", "--no-dashboard"], capsys)
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert "malformed stored attributes" in page
    for key in [*MALFORMED, "dataset", "commands"]:
        assert key in page.split("malformed stored attributes")[1][:3000], key
    assert "trial 0: seconds is str &quot;12.5&quot;, not float | None" in page
    assert "confusion_matrix is not square" in page


def test_final_on_a_trial_with_a_malformed_config_is_one_line_and_writes_nothing(db, capsys):
    set_attrs(db, "trial_user_attributes", config='{"lr": "fast", "epochs": 1}')
    code, err = main(["final", db, "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "trial 0: its stored configuration is malformed" in err, err
    assert optuna.get_all_study_names(f"sqlite:///{db}") == [NAME]


# -- studies not written by `study run` -------------------------------------------------------------

def plain(db: Path, name: str, directions=("maximize",), **study_attrs) -> None:
    """An Optuna study as a user's own script writes it: three trials, no attribute of ours."""
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name=name, directions=list(directions))
    for key, value in study_attrs.items():
        study.set_user_attr(key, value)
    study.optimize(lambda t: [t.suggest_float("x", 0, 1)] * len(directions), n_trials=3)


FOREIGN = [
    ("minimize", dict(directions=("minimize",)), "is an Optuna study that minimizes its objective"),
    ("multi-objective", dict(directions=("maximize", "maximize")), "is a multi-objective Optuna study (2 objectives)"),
]


@pytest.mark.parametrize("command", ["report", "final", "ablation-path"])
@pytest.mark.parametrize("name,how,fragment", [pytest.param(*c, id=c[0]) for c in FOREIGN])
def test_a_study_not_written_by_study_run_is_one_line_and_nothing_is_written(name, how, fragment, command, tmp_path,
                                                                             capsys):
    db = tmp_path / "theirs.db"
    plain(db, name, **how)
    argv = [command, db, *(["-o", tmp_path / "r.html"] if command == "report" else ["--epochs", "1"])]
    code, err = main(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and f"study '{name}' in " in err and fragment in err, err
    assert optuna.get_all_study_names(f"sqlite:///{db}") == [name]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    assert len(study.trials) == 3 and study.user_attrs == {} and all(t.user_attrs == {} for t in study.trials)
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r_tables").exists()


def test_a_user_attribute_of_another_meaning_is_reported_and_final_says_why_it_cannot_retrain(tmp_path, capsys):
    db = tmp_path / "theirs.db"
    plain(db, "theirs", dataset="cifar10")  # a name of ours, with a meaning of theirs
    code, err = main(["report", db, "-o", tmp_path / "r.html", "--no-dashboard"], capsys)
    assert code == 0, err
    assert "study: dataset is str &quot;cifar10&quot;" in (tmp_path / "r.html").read_text()
    code, err = main(["final", db, "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "stored no configuration (config), so it cannot be retrained" in err
    assert optuna.get_all_study_names(f"sqlite:///{db}") == ["theirs"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")
def test_final_of_a_study_trained_on_cuda_run_without_one_is_one_line_and_writes_nothing(db, capsys):
    with contextlib.closing(sqlite3.connect(db)) as c, c:
        (config,) = c.execute("SELECT value_json FROM trial_user_attributes WHERE key = 'config'").fetchone()
        c.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'config'",
                  (json.dumps({**json.loads(config), "device": "cuda"}),))
    code, err = main(["final", db, "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "device=cuda was asked for but no CUDA device is visible" in err, err
    assert optuna.get_all_study_names(f"sqlite:///{db}") == [NAME]  # no -final study with a failed trial
