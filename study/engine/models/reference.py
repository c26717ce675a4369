"""The reference models, built from torchvision, with a CIFAR adaptation for 32x32 inputs.

`cifar_stem` (default: on at 32x32, off otherwise) removes the early downsampling that ImageNet
models use on 224 px inputs; without it the same models run on NaiveNet's 128x128 upscale.
Counts for 10 classes (MACs as torch.utils.flop_counter counts them; pinned in
tests/test_reference_models.py):

| model           | CIFAR stem at 32x32 | parameters | MACs/image at 32x32 |
|-----------------|---------------------|-----------:|--------------------:|
| resnet18        | conv1 3x3 stride 1, no max-pool | 11,173,962 | 555.4M |
| se_resnet18     | + SqueezeExcitation (reduction 16) after each block's bn2 | 11,263,042 | 555.5M |
| mobilenet_v2    | stem stride 1, stage 2 stride 1 (total stride 8) | 2,236,682 | 87.98M |
| efficientnet_b0 | stem stride 1 (total stride 16) | 4,020,358 | 31.98M |
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tv
from torchvision.ops import SqueezeExcitation

from study.config import Config
from study.engine.models import register

SE_REDUCTION = 16  # Hu et al. 2018's default


def cifar_stem(config: Config) -> bool:
    return config.resolution == 32 if config.cifar_stem is None else config.cifar_stem


def _resnet18(config: Config, num_classes: int) -> tv.ResNet:
    model = tv.resnet18(num_classes=num_classes)
    if cifar_stem(config):
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


@register("resnet18")
def resnet18(config: Config, num_classes: int) -> nn.Module:
    return _resnet18(config, num_classes)


@register("se_resnet18")
def se_resnet18(config: Config, num_classes: int) -> nn.Module:
    """ResNet-18 with squeeze-and-excitation after each basic block's second batch norm, before the addition."""
    model = _resnet18(config, num_classes)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            channels = block.bn2.num_features
            block.bn2 = nn.Sequential(block.bn2, SqueezeExcitation(channels, channels // SE_REDUCTION))
    return model


@register("mobilenet_v2")
def mobilenet_v2(config: Config, num_classes: int) -> nn.Module:
    """CIFAR version: stride-1 stem and stride 1 in the second stage (the first 24-channel block)."""
    model = tv.mobilenet_v2(num_classes=num_classes)
    if cifar_stem(config):
        model.features[0][0].stride = (1, 1)
        model.features[2].conv[1][0].stride = (1, 1)
    return model


@register("efficientnet_b0")
def efficientnet_b0(config: Config, num_classes: int) -> nn.Module:
    """CIFAR version: the stem's 3x3 conv at stride 1 instead of 2 (feature map 2x2 before pooling)."""
    model = tv.efficientnet_b0(num_classes=num_classes)
    if cifar_stem(config):
        model.features[0][0].stride = (1, 1)
    return model
