"""Fused arrays in a study (study/search/arrays.py): ablation cells and search trials trained K at a time as
one model, each an ordinary trial. Fusion is off on CPUs by default; these tests ask for it."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from reports import ablation as ablation_tables
from study.config import Config
from study.engine.array import FUSIBLE
from study.search import arrays, runner
from study.search import trial as trial_module
from study.spaces import space as spaces

ABLATION = """
model = "cnn"
dataset = "cifar10"
resolution = 32
epochs = 2
data_fraction = 0.05
seeds = 3
components = {"mixup": {"mixup_alpha": (0.2, 0.0)}}
"""


def write_space(tmp_path: Path, body: str, name: str = "fused") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text('"""A tiny space."""\n' + textwrap.dedent(body))
    return path


def test_an_ablation_runs_as_fused_arrays_of_ordinary_trials(data_dir, tmp_path):
    space = spaces.load(write_space(tmp_path, ABLATION))
    fused = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=f"sqlite:///{tmp_path}/fused.db", fuse=3))
    trials = fused.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    cells = sorted((t.user_attrs["variant"], t.user_attrs["seed"]) for t in trials)
    assert cells == [(v, s) for v in ("full", "no mixup") for s in (0, 1, 2)]
    # each variant's three seeds trained together, as one array of three
    arrays = {t.user_attrs["array"]: [] for t in trials}
    for t in trials:
        arrays[t.user_attrs["array"]].append(t)
        assert t.user_attrs["array_size"] == 3 and len(t.intermediate_values) == 2
    assert sorted(len(members) for members in arrays.values()) == [3, 3]
    assert fused.user_attrs["array_size"] == 3

    alone = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=f"sqlite:///{tmp_path}/alone.db", fuse=1))
    assert all("array" not in t.user_attrs for t in alone.get_trials())
    got, want = ablation_tables.variants(fused), ablation_tables.variants(alone)
    assert list(got.data.columns) == list(want.data.columns) and list(got.data["variant"]) == list(want.data["variant"])


def test_a_search_array_shares_its_non_fusible_settings(data_dir, tmp_path):
    body = """
    model = "naivenet"
    dataset = "cifar10"
    resolution = 32
    epochs = 1
    data_fraction = 0.05
    pruner = "none"


    def suggest(trial):
        return {
            "lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True),
            "width": trial.suggest_categorical("width", [0.5, 1.0]),
            "depth": trial.suggest_int("depth", 0, 2),
        }
    """
    space = spaces.load(write_space(tmp_path, body, "search"))
    study = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=f"sqlite:///{tmp_path}/s.db", trials=5, fuse=2))
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5
    by_array: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in trials:
        by_array.setdefault(t.user_attrs["array"], []).append(t)
    assert max(len(members) for members in by_array.values()) == 2
    for members in by_array.values():
        shared = [{p: v for p, v in t.params.items() if p not in FUSIBLE} for t in members]
        assert all(s == shared[0] for s in shared)
    assert len({t.params["lr"] for t in trials}) == 5  # the sampler still proposed every lr


def test_the_array_size_follows_the_device_the_model_and_the_request():
    cnn = Config(model="cnn", dataset="cifar10", resolution=32, device="cpu")
    assert arrays.array_size(cnn, None)[0] == 1  # a fused array loses on CPUs
    assert arrays.array_size(cnn, 4) == (4, "asked for")
    k, why = arrays.array_size(cnn.replace(model="efficientnet_b0"), 4)
    assert k == 1 and "cannot fuse" in why  # StochasticDepth drops the same samples in every member


@pytest.mark.parametrize("resolution,expected", [(32, arrays.ARRAY_SIZE), (128, 1)])
def test_on_a_gpu_fusion_is_on_where_it_was_measured_to_pay(monkeypatch, resolution, expected):
    import torch

    monkeypatch.setattr(arrays, "resolve_device", lambda name: torch.device("cuda"))
    assert arrays.array_size(Config(model="naivenet", dataset="cifar10", resolution=resolution), None)[0] == expected


@pytest.mark.parametrize("fuse", [2, 1])
def test_an_interrupted_ablation_resumes_every_cell_from_its_checkpoint(data_dir, tmp_path, monkeypatch, fuse):
    space = spaces.load(write_space(tmp_path, ABLATION.replace("seeds = 3", "seeds = 2")))
    url = f"sqlite:///{tmp_path}/resume.db"
    module, name = trial_module, "train_array"  # one trial path, whatever K
    train = getattr(module, name)

    def interrupted_after_one_epoch(*args, callbacks, **kwargs):
        def stop(metrics):
            raise KeyboardInterrupt

        return train(*args, callbacks=dataclasses.replace(callbacks, epoch=stop), **kwargs)

    monkeypatch.setattr(module, name, interrupted_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        runner.run(space, {"data_dir": data_dir}, runner.Options(storage=url, fuse=fuse))
    monkeypatch.undo()
    study = runner.run(space, {"data_dir": data_dir}, runner.Options(storage=url, fuse=fuse))
    trials = study.get_trials()
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == fuse and all(t.user_attrs["fail_reason"] == "interrupted" for t in interrupted)
    retried = [t for t in trials if t.user_attrs.get("retry_of") is not None]
    assert sorted(t.user_attrs["retry_of"] for t in retried) == [t.number for t in interrupted]
    assert all(t.state == TrialState.COMPLETE and t.user_attrs["resumed_from_epoch"] == 1 for t in retried)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4


def test_on_a_gpu_the_array_is_as_large_as_its_memory_allows(monkeypatch):
    import torch

    config = Config(model="naivenet", dataset="cifar10", resolution=32, device="cuda")
    monkeypatch.setattr(arrays, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 80 * 2**30))
    monkeypatch.setattr(arrays, "member_bytes", lambda config, device: 2**30)  # 1 GiB a member
    k, why = arrays.array_size(config, None)
    assert k == 5 and "5 members of 1024 MiB" in why  # half of the 10 GiB free
    monkeypatch.setattr(arrays, "member_bytes", lambda config, device: 2**27)
    assert arrays.array_size(config, None)[0] == arrays.ARRAY_SIZE  # never above the measured knee
