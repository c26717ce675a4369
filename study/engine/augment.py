"""Batched augmentation on the training device: small pure tensor functions, random per sample.

Input is the uint8 data set itself; one `grid_sample` does the integer upscale, translation, flip,
rotation and shear at once, so the 128x128 image is written exactly once. Colour jitter runs at
32x32 before that (it is per-pixel, so it commutes with the upscale) as one 3x3 matrix per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from study.config import Config

_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ, for hue rotation as a linear map (torchvision's HSV round trip is far slower batched).
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass(frozen=True)
class Constants:
    """The tensors every batch reuses, built once per run on the training device.

    Built inside a step they would be a host-to-device copy and a matrix inverse (which syncs) per
    batch, and neither can be captured in a CUDA graph.
    """

    luma: torch.Tensor
    yiq: torch.Tensor
    yiq_inverse: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    mixup: torch.distributions.Beta | None  # the mixing weight's distribution; None: MixUp off


def constants(mean: torch.Tensor, std: torch.Tensor, mixup_alpha: float = 0.0) -> Constants:
    """Constants on `mean`'s device; `mixup_alpha` is the Beta parameter actually used (0: off)."""
    device = mean.device
    yiq = torch.tensor(_RGB_TO_YIQ, device=device)
    return Constants(
        luma=torch.tensor(_LUMA, device=device), yiq=yiq, yiq_inverse=torch.linalg.inv(yiq),
        mean=mean.view(1, 3, 1, 1), std=std.view(1, 3, 1, 1), mixup=_beta(mixup_alpha, device) if mixup_alpha > 0 else None,
    )


def _beta(alpha: float, device: torch.device) -> torch.distributions.Beta:
    a = torch.tensor(alpha, device=device)
    return torch.distributions.Beta(a, a, validate_args=False)  # validation would sync on every sample


