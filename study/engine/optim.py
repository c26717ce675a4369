"""SGD with momentum driven by a per-step schedule held on the device, so an update needs no host.

torch.optim.SGD reads momentum as a Python float (OneCycle cycles it every step) and its foreach path
turns a tensor lr into a Python scalar (`alpha=-lr`, a host sync; a failure under CUDA graph capture).
So the update is written here with the same foreach operations, reading lr and momentum from tensors.
The schedule's values come from torch's own schedulers, stepped once ahead of training; on CPU the
numbers are bit-for-bit torch.optim.SGD's under OneCycleLR (tests/test_train_reference.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from study.config import Config

# The seed's OneCycle: peak at 5x lr after 30% of the steps, from lr/25... to peak/1e4, cosine.
ONECYCLE_PEAK = 5.0
ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4


class Schedule:
    """Learning rate and momentum of every step, on the device, read at a device step counter.

    `state_dict` has the shape of torch's LRScheduler ("last_epoch" = steps taken), so checkpoints
    written with OneCycleLR/CosineAnnealingLR load here and the other way round.
    """

    def __init__(self, lr: torch.Tensor, momentum: torch.Tensor) -> None:
        self.lr, self.momentum = lr, momentum
        self.steps_taken = torch.zeros((), dtype=torch.long, device=lr.device)

    @classmethod
    def from_torch(cls, make: Callable[[torch.optim.Optimizer], LRScheduler], lr: float, momentum: float,
                   total_steps: int, device: torch.device) -> Schedule:
        """The values torch's scheduler `make(optimizer)` sets over `total_steps` steps of SGD."""
        group = {"params": [torch.zeros(1, requires_grad=True)], "lr": lr, "momentum": momentum}
        scheduler = make(torch.optim.SGD([group], lr=lr, momentum=momentum))
        lrs, momenta = [], []
        with warnings.catch_warnings():
            # "lr_scheduler.step() before optimizer.step()": no optimizer steps here, only the values
            warnings.simplefilter("ignore", UserWarning)
            for i in range(total_steps):
                lrs.append(scheduler.optimizer.param_groups[0]["lr"])
                momenta.append(scheduler.optimizer.param_groups[0]["momentum"])
                if i + 1 < total_steps:
                    scheduler.step()
        return cls(torch.tensor(lrs, device=device), torch.tensor(momenta, device=device))

    def current(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(lr, momentum) of the step about to be taken, as 0-dim device tensors."""
        at = self.steps_taken.view(1)
        return self.lr.index_select(0, at).squeeze(0), self.momentum.index_select(0, at).squeeze(0)

    def step(self) -> None:
        self.steps_taken += 1

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": int(self.steps_taken)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps_taken.fill_(state["last_epoch"])


@dataclass(frozen=True)
class Members:
    """Per-member settings of a fused array (study/engine/models/fused.py), each a [K] tensor: member k owns
    the k-th block of every parameter's first dimension. lr and momentum scale the schedule's
    values (the schedule is built from one member's config; OneCycle's lr is proportional to the
    lr it starts from); weight_decay replaces the group's."""

    lr_scale: torch.Tensor
    momentum_scale: torch.Tensor
    weight_decay: torch.Tensor


def _per_element(values: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """[K] member values broadcast to `param`'s shape and memory format: same-shape tensors keep every
    foreach call on its fast path (broadcasting ones fall back to a per-tensor loop)."""
    k = values.numel()
    out = torch.empty_like(param, memory_format=torch.preserve_format)
    return out.copy_(values.view(k, *[1] * param.ndim).expand(k, param.shape[0] // k, *param.shape[1:]).reshape(param.shape))


class ScheduledSGD(torch.optim.Optimizer):
    """SGD with momentum (no dampening, not Nesterov) and L2 weight decay, as torch.optim.SGD computes
    it, with lr and momentum from `schedule` at each step; `step()` also advances the schedule.

    Momentum buffers exist from the start (zeros: 0 * momentum + g is exactly SGD's first-step copy
    of g), so their memory stays put for a CUDA graph; state is saved as SGD's "momentum_buffer".
    With `members`, the parameters are a fused array's and every member gets its own lr, momentum
    and weight decay, still one foreach call per operation (torch.optim.SGD takes one lr for all).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], schedule: Schedule, weight_decay: float,
                 members: Members | None = None) -> None:
        super().__init__(params, {"weight_decay": weight_decay})
        self.schedule, self.members = schedule, members
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if members is not None:
                    for name in ("lr_scale", "momentum_scale", "weight_decay"):
                        self.state[p][name] = _per_element(getattr(members, name).to(p.device), p)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        lr, momentum = self.schedule.current()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            buffers = [self.state[p]["momentum_buffer"] for p in params]
            if self.members is not None:
                self._member_step(params, grads, buffers, lr, momentum)
                continue
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            # p + (-lr) * buf in one rounding, as SGD's `add_(buf, alpha=-lr)` (a fused multiply-add):
            # a product then a sum would round twice and drift from torch's numbers in the last bit
            torch._foreach_addcmul_(params, buffers, [-lr] * len(params))
        self.schedule.step()

    def _member_step(self, params: list[torch.Tensor], grads: list[torch.Tensor], buffers: list[torch.Tensor],
                     lr: torch.Tensor, momentum: torch.Tensor) -> None:
        state = [self.state[p] for p in params]
        grads = torch._foreach_addcmul(grads, [s["weight_decay"] for s in state], params)
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_mul_(buffers, [s["momentum_scale"] for s in state])
        torch._foreach_add_(buffers, grads)
        torch._foreach_addcmul_(params, buffers, torch._foreach_mul([s["lr_scale"] for s in state], -lr))

    def stop(self, member: int) -> None:
        """Member `member` takes no more updates (its lr becomes 0); the others go on untouched."""
        assert self.members is not None, "stop() is for fused arrays"
        keep = torch.ones_like(self.members.lr_scale)
        keep[member] = 0
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["lr_scale"].mul_(_per_element(keep.to(p.device), p))


def optimizer_and_schedule(configs: list[Config], model: nn.Module, total_steps: int,
                           device: torch.device) -> tuple[ScheduledSGD, Schedule]:
    """SGD with momentum and weight decay, its lr (and OneCycle's momentum) precomputed for every step;
    for a fused array, each member's lr, momentum and weight decay."""
    config = configs[0]
    if config.schedule == "onecycle":
        def make(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=ONECYCLE_PEAK * config.lr, total_steps=total_steps,
                pct_start=ONECYCLE_PCT_START, div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV,
                anneal_strategy="cos",
            )
    else:
        def make(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if len(configs) == 1:
        schedule = Schedule.from_torch(make, config.lr, config.momentum, total_steps, device)
        return ScheduledSGD(model.parameters(), schedule, config.weight_decay), schedule
    # Members scale member 0's schedule: both schedules' lr is proportional to the lr they start from.
    # The cosine schedule's momentum is constant, so it is built as 1 and scaled to each member's own;
    # OneCycle cycles the same momentum for every member whatever config.momentum says, as in a single run.
    schedule = Schedule.from_torch(make, config.lr, 1.0, total_steps, device)
    members = Members(
        lr_scale=torch.tensor([c.lr / config.lr for c in configs]),
        momentum_scale=torch.tensor([1.0 if config.schedule == "onecycle" else c.momentum for c in configs]),
        weight_decay=torch.tensor([c.weight_decay for c in configs]),
    )
    return ScheduledSGD(model.parameters(), schedule, 0.0, members), schedule
