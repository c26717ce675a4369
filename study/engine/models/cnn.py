"""The staged course project's CNN: one configurable network for stages 1 to 3.

Stage 1: three Conv3x3 -> activation -> pool stages (32, 64, 128 channels) and a linear classifier
(113,738 parameters for 10 classes at 32x32 with depth=0). `activation="identity"` with `pooling="avg"` leaves
nothing non-linear: the network collapses to one affine map (the linear-collapse experiment).
Stage 2: `width` multiplies the channels; `depth` adds that many Conv3x3 blocks at the last stage's
resolution, without pooling. Stage 3: `residual` puts skip connections around those blocks,
`batchnorm` follows every conv with BatchNorm, `dropout` acts before the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from study.config import Config
from study.engine.models import register

CHANNELS = (32, 64, 128)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, config: Config) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
        if config.batchnorm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU() if config.activation == "relu" else nn.Identity())
        self.body = nn.Sequential(*layers)
        self.skip = config.residual and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.skip else self.body(x)


class CNN(nn.Module):
    def __init__(self, config: Config, num_classes: int) -> None:
        super().__init__()
        widths = [max(4, round(c * config.width)) for c in CHANNELS]
        pool = nn.MaxPool2d if config.pooling == "max" else nn.AvgPool2d
        stages: list[nn.Module] = []
        cin = 3
        for c in widths:
            stages += [Block(cin, c, config), pool(2)]
            cin = c
        stages += [Block(cin, cin, config) for _ in range(config.depth)]
        self.features = nn.Sequential(*stages)
        side = config.resolution // 2 ** len(widths)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(cin * side * side, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("cnn")
def build(config: Config, num_classes: int) -> CNN:
    return CNN(config, num_classes)
