"""How much compute a model's forward pass costs per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def flops_per_image(model: nn.Module, resolution: int, device: torch.device) -> int:
    """Forward FLOPs (2 per multiply-add) of one image, counted by torch.utils.flop_counter."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, resolution, resolution, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())
