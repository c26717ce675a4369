import pickle
import shutil
from pathlib import Path

import pytest
import torch

from study.engine import data
from study.errors import UserError


@pytest.fixture(autouse=True)
def fresh_cache():
    data.load.cache_clear()
    yield
    data.load.cache_clear()


def test_reads_the_real_subsets(data_dir):
    c10 = data.load("cifar10", data_dir)
    assert c10.train_images.shape == (5438, 3, 32, 32) and c10.train_images.dtype == torch.uint8
    assert len(c10.test_labels) == 1017
    assert c10.train_labels[:5].tolist() == [6, 9, 9, 4, 1]  # frog, truck, truck, deer, automobile
    assert c10.classes[6] == "frog" and c10.num_classes == 10
    c100 = data.load("cifar100", data_dir)
    assert (len(c100.train_labels), len(c100.test_labels), c100.num_classes) == (1117, 916, 100)


def _copy_cifar10(data_dir: str, tmp_path: Path) -> Path:
    shutil.copytree(Path(data_dir) / "cifar-10-batches-py", tmp_path / "cifar-10-batches-py")
    return tmp_path / "cifar-10-batches-py"


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(data_dir, tmp_path):
    folder = _copy_cifar10(data_dir, tmp_path)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _RunsCode(str(marker)), b"labels": [1]}))
    with pytest.raises(UserError, match="data_batch_3"):
        data.load("cifar10", str(tmp_path))
    assert not marker.exists()


def test_a_truncated_file_is_a_clear_error_naming_it(data_dir, tmp_path):
    folder = _copy_cifar10(data_dir, tmp_path)
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="test_batch"):
        data.load("cifar10", str(tmp_path))


def test_missing_data_offline_names_the_fixes(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(UserError, match=r"--data-dir.*STUDY_DATA_DIR"):
        data.load("cifar100", str(tmp_path))


def test_data_dir_falls_back_to_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, data_dir)
    assert data.resolve_root(None) == Path(data_dir)
    assert data.resolve_root("/elsewhere") == Path("/elsewhere")


def test_split_is_stratified_disjoint_and_seeded(data_dir):
    labels = data.load("cifar10", data_dir).train_labels
    s = data.split(labels, 0.1, seed=0)
    assert set(s.train.tolist()).isdisjoint(s.val.tolist())
    assert len(s.train) + len(s.val) == len(labels)
    per_class = torch.bincount(labels[s.val], minlength=10).float()
    expected = torch.bincount(labels, minlength=10).float() * 0.1
    assert (per_class - expected).abs().max() <= 1
    assert torch.equal(data.split(labels, 0.1, seed=0).val, s.val)
    assert not torch.equal(data.split(labels, 0.1, seed=1).val, s.val)


def test_data_fraction_subsamples_training_but_keeps_validation(data_dir):
    labels = data.load("cifar10", data_dir).train_labels
    full, tenth = data.split(labels, 0.1, 1.0), data.split(labels, 0.1, 0.1)
    assert torch.equal(full.val, tenth.val)
    assert set(tenth.train.tolist()) <= set(full.train.tolist())
    assert abs(len(tenth.train) - 0.1 * len(full.train)) <= 10
    assert torch.bincount(labels[tenth.train], minlength=10).min() >= 45
