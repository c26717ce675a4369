"""SGD with momentum over fused members, each with its own lr, weight decay and momentum.

torch.optim.SGD takes one lr for all parameters (a tensor lr is still a single value), so the
members' update is written here with foreach ops: one kernel per op over every parameter, no
per-member Python loop, no host sync, so it captures into a CUDA graph. It is PyTorch's update
(dampening 0, no Nesterov): buf = momentum * buf + (grad + weight_decay * param);
param -= lr * buf, where a zero-initialised buf makes the first step's buf equal the gradient, as
PyTorch's does.
"""

from __future__ import annotations

import torch
from torch import nn


def _per_element(values: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """[K] member values broadcast to `param`'s shape (member k owns the k-th block of dim 0)."""
    k = values.numel()
    out = torch.empty_like(param)  # the parameter's memory format too (channels_last convolutions)
    out.copy_(values.view(k, *[1] * param.ndim).expand(k, param.shape[0] // k, *param.shape[1:]).reshape(param.shape))
    return out


class FusedSGD:
    """The update of K members' SGD in one pass; `active` masks members that stopped (pruned, failed)."""

    def __init__(self, params: list[nn.Parameter], lr: torch.Tensor, weight_decay: torch.Tensor,
                 momentum: torch.Tensor) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.base_lr = lr
        # Same-shape tensors keep every foreach call on its fast path (broadcasting ones fall back to a loop).
        self.lrs = [_per_element(lr, p) for p in self.params]
        self.decays = [_per_element(weight_decay, p) for p in self.params]
        self.momenta = [_per_element(momentum, p) for p in self.params]
        self.bufs = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, factor: torch.Tensor) -> None:
        """One update with each member's lr scaled by `factor` (the schedule's value, a 0-d device tensor)."""
        grads = [p.grad for p in self.params]
        torch._foreach_addcmul_(grads, self.decays, self.params)
        torch._foreach_mul_(self.bufs, self.momenta)
        torch._foreach_add_(self.bufs, grads)
        steps = torch._foreach_mul(self.lrs, factor)
        torch._foreach_mul_(steps, self.bufs)
        torch._foreach_sub_(self.params, steps)

    def stop(self, member: int) -> None:
        """Member `member` takes no more updates (its lr becomes 0); the others are untouched."""
        mask = torch.ones_like(self.base_lr)
        mask[member] = 0
        for lr, p in zip(self.lrs, self.params):
            lr.mul_(_per_element(mask, p))

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        return {"bufs": self.bufs, "lrs": self.lrs}

    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        for mine, saved in zip([*self.bufs, *self.lrs], [*state["bufs"], *state["lrs"]]):
            mine.copy_(saved)
