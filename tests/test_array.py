"""Fused trial arrays (issue 15): each member trains as it would alone, and stops alone.

On the shared CIFAR subset, CPU, fp32, no augmentation: 3 epochs of 3 steps of 128 images, 272
validation images. A member's data order comes from its own seed, so member k sees the batches its
separate train() sees. Fused and alone use different convolution kernels (a grouped one against a
dense one) whose float32 sums round differently (the first conv's weight gradient by about 5e-6),
and training amplifies that, so "matches" is within a tolerance; members never mix, so anything
that leaves a member's own computation alone (another member stopped, or NaN) changes it not at all.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import NoHostSync

from study.config import Config
from study.engine import models
from study.engine.array import train_array
from study.engine.models.fused import fuse, member_state
from study.engine.optim import optimizer_and_schedule
from study.engine.results import Callbacks
from study.engine.train import train
from study.errors import UserError
from study.search.trial import TrialReports

# Members 0 and 1 share a seed (same initialisation and data order) and differ in lr, weight decay
# and label smoothing: the tolerances below must tell them apart. The staged CNN with BatchNorm has
# no dropout. (Larger lrs train this CNN chaotically enough that float noise outgrows any tolerance.)
MEMBERS = [{"seed": 0, "lr": 0.002, "weight_decay": 1e-4},
           {"seed": 0, "lr": 0.001, "weight_decay": 5e-3, "label_smoothing": 0.0},
           {"seed": 1, "lr": 0.0007, "weight_decay": 0.0}]


def configs(data_dir: str, changes: dict[int, dict] | None = None) -> list[Config]:
    """The array's members; `changes` maps a member's index to settings of its own."""
    changes = changes or {}
    base = Config(model="cnn", batchnorm=True, dataset="cifar10", resolution=32, data_dir=data_dir, data_fraction=0.1,
                  val_fraction=0.05, batch_size=128, epochs=3, precision="fp32", device="cpu", aug_strength=0.0)
    return [base.replace(**{**member, **changes.get(k, {})}) for k, member in enumerate(MEMBERS)]


class Trial:
    """The part of optuna.Trial that training uses; its pruner stops it after epoch `prune_after`."""

    def __init__(self, prune_after: int | None = None) -> None:
        self.prune_after, self.reports, self.user_attrs = prune_after, [], {}

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_after is not None and self.reports[-1][0] >= self.prune_after

    def set_user_attr(self, key: str, value) -> None:
        self.user_attrs[key] = value


def _states_after_each_epoch(checkpoint: Path, states: list):
    """on_epoch: the whole array's model as the checkpoint written just before holds it."""
    def on_epoch(metrics):
        states.append(torch.load(checkpoint, weights_only=True)["model"])
    return on_epoch


def _member(model_state: dict, k: int) -> dict[str, torch.Tensor]:
    """Member k's state, in the unfused model's names, from a fused array's state dict."""
    fused = fuse([models.build(Config(model="cnn", batchnorm=True, dataset="cifar10", resolution=32), 10)
                  for _ in MEMBERS])
    fused.load_state_dict(model_state)
    return member_state(fused, k)


@pytest.fixture(scope="module")
def baseline(data_dir, tmp_path_factory):
    """The array trained to the end, its model after every epoch."""
    checkpoint = tmp_path_factory.mktemp("baseline") / "array.pt"
    states: list = []
    metrics = train_array(configs(data_dir), Callbacks(epoch=_states_after_each_epoch(checkpoint, states)), checkpoint=checkpoint)
    return metrics, states


def _initial(config: Config) -> dict[str, torch.Tensor]:
    """The model a run of `config` starts from (built right after seeding, as training builds it)."""
    torch.manual_seed(config.seed)
    return models.build(config, 10).state_dict()


def _off(got: torch.Tensor, want: torch.Tensor, start: torch.Tensor) -> float:
    """How far `got` is from `want`, in units of the tolerance: 5% of what training moved `want` from
    `start`, plus 0.1% of `want` (for tensors training barely moves, e.g. a conv bias before BatchNorm)."""
    return ((got - want).norm() / (0.05 * (want - start).norm() + 1e-3 * want.norm())).item()


