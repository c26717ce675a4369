"""The catalogue of bad input: each is one line `error: ...`, exit 2, and the stored trials untouched.

Run in-process through `study.cli.main` (the same code path as the command, without a Python start
per case); one stored study is the witness that nothing stored changes. Cases that need a damaged
data set or a stored study made wrong on purpose are beside it: tests/test_bad_data.py (data files)
and tests/test_bad_stored.py (studies not written by `study run`, malformed attributes, report output).
"""

import os
import pickle
import socket
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from processes import in_process as main

from study import cli

ROOT = Path(__file__).resolve().parents[1]
SPACE32 = str(ROOT / "spaces" / "naivenet32_cifar10.py")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present here")




@pytest.fixture(scope="module")
def stored(data_dir, tmp_path_factory):
    """A folder holding one small stored study (one trial)."""
    folder = tmp_path_factory.mktemp("stored")
    db = folder / "study.db"
    assert main(["run", SPACE32, "--data-dir", data_dir, "--trials", "1", "--epochs", "1", "--set",
                 "data_fraction=0.05", "--storage", f"sqlite:///{db}"])[0] == 0
    return folder


def snapshot(db: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", skip_compatibility_check=True)
    out = [(t.number, t.state, t.params, t.value) for t in optuna.load_study(
        study_name="naivenet32_cifar10", storage=storage).get_trials()]
    storage.engine.dispose()
    return out


def fake_cifar(folder: Path, labels=None, images: int = 40) -> str:
    """A tiny CIFAR-10 folder in the official layout, with the given training labels."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    labels = np.arange(images) % 10 if labels is None else labels
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = {b"data": np.zeros((images, 3072), np.uint8), b"labels": labels}
        (batches / name).write_bytes(pickle.dumps(data))
    (batches / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    return str(folder)


def space_file(folder: Path, suggest_body: str) -> str:
    path = folder / "bad.py"
    path.write_text('"""bad: a space with a broken suggest."""\nmodel = "naivenet"\ndataset = "cifar10"\n'
                    "resolution = 32\n" + textwrap.dedent(suggest_body))
    return str(path)


def sqlite_with(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as db:
        for s in statements:
            db.execute(s)
    return path


# (id, arguments after `run`/`train`/..., with {db} {data} {tmp} {space} filled in; the message fragment)
RUN = ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{db}", "--epochs", "1"]
CASES = [
    ("lr-infinite", [*RUN, "--set", "lr=1e999"], "lr=inf is invalid: it must be a finite number"),
    ("width-infinite", [*RUN, "--set", "width=1e999"], "width=inf is invalid"),
    ("momentum-negative", [*RUN, "--set", "momentum=-1"], "momentum=-1.0 is invalid"),
    ("num-classes-too-few", [*RUN, "--set", "num_classes=3"], "num_classes=3 is invalid"),
    ("seed-70-digits", [*RUN, "--seed", "1" * 70], "seed=1111"),
    ("seed-negative", [*RUN, "--seed", "-1"], "seed=-1 is invalid"),
    ("val-fraction-all", [*RUN, "--set", "dataset=cifar100", "--set", "val_fraction=0.999"], "leave 0 training images"),
    ("mixup-negative", [*RUN, "--set", "mixup_alpha=-1"], "mixup_alpha=-1.0 is invalid"),
    ("cutout-negative", [*RUN, "--set", "cutout=-5"], "cutout=-5.0 is invalid"),
    ("epochs-absurd", [*RUN, "--epochs", "1000000000"], "epochs=1000000000 is invalid"),
    ("timeout-negative", [*RUN, "--timeout", "-1"], "--timeout -1.0 is invalid"),
    ("trials-zero", [*RUN, "--trials", "0"], "--trials 0 is invalid"),
    ("fuse-zero", [*RUN, "--fuse", "0"], "--fuse 0 is invalid"),
    ("space-fuse-zero", ["run", "{tmp}/fuse/bad.py", "--data-dir", "{data}", "--storage", "sqlite:///{db}"],
     "fuse=0 is invalid"),
    ("storage-memory", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///:memory:"], "in-memory database"),
    ("storage-read-only-query", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{db}?mode=ro"],
     "opens the database read-only"),
    ("storage-missing-folder", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{tmp}/no/dir/x.db"],
     "does not exist; create it first"),
    ("storage-not-sqlite", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{tmp}/notes.txt"],
     "is not an SQLite database"),
    ("storage-other-tables", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{tmp}/other.db"],
     "not an Optuna storage (its tables: things)"),
    ("storage-own-studies-table", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{tmp}/studies.db"],
     "not an Optuna storage (its tables: studies)"),
    ("device-cuda-absent", [*RUN, "--device", "cuda"], "no CUDA device is visible"),
    ("workers-on-absent-gpu", [*RUN, "--workers", "2", "--devices", "cuda:0"], "no CUDA device is visible"),
    ("suggest-raises", ["run", "{tmp}/raises/bad.py", "--data-dir", "{data}", "--storage", "sqlite:///{db}"],
     "suggest() failed on the defaults (ZeroDivisionError"),
    ("suggest-returns-list", ["run", "{tmp}/returns/bad.py", "--data-dir", "{data}", "--storage", "sqlite:///{db}"],
     "must return a dict of settings, not list"),
    ("labels-negative", ["train", "{space}", "--data-dir", "{tmp}/negative"], "holds a label of -1"),
    ("labels-2d", ["train", "{space}", "--data-dir", "{tmp}/twod"], "labels of shape (40, 2)"),
    ("data-file-40-gb", ["train", "{space}", "--data-dir", "{tmp}/huge"], "is 40.0 GiB, far more than any CIFAR file"),
    ("data-error-new-storage", ["run", "{space}", "--data-dir", "{tmp}/negative", "--storage", "sqlite:///{tmp}/new.db"],
     "holds a label of -1"),
    ("dashboard-port-range", ["dashboard", "{db}", "--port", "99999"], "between 1 and 65535"),
    ("dashboard-port-taken", ["dashboard", "{db}", "--port", "{port}"], "cannot listen on 127.0.0.1"),
    ("report-unwritable-output", ["report", "{db}", "-o", "{tmp}/notes.txt/report.html"], "cannot create"),
    ("set-nested-5000-deep", [*RUN, "--set", "lr=" + "-" * 5000 + "1"], "cannot be read as a Python literal"),
    ("data-dir-is-a-file", ["train", "{space}", "--data-dir", "{tmp}/notes.txt"], "is a file, not a folder"),
    ("storage-dev-null", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:////dev/null"],
     "/dev/null is not a regular file"),
    ("storage-a-folder", ["run", "{space}", "--data-dir", "{data}", "--storage", "sqlite:///{tmp}/raises"],
     "is not a regular file (a folder)"),
    ("width-10000", ["train", "{space}", "--data-dir", "{data}", "--set", "width=10000.0"],
     "width=10000.0 is invalid: it must be <= 16.0"),
    ("resolution-320000", ["train", "{space}", "--data-dir", "{data}", "--set", "resolution=320000"],
     "resolution=320000 is invalid: it must be <= 131072"),
    ("depth-1000000", [*RUN, "--set", "depth=1000000"], "depth=1000000 is invalid: it must be <= 64"),
    ("study-name-513-characters", [*RUN, "--study-name", "x" * 513], "is 513 characters: a study name holds at most 512"),
    ("report-min-effect-zero", ["report", "{db}", "-o", "{tmp}/r.html", "--min-effect", "0"],
     "--min-effect 0: give the smallest difference worth detecting in percentage points"),
]


@pytest.fixture
def inputs(tmp_path):
    """The files the catalogue points at: broken spaces, damaged data folders, foreign databases."""
    (tmp_path / "notes.txt").write_text("not a database\n")
    sqlite_with(tmp_path / "other.db", "CREATE TABLE things (x)")
    sqlite_with(tmp_path / "studies.db", "CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT)")
    space_file((tmp_path / "raises").mkdir() or tmp_path / "raises", "def suggest(trial):\n    return 1 / 0\n")
    space_file((tmp_path / "fuse").mkdir() or tmp_path / "fuse", "fuse = 0\n")
    space_file((tmp_path / "returns").mkdir() or tmp_path / "returns",
               "def suggest(trial):\n    return [trial.suggest_float('lr', 1e-3, 1e-1)]\n")
    fake_cifar(tmp_path / "negative", labels=np.array([-1] + [i % 10 for i in range(39)]))
    fake_cifar(tmp_path / "twod", labels=np.zeros((40, 2), np.int64))
    fake_cifar(tmp_path / "huge")
    with open(tmp_path / "huge" / "cifar-10-batches-py" / "data_batch_1", "r+b") as f:
        f.truncate(40 * 2**30)  # sparse: no disk used
    return tmp_path


@pytest.mark.parametrize("argv,fragment", [
    pytest.param(argv, fragment, id=name, marks=[NO_CUDA] if "cuda" in name or "gpu" in name else [])
    for name, argv, fragment in CASES
])
def test_bad_input_is_one_line_exit_2_and_nothing_stored_changes(argv, fragment, stored, inputs, data_dir, capsys):
    db = stored / "study.db"
    before = snapshot(db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        values = dict(db=db, data=data_dir, tmp=inputs, space=SPACE32, port=taken.getsockname()[1])
        code, err = main([a.format(**values) for a in argv], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
    assert snapshot(db) == before
    assert not (inputs / "no").exists() and not (inputs / "new.db").exists()  # nothing left behind
    assert (inputs / "other.db").stat().st_size == 8192  # no Optuna tables added, no WAL switch
    assert not Path("/dev/null-journal").exists()


def test_spaces_lists_a_broken_suggest_as_an_error_row(inputs, monkeypatch, capsys):
    (inputs / "spaces").mkdir()
    for kind in ("raises", "returns"):
        (inputs / "spaces" / f"{kind}.py").write_text((inputs / kind / "bad.py").read_text())
    monkeypatch.chdir(inputs)
    assert cli.main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert out.count("│ error ") == 2 and "Traceback" not in out  # a row each, the table still printed


@pytest.fixture
def read_only(stored, tmp_path):
    """The stored study's folder again, on a read-only bind mount (needs root to mount)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    r = subprocess.run(["mount", "--bind", "-o", "ro", str(stored), str(mount)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot bind-mount a read-only folder ({r.stderr.strip() or 'mount failed'}): needs root")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_run_on_a_read_only_database_is_one_line(read_only, data_dir, capsys):
    code, err = main(["run", SPACE32, "--data-dir", data_dir, "--storage", f"sqlite:///{read_only}/study.db"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is read-only: run stores trials there" in err, err


def test_report_reads_a_database_on_a_read_only_mount(read_only, tmp_path, capsys):
    code, err = main(["report", read_only / "study.db", "-o", tmp_path / "out" / "report.html"], capsys)
    assert code == 0, err
    assert "naivenet32_cifar10" in (tmp_path / "out" / "report.html").read_text()


def test_report_reads_a_read_only_url(stored, tmp_path, capsys):
    code, err = main(["report", f"sqlite:///{stored}/study.db?mode=ro", "-o", tmp_path / "r.html", "--no-dashboard"], capsys)
    assert code == 0, err
    assert "naivenet32_cifar10" in (tmp_path / "r.html").read_text()


SUGGEST_FAILS_LATER = """
def suggest(trial):
    if trial.number >= 1:  # the defaults (trial 0) pass the load-time check
        raise ZeroDivisionError("division by zero")
    return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}
"""


def test_a_suggest_failing_at_a_later_trial_is_one_line_and_a_fail_with_its_reason(data_dir, tmp_path, capsys):
    space = space_file(tmp_path, SUGGEST_FAILS_LATER)
    db = tmp_path / "s.db"
    code, err = main(["run", space, "--data-dir", data_dir, "--storage", f"sqlite:///{db}", "--trials", "3",
                      "--epochs", "1", "--set", "data_fraction=0.05"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: trial 1: the space's suggest() failed (ZeroDivisionError: division by zero)"), err
    trials = optuna.load_study(study_name="bad", storage=f"sqlite:///{db}").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"] == "suggest() failed (ZeroDivisionError: division by zero)"


def test_ctrl_c_during_set_up_does_not_claim_a_running_trial(data_dir, tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(optuna_dashboard, "save_note", interrupted)  # Ctrl-C while the new study is set up
    code, err = main([*[a.format(space=SPACE32, data=data_dir, db=tmp_path / "s.db") for a in RUN]], capsys)
    assert code == 130 and err == "interrupted: run the same command to resume\n", err


def test_ctrl_c_during_a_trial_names_the_trial_marked_interrupted(data_dir, tmp_path, monkeypatch, capsys):
    from study.search import trial

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trial, "train_array", interrupted)  # Ctrl-C while trial 0 trains
    code, err = main([*[a.format(space=SPACE32, data=data_dir, db=tmp_path / "s.db") for a in RUN]], capsys)
    assert code == 130 and err == "interrupted: trial 0 is marked interrupted; run the same command to resume\n", err


def test_a_huge_space_docstring_is_stored_bounded(data_dir, tmp_path, capsys):
    from study.store import record

    space = tmp_path / "big.py"
    space.write_text('"""' + "A long description. " * 150_000 + '"""\nmodel = "naivenet"\ndataset = "cifar10"\n'
                     "resolution = 32\ndef suggest(trial):\n    return {}\n")  # 3 MB of docstring
    db = tmp_path / "s.db"
    code, err = main(["run", space, "--data-dir", data_dir, "--storage", f"sqlite:///{db}", "--trials", "1",
                      "--epochs", "1", "--set", "data_fraction=0.05"], capsys)
    assert code == 0, err
    stored = record.study_info(optuna.load_study(study_name="big", storage=f"sqlite:///{db}")).description
    assert len(stored) < record.MAX_DESCRIPTION + 100 and stored.endswith("more characters in the space file]")
    assert db.stat().st_size < 1_000_000  # the description and the dashboard note, both bounded


@NO_CUDA
def test_train_out_of_memory_is_one_line(data_dir, tmp_path):
    """A configuration within the bounds that needs more memory than there is: the process is held to
    8 GiB of address space (torch's import maps about 4.5), so the allocation fails at once."""
    import resource
    import sys

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    r = subprocess.run([sys.executable, "-m", "study", "train", SPACE32, "--data-dir", data_dir, "--epochs", "1",
                        "--set", "resolution=512", "--set", "width=16.0", "--set", "data_fraction=0.05"],
                       capture_output=True, text=True, preexec_fn=limited, cwd=ROOT, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stderr.startswith("error: out of memory (") and r.stderr.count("\n") == 1, r.stderr
    assert "lower batch_size, width or resolution" in r.stderr


@pytest.mark.skipif(not os.environ.get("STUDY_TEST_POSTGRES_URL"),
                    reason="no PostgreSQL server: .ci/run starts one and sets STUDY_TEST_POSTGRES_URL")
def test_a_study_name_over_512_characters_on_postgresql_says_the_limit(data_dir, capsys):
    url = os.environ["STUDY_TEST_POSTGRES_URL"]
    code, err = main(["run", SPACE32, "--data-dir", data_dir, "--storage", url, "--study-name", "n" * 600,
                      "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and "is 600 characters: a study name holds at most 512" in err, err
    assert "free disk space" not in err
