"""K models of one architecture trained as one: HFTA's horizontal fusion (Wang et al., MLSys 2021).

Every Conv2d becomes one grouped convolution over the K members (K x the channels, K x the groups),
every BatchNorm2d one call over K x C channels (BatchNorm is per channel, so each member keeps its own
running statistics), every Linear one batched matmul. The members' channels sit side by side: member
k owns the k-th block of every channel dimension, so nothing mixes between members and each one
computes exactly what it would alone. Parameter-free modules (activations, pooling, dropout,
flatten, residual additions) need no change.

We fuse by rewriting the module tree rather than with `torch.func.stack_module_state` + `vmap`:
vmap cannot update BatchNorm's running statistics in place, and a grouped convolution is one cuDNN
kernel where vmap would also lower to grouped convolutions. A module whose computation would couple
the members (StochasticDepth drops whole samples, so every member would drop the same ones) makes a
model unfusible: `fuse` raises NotFusible and the caller trains its members one by one.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision.ops import StochasticDepth

# Parameter-free modules that act per channel or per element, hence per member.
_PASS_THROUGH = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Identity, nn.Hardswish, nn.Hardsigmoid,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Dropout2d,
)


class NotFusible(Exception):
    """The model holds a module that cannot be split into independent members."""


class FusedLinear(nn.Module):
    """K Linear layers as one batched matmul over [B, K * in] inputs (member-major features)."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.members = len(layers)
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))  # [K, out, in]
        has_bias = layers[0].bias is not None
        self.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers])) if has_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = torch.einsum("bki,koi->bko", x.reshape(b, self.members, -1), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(b, -1)


def _fused_conv(layers: list[nn.Conv2d]) -> nn.Conv2d:
    first, k = layers[0], len(layers)
    conv = nn.Conv2d(
        k * first.in_channels, k * first.out_channels, first.kernel_size, first.stride, first.padding,
        first.dilation, k * first.groups, first.bias is not None, first.padding_mode,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.cat([layer.weight for layer in layers]))
        if first.bias is not None:
            conv.bias.copy_(torch.cat([layer.bias for layer in layers]))
    return conv


def _fused_batchnorm(layers: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first, k = layers[0], len(layers)
    bn = nn.BatchNorm2d(k * first.num_features, first.eps, first.momentum, first.affine, first.track_running_stats)
    with torch.no_grad():
        for name, tensor in [*bn.named_parameters(), *bn.named_buffers()]:
            parts = [getattr(layer, name) for layer in layers]
            tensor.copy_(torch.cat(parts) if tensor.ndim else parts[0])  # num_batches_tracked is shared
    return bn


def _fuse_leaf(layers: list[nn.Module], path: str) -> nn.Module | None:
    """The fused form of one leaf module, or None where the module is reused as it is."""
    first = layers[0]
    if isinstance(first, StochasticDepth) and first.p > 0:
        raise NotFusible(f"{path} ({type(first).__name__}) drops whole samples, the same ones in every member")
    if type(first) is nn.Conv2d:
        return _fused_conv(layers)
    if type(first) is nn.BatchNorm2d:
        return _fused_batchnorm(layers)
    if type(first) is nn.Linear:
        return FusedLinear(layers)
    if isinstance(first, _PASS_THROUGH) or isinstance(first, StochasticDepth):
        return None
    if _has_state(first):
        raise NotFusible(f"{path} ({type(first).__name__}) has state that fusion does not know how to split")
    return None


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


class Fused(nn.Module):
    """K members as one module: [K, B, C, H, W] in, [K, B, classes] out."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = len(members)
        self.body = copy.deepcopy(members[0])
        for name, module in self.body.named_modules():
            if any(True for _ in module.children()) and _has_state(module):
                raise NotFusible(f"{name or 'the model'} ({type(module).__name__}) holds parameters or buffers beside "
                                 "its submodules, which fusion does not know how to split")
        for name, module in list(self.body.named_modules()):
            if name and not any(True for _ in module.children()):
                fused = _fuse_leaf([m.get_submodule(name) for m in members], name)
                if fused is not None:
                    self.body.set_submodule(name, fused)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, b = x.shape[:2]
        # members side by side along channels; channels_last input stays channels_last
        y = self.body(x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:]))
        return y.view(b, k, -1).transpose(0, 1)


def fuse(members: list[nn.Module]) -> Fused:
    """One module computing every member; each keeps its own parameters and BatchNorm statistics."""
    return Fused(members)


def check_members(fused: Fused, members: list[nn.Module], resolution: int) -> None:
    """Raise NotFusible unless the fused model computes each member's output on a random batch.

    Module by module, fusion sees only layers; a forward that mixes channels across the members
    (a reshape over channels, a functional norm) is found only by running it.
    """
    x = torch.randn(len(members), 2, 3, resolution, resolution)
    for m in (fused, *members):
        m.eval()
    with torch.no_grad():
        got = fused(x)
        for k, member in enumerate(members):
            want = member(x[k])
            if got[k].shape != want.shape or not torch.allclose(got[k], want, rtol=1e-3, atol=1e-4):
                raise NotFusible("its forward mixes the members' channels (a reshape over channels, or a functional "
                                 "layer): fused, a member's output differs from its own")


def member_state(fused: Fused, k: int) -> dict[str, torch.Tensor]:
    """Member k's state dict, in the unfused model's names and shapes (for checkpoints and tests)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in fused.body.state_dict().items():
        if tensor.ndim == 0:
            out[name] = tensor
        elif name.endswith(("weight", "bias")) and isinstance(fused.body.get_submodule(name.rpartition(".")[0]), FusedLinear):
            out[name] = tensor[k]
        else:
            out[name] = tensor.view(fused.members, -1, *tensor.shape[1:])[k]
    return out



def members_forward(model: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    """K member batches [B, C, H, W] -> logits [K, B, classes]: through the fused model (or its compiled
    form) when K > 1, through the one unfused model of a single run when K = 1."""
    if len(xs) == 1:
        return model(xs[0]).unsqueeze(0)
    b, c, h, w = xs[0].shape
    # side by side along channels first: a view of that is the [K, B, C, H, W] input whose member-major
    # reshape inside Fused.forward is free, and the batches' memory format (channels_last) carries over
    return model(torch.cat(xs, 1).view(b, len(xs), c, h, w).transpose(0, 1))
