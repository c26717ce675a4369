"""Each member's accuracy, loss and confusion matrix over a whole split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from study.config import Config
from study.engine import augment
from study.engine.device import autocast
from study.engine.models.fused import Fused, members_forward

EVAL_BATCH = 500


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: Config,
             mean: torch.Tensor, std: torch.Tensor, device: torch.device,
             num_classes: int) -> list[tuple[float, float, list[list[int]]]]:
    """Each member's (accuracy, mean cross-entropy, confusion matrix with rows = true class) over a
    whole split; one member unless `model` is a fused array."""
    k = model.members if isinstance(model, Fused) else 1
    model.eval()
    confusion = torch.zeros(k, num_classes * num_classes, dtype=torch.long, device=device)
    loss = torch.zeros(k, device=device)
    with torch.no_grad(), autocast(config, device):
        for i in range(0, len(labels), EVAL_BATCH):
            x = augment.eval_batch(images[i:i + EVAL_BATCH], config.resolution, mean, std)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = members_forward(model, [x] * k).float()
            y = labels[i:i + EVAL_BATCH]
            confusion += torch.stack([torch.bincount(y * num_classes + member.argmax(1), minlength=num_classes**2)
                                      for member in out])
            loss += torch.stack([F.cross_entropy(member, y, reduction="sum") for member in out])
    model.train()
    matrices = confusion.view(k, num_classes, num_classes)
    n = len(labels)
    correct, loss_sums = matrices.diagonal(dim1=1, dim2=2).sum(1).tolist(), loss.tolist()
    return [(c / n, s / n, m) for c, s, m in zip(correct, loss_sums, matrices.tolist())]