def _uniform(n: int, half_width: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * half_width


def to_float(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B,3,H,W] -> normalised float32."""
    return (images.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def colour_jitter(x: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                  c: Constants | None = None) -> torch.Tensor:
    """Per-image brightness, saturation and hue as one 3x3 colour matrix, then contrast; x in [0, 1]."""
    b, device = x.shape[0], x.device
    c = c or constants(torch.zeros(3, device=device), torch.ones(3, device=device))
    eye = torch.eye(3, device=device).expand(b, 3, 3)
    luma = c.luma
    gray = luma.expand(3, 3)  # each output channel = luma of the input
    s = 1 + _uniform(b, saturation, device).view(b, 1, 1)
    m = (s * eye + (1 - s) * gray) * (1 + _uniform(b, brightness, device)).view(b, 1, 1)
    if hue > 0:
        angle = _uniform(b, hue, device) * 2 * math.pi
        cos, sin = angle.cos(), angle.sin()
        rot = torch.zeros(b, 3, 3, device=device)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = c.yiq_inverse @ rot @ c.yiq @ m
    y = torch.einsum("bij,bjhw->bihw", m, x)
    k = (1 + _uniform(b, contrast, device)).view(b, 1, 1, 1)
    gray_mean = torch.einsum("c,bchw->b", luma, y).view(b, 1, 1, 1) / (y.shape[2] * y.shape[3])
    return (k * y + (1 - k) * gray_mean).clamp_(0, 1)


def affine_resample(
    x: torch.Tensor, size: int, translate: float, flip: float, rotate: float, shear: float
) -> torch.Tensor:
    """Resample to `size` px under a random affine map per image (identity when all are 0).

    translate is in source pixels, flip a probability, rotate and shear in degrees. Pixels from
    outside the image are 0, which after normalisation is the data set's mean colour.
    """
    b, device = x.shape[0], x.device
    angle = torch.deg2rad(_uniform(b, rotate, device))
    sh = torch.tan(torch.deg2rad(_uniform(b, shear, device)))
    sign = torch.where(torch.rand(b, device=device) < flip, -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    # rotation @ shear @ flip, mapping output coordinates to input coordinates in [-1, 1]: the
    # columns multiply the output's x and y, then the translation
    along_x = torch.stack([cos * sign, sin * sign], 1)
    along_y = torch.stack([cos * sh - sin, sin * sh + cos], 1)
    shift = _uniform(2 * b, translate * 2 / x.shape[-1], device).view(b, 2)
    # F.affine_grid would multiply a [B, size*size, 3] base grid by theta, a k=3 bmm that took more
    # time than grid_sample itself at 128 px; the map is separable, so one broadcast add builds it.
    coords = (torch.arange(size, device=device, dtype=x.dtype) * 2 + 1) / size - 1  # pixel centres
    x_part = along_x.view(b, 1, 1, 2) * coords.view(1, 1, size, 1)
    y_part = along_y.view(b, 1, 1, 2) * coords.view(1, size, 1, 1) + shift.view(b, 1, 1, 2)
    return F.grid_sample(x, x_part + y_part, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, side: float) -> torch.Tensor:
    """Zero one square of `side` px per image at a uniform random centre (it may overhang the edge)."""
    b, _, h, w = x.shape
    device = x.device
    cy = torch.rand(b, 1, 1, device=device) * h
    cx = torch.rand(b, 1, 1, device=device) * w
    rows = torch.arange(h, device=device).view(1, h, 1) + 0.5
    cols = torch.arange(w, device=device).view(1, 1, w) + 0.5
    keep = ((rows - cy).abs() >= side / 2) | ((cols - cx).abs() >= side / 2)
    return x * keep.unsqueeze(1)


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float | torch.distributions.Beta) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image with a random partner, weight ~ Beta(alpha, alpha) per image; soft targets."""
    b = x.shape[0]
    weights = alpha if isinstance(alpha, torch.distributions.Beta) else _beta(alpha, x.device)
    lam = weights.sample((b,))
    perm = torch.randperm(b, device=x.device)
    x = lam.view(b, 1, 1, 1) * x + (1 - lam.view(b, 1, 1, 1)) * x[perm]
    target = lam.view(b, 1) * target + (1 - lam.view(b, 1)) * target[perm]
    return x, target


def train_constants(config: Config, mean: torch.Tensor, std: torch.Tensor) -> Constants:
    """`constants` for `train_batch` under `config`."""
    return constants(mean, std, config.aug_strength * config.mixup_alpha)


def train_batch(images: torch.Tensor, labels: torch.Tensor, config: Config, num_classes: int,
                c: Constants) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> (augmented normalised float batch at config.resolution, target).

    The target is class indices, or class probabilities when MixUp is on. `c` (from
    `train_constants`, built once per run) holds the data set's mean and std and keeps the call free
    of host work.
    """
    k = config.aug_strength
    x = images.float() / 255
    if k > 0 and (config.brightness or config.contrast or config.saturation or config.hue):
        x = colour_jitter(x, k * config.brightness, k * config.contrast, k * config.saturation, k * config.hue, c)
    x = (x - c.mean) / c.std
    geometric = k > 0 and (config.translate or config.flip or config.rotate or config.shear)
    if geometric:
        x = affine_resample(x, config.resolution, k * config.translate, k * config.flip, k * config.rotate, k * config.shear)
    elif config.resolution != x.shape[-1]:
        x = upscale(x, config.resolution)
    if k > 0 and config.cutout > 0:
        x = cutout(x, k * config.cutout * config.resolution / 32)
    target: torch.Tensor = labels
    if k > 0 and config.mixup_alpha > 0:
        x, target = mixup(x, F.one_hot(labels, num_classes).float(), c.mixup)
    return x, target


def upscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize, the same sampling as `affine_resample` with the identity map."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def eval_batch(images: torch.Tensor, resolution: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    x = to_float(images, mean, std)
    return upscale(x, resolution) if resolution != x.shape[-1] else x
