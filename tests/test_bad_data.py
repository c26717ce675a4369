"""Damaged data files (a case family of the catalogue in tests/test_bad_input.py): every array of the
official CIFAR layout is checked for its container, dtype, shape and range, and a damaged one is one
line naming the file and what is wrong, exit 2.

Each case is a copy of the real subset in ../shared/data with one file replaced by a damaged version
of itself (its real arrays, one of them spoiled).
"""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_bad_input import SPACE32, main

BATCH = "cifar-10-batches-py/data_batch_1"
META = "cifar-10-batches-py/batches.meta"


def spoil(entry: dict, key: bytes, value) -> dict:
    return {**entry, key: value}


# (id, file, how the file's dict is changed, the message fragment)
CASES = [
    ("images-a-list", BATCH, lambda d: spoil(d, b"data", d[b"data"][:3].tolist()),
     "its images are a list, not a numpy array"),
    ("images-float", BATCH, lambda d: spoil(d, b"data", d[b"data"].astype(np.float32)),
     "its images are float32, not uint8 pixels"),
    ("images-object-array", BATCH, lambda d: spoil(d, b"data", d[b"data"].astype(object)),
     "its images are object, not uint8 pixels"),
    ("images-wrong-shape", BATCH, lambda d: spoil(d, b"data", d[b"data"].reshape(-1, 3, 32, 32)),
     "its images have shape (1102, 3, 32, 32), not (N, 3072)"),
    ("zero-images", BATCH, lambda d: {**d, b"data": d[b"data"][:0], b"labels": []}, "holds 0 images"),
    ("labels-a-string", BATCH, lambda d: spoil(d, b"labels", "6 9 9 4 1"),
     "its labels are a str, not a list of class numbers"),
    ("labels-floats", BATCH, lambda d: spoil(d, b"labels", [float(v) for v in d[b"labels"]]),
     "its labels hold a float ('6.0'), not class numbers"),
    ("labels-float-array", BATCH, lambda d: spoil(d, b"labels", np.asarray(d[b"labels"], np.float64)),
     "its labels are an array of float64, not class numbers"),
    ("labels-object-array", BATCH, lambda d: spoil(d, b"labels", np.asarray(d[b"labels"], object)),
     "its labels are an array of object, not class numbers"),
    ("label-huge", BATCH, lambda d: spoil(d, b"labels", [10**30] + d[b"labels"][1:]),
     "holds a label of 1000000000000000000000000000000: labels are class numbers from 0 to 9"),
    ("label-10-of-cifar10", BATCH, lambda d: spoil(d, b"labels", [10] + d[b"labels"][1:]),
     "holds a label of 10: labels are class numbers from 0 to 9"),
    ("labels-too-few", BATCH, lambda d: spoil(d, b"labels", d[b"labels"][:-1]),
     "holds 1102 images but labels of shape (1101,)"),
    ("meta-names-a-string", META, lambda d: spoil(d, b"label_names", "airplane automobile"),
     "label_names is a str, not a list of class names"),
    ("meta-names-numbers", META, lambda d: spoil(d, b"label_names", list(range(10))),
     "label_names is a list, not a list of class names"),
    ("meta-5-million-classes", META, lambda d: spoil(d, b"label_names", [b"c"] * 5_000_000),
     "names 5000000 classes, but the data set has exactly 10"),
    ("meta-11-classes", META, lambda d: spoil(d, b"label_names", d[b"label_names"] + [b"eleventh"]),
     "names 11 classes, but the data set has exactly 10"),
    ("no-labels", BATCH, lambda d: {k: v for k, v in d.items() if k != b"labels"}, "(no labels)"),
]


@pytest.mark.parametrize("file,change,fragment", [pytest.param(f, c, m, id=i) for i, f, c, m in CASES])
def test_a_damaged_data_file_is_one_line_naming_it(file, change, fragment, data_dir, tmp_path, capsys):
    shutil.copytree(Path(data_dir) / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    path = tmp_path / file
    path.write_bytes(pickle.dumps(change(pickle.loads(path.read_bytes(), encoding="bytes"))))
    code, err = main(["train", SPACE32, "--data-dir", tmp_path, "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {path}") and fragment in err, err


def test_cifar100_meta_must_name_exactly_100_classes(data_dir, tmp_path, capsys):
    shutil.copytree(Path(data_dir) / "cifar-100-python", tmp_path / "cifar-100-python")
    meta = tmp_path / "cifar-100-python" / "meta"
    entry = pickle.loads(meta.read_bytes(), encoding="bytes")
    meta.write_bytes(pickle.dumps({**entry, b"fine_label_names": entry[b"fine_label_names"][:99]}))
    code, err = main(["train", SPACE32, "--data-dir", tmp_path, "--set", "dataset=cifar100", "--epochs", "1"], capsys)
    assert code == 2 and f"error: {meta} names 99 classes, but the data set has exactly 100" in err, err
