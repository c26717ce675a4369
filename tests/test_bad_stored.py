"""Stored studies made wrong on purpose, and report outputs that cannot be written (case families of the
catalogue in tests/test_bad_input.py): one line, exit 2, nothing written; or, where the rest can be
used, a report that says what it left out.
"""

import contextlib
import shutil
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest

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
