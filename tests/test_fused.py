"""Fused members compute what each member computes alone: models, BatchNorm statistics, SGD
(ScheduledSGD with per-member settings against torch.optim.SGD on each member)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from study.config import Config
from study.engine import models
from study.engine.models.fused import NotFusible, fuse, member_state
from study.engine.optim import Members, Schedule, ScheduledSGD

K = 3


def _members(config: Config, seeds: list[int]) -> list[nn.Module]:
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = models.build(config, 10)
        for module in model.modules():  # dropout masks are drawn differently fused and alone
            if isinstance(module, (nn.Dropout, nn.Dropout2d)):
                module.p = 0.0
        out.append(model)
    return out


@pytest.mark.parametrize("model", ["naivenet", "cnn", "resnet18", "se_resnet18", "mobilenet_v2"])
def test_fused_forward_and_batchnorm_statistics_match_each_member(model: str) -> None:
    config = Config(model=model, dataset="cifar10", resolution=32, batchnorm=True, depth=1, se="all")
    members = _members(config, [0, 1, 2])
    fused = fuse(members)
    x = torch.randn(K, 8, 3, 32, 32)
    out = fused(x)  # training mode: batch statistics, running statistics updated
    for k, member in enumerate(members):
        alone = member(x[k])
        torch.testing.assert_close(out[k], alone, rtol=1e-4, atol=1e-5)
        state = member_state(fused, k)
        for name, tensor in member.state_dict().items():
            torch.testing.assert_close(state[name], tensor, rtol=1e-4, atol=1e-5, msg=f"{model} member {k}: {name}")


def test_stochastic_depth_makes_a_model_unfusible() -> None:
    config = Config(model="efficientnet_b0", dataset="cifar10", resolution=32)
    with pytest.raises(NotFusible, match="stochastic_depth"):
        fuse(_members(config, [0, 1]))


def _step_both(fused: nn.Module, sgd: ScheduledSGD, members: list[nn.Module],
               optimizers: list[torch.optim.Optimizer], skip: set[int]) -> tuple[list[float], list[float]]:
    """One step of the fused array and of each member alone (members in `skip` stopped)."""
    x, y = torch.randn(K, 16, 3, 32, 32), torch.randint(0, 10, (K, 16))
    loss = F.cross_entropy(fused(x).reshape(-1, 10), y.reshape(-1), reduction="none").view(K, -1).mean(1)
    fused.zero_grad(set_to_none=True)
    loss.sum().backward()  # a sum, so each member's gradient is its own loss's
    sgd.step()
    alone = []
    for k, (member, optimizer) in enumerate(zip(members, optimizers)):
        if k in skip:
            alone.append(float("nan"))
            continue
        member_loss = F.cross_entropy(member(x[k]), y[k])
        optimizer.zero_grad(set_to_none=True)
        member_loss.backward()
        optimizer.step()
        alone.append(member_loss.item())
    return loss.tolist(), alone


def test_fused_sgd_matches_torch_sgd_per_member_and_a_stopped_member_freezes() -> None:
    config = Config(model="naivenet", dataset="cifar10", resolution=32)
    members = _members(config, [0, 1, 2])
    fused = fuse(members)
    lr, decay, momentum = torch.tensor([0.05, 0.01, 0.1]), torch.tensor([1e-4, 5e-4, 0.0]), torch.tensor([0.9, 0.9, 0.8])
    steps = 6
    schedule = Schedule(torch.full((steps,), 0.5), torch.full((steps,), 0.9))  # lr factor 0.5, momentum 0.9
    sgd = ScheduledSGD(fused.parameters(), schedule, 0.0, Members(lr, momentum / 0.9, decay))
    optimizers = [  # each member's lr is the schedule's 0.5 times its own
        torch.optim.SGD(m.parameters(), lr=0.5 * lr[k].item(), momentum=momentum[k].item(),
                        weight_decay=decay[k].item(), foreach=True)
        for k, m in enumerate(members)
    ]
    torch.manual_seed(5)
    skip: set[int] = set()
    frozen: dict[str, torch.Tensor] = {}
    for step in range(steps):
        if step == 3:  # member 1 is pruned: no more updates, the others go on
            sgd.stop(1)
            skip.add(1)
            frozen = {n: t.clone() for n, t in member_state(fused, 1).items()}
        fused_loss, alone_loss = _step_both(fused, sgd, members, optimizers, skip)
        for k in set(range(K)) - skip:
            assert fused_loss[k] == pytest.approx(alone_loss[k], rel=1e-4), (step, k)
    for k, member in enumerate(members):
        state = member_state(fused, k)
        if k == 1:
            for name in state:
                if name.endswith(("weight", "bias")):  # parameters stay put (BatchNorm statistics still move)
                    torch.testing.assert_close(state[name], frozen[name], rtol=0, atol=0, msg=name)
            continue
        for name, tensor in member.state_dict().items():
            torch.testing.assert_close(state[name], tensor, rtol=1e-3, atol=1e-5, msg=f"member {k}: {name}")