def test_each_member_matches_its_separate_run(data_dir, baseline, tmp_path):
    fused, states = baseline
    final = [_member(states[-1], k) for k in range(len(MEMBERS))]
    alone_states = []
    for k, config in enumerate(configs(data_dir)):
        checkpoint = tmp_path / f"alone_{k}.pt"  # the run's final model, as it saves it
        alone = train(config, checkpoint=checkpoint)
        alone_states.append(torch.load(checkpoint, weights_only=True)["model"])
        assert fused[k].metrics.array_size == 3 and fused[k].status == "complete"
        assert fused[k].metrics.config == alone.config and fused[k].metrics.epochs_trained == 3
        for curve in ("train_loss_curve", "val_loss_curve", "train_accuracy_curve", "val_accuracy_curve"):
            got, want = getattr(fused[k].metrics, curve), getattr(alone, curve)
            torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=2e-3, atol=2e-3,
                                       msg=f"member {k}: {curve}")
        start = _initial(config)
        for name, tensor in alone_states[k].items():  # weights and BatchNorm running statistics
            if tensor.is_floating_point():
                assert _off(final[k][name], tensor, start[name]) < 1, f"member {k}: {name}"
    # the tolerance sees another lr, weight decay and label smoothing: members 0 and 1 start alike
    start = _initial(configs(data_dir)[0])
    for name, tensor in alone_states[0].items():
        if tensor.ndim > 1:  # every conv and linear weight
            assert _off(final[1][name], tensor, start[name]) > 2, name


def test_a_pruned_member_freezes_and_the_others_go_on_unchanged(data_dir, baseline, tmp_path):
    unstopped, baseline_states = baseline
    trials = [Trial(), Trial(prune_after=1), Trial()]
    checkpoint = tmp_path / "array.pt"
    states: list = []
    callbacks = TrialReports(trials).callbacks()
    metrics = train_array(configs(data_dir), replace(callbacks, epoch=_states_after_each_epoch(checkpoint, states)),
                          checkpoint=checkpoint)
    assert [m.status for m in metrics] == ["complete", "pruned", "complete"]
    assert "pruned after epoch 1" in metrics[1].reason
    assert len(metrics[1].metrics.val_accuracy_curve) == 1 and [len(t.reports) for t in trials] == [3, 1, 3]
    assert trials[1].user_attrs["array_size"] == 3 and trials[0].user_attrs["epochs_trained"] == 3
    frozen = [_member(s, 1) for s in states]
    for name, tensor in frozen[0].items():
        if name.endswith(("weight", "bias")):  # parameters; BatchNorm statistics still follow its batches
            assert all(torch.equal(later[name], tensor) for later in frozen[1:]), name
    moved = _member(baseline_states[-1], 1)
    assert not torch.equal(moved["features.0.body.0.weight"], frozen[0]["features.0.body.0.weight"])
    for k in (0, 2):
        for curve in ("train_loss_curve", "val_loss_curve"):
            # bit for bit: members never mix
            assert getattr(metrics[k].metrics, curve) == getattr(unstopped[k].metrics, curve), (k, curve)
        for name, tensor in _member(baseline_states[-1], k).items():
            assert torch.equal(_member(states[-1], k)[name], tensor), (k, name)


def test_a_diverging_member_fails_alone(data_dir, baseline):
    unstopped, _ = baseline
    metrics = train_array(configs(data_dir, {1: {"lr": 1e6}}))
    assert metrics[1].status == "diverged" and "lower lr" in metrics[1].reason
    curve = metrics[1].metrics.train_loss_curve  # its epochs before the NaN one
    assert len(curve) == metrics[1].metrics.epochs_trained < 3 and all(math.isfinite(v) for v in curve)
    for k in (0, 2):
        assert metrics[k].status == "complete" and all(math.isfinite(v) for v in metrics[k].metrics.train_loss_curve)
        assert metrics[k].metrics.train_loss_curve == unstopped[k].metrics.train_loss_curve


def test_a_killed_array_resumes_every_member(data_dir, baseline, tmp_path):
    unstopped, _ = baseline
    checkpoint = tmp_path / "array.pt"

    class Killed(Exception):
        pass

    def kill_after_two(metrics):
        if metrics[0].epochs_trained == 2:
            raise Killed

    with pytest.raises(Killed):
        pruning = TrialReports([Trial(), Trial(prune_after=1), Trial()]).callbacks()
        train_array(configs(data_dir), replace(pruning, epoch=kill_after_two), checkpoint=checkpoint)
    resumed = train_array(configs(data_dir), TrialReports([Trial(), Trial(), Trial()]).callbacks(), checkpoint=checkpoint)
    assert [m.metrics.resumed_from_epoch for m in resumed] == [2, 2, 2]
    assert [m.status for m in resumed] == ["complete", "pruned", "complete"]  # still pruned after the restart
    for k in (0, 2):
        assert resumed[k].metrics.train_loss_curve == unstopped[k].metrics.train_loss_curve
        assert resumed[k].metrics.val_loss_curve == unstopped[k].metrics.val_loss_curve


def test_members_may_differ_only_in_fusible_settings(tmp_path):
    same = Config(model="cnn", dataset="cifar10", resolution=32, data_dir=str(tmp_path))
    with pytest.raises(UserError, match=r"differ in width.*resolution|differ in resolution.*width") as err:
        train_array([same, same.replace(width=2.0, resolution=64, lr=0.1)])
    assert "lr" not in str(err.value).split("members may")[0]
    with pytest.raises(UserError, match="dropout"):
        train_array([same, same.replace(dropout=0.2)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fused_step_is_one_cuda_graph_without_host_sync(data_dir):
    # NaiveNet with augmentation on, as a search would run it: 5 steps of 3 x 128 images per epoch
    base = Config(dataset="cifar10", resolution=32, data_dir=data_dir, device="cuda", data_fraction=0.14,
                  batch_size=128, epochs=2)
    watch = NoHostSync()
    try:
        metrics = train_array([base.replace(seed=k, lr=0.01 * (k + 1)) for k in range(3)],
                              Callbacks(step=watch.on_step, epoch=watch.on_epoch))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(m.metrics.step_mode == "graph" for m in metrics), metrics[0].metrics.step_mode_reason
    assert watch.steps_seen.count(1) == 5 and all(m.status == "complete" for m in metrics)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_each_member_gets_its_own_schedule_momentum_and_weight_decay(schedule):
    """The array's optimizer against torch.optim.SGD on each member alone, at its single run's schedule."""
    steps = 6
    members = [Config(schedule=schedule, lr=lr, momentum=m, weight_decay=wd)
               for lr, m, wd in ((0.05, 0.9, 1e-4), (0.01, 0.0, 5e-3), (0.02, 0.5, 0.0))]
    alone = []
    for k, _ in enumerate(members):
        torch.manual_seed(k)
        alone.append(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(16, 2)))
    fused = fuse(alone)
    optimizer, _ = optimizer_and_schedule(members, fused, steps, torch.device("cpu"))
    references = []
    for model, config in zip(alone, members):
        sgd = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        _, single = optimizer_and_schedule([config], model, steps, torch.device("cpu"))
        references.append((sgd, single))
    x = torch.randn(len(members), 8, 3, 4, 4)
    for _ in range(steps):
        fused.zero_grad()
        fused(x).square().mean(dim=(1, 2)).sum().backward()
        optimizer.step()
        for k, (model, (sgd, single)) in enumerate(zip(alone, references)):
            lr, momentum = single.current()  # torch's scheduler's values for this member alone
            sgd.param_groups[0].update(lr=lr.item(), momentum=momentum.item())
            sgd.zero_grad()
            model(x[k]).square().mean().backward()
            sgd.step()
            single.step()
    for k, model in enumerate(alone):
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(member_state(fused, k)[name], tensor, rtol=1e-5, atol=1e-6, msg=f"{k} {name}")
