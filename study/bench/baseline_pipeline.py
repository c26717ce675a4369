"""The seed's way of training, re-created for the bench: PIL transforms in a DataLoader, fp32, eager.

`naivenet_128x128_cuda.py` augments each image on the host with torchvision's PIL transforms
(Resize to 128, RandomCrop with padding 4, horizontal flip, RandomAffine 10 degrees + shear 5,
ColorJitter 0.1/0.1/0.1/0.02, ToTensor, Normalize) in DataLoader workers with `prefetch_factor`
12, and trains in fp32, contiguous memory format, reading the loss with `.item()` every step.
Only the bench uses this module: it is the baseline that `study.engine.train` is measured against.
"""

from __future__ import annotations

import time
from typing import Iterator

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from study.config import Config
from study.engine import data, models
from study.engine.optim import ONECYCLE_DIV, ONECYCLE_FINAL_DIV, ONECYCLE_PCT_START, ONECYCLE_PEAK

PREFETCH_FACTOR = 12  # the seed author's value, raised to keep a GPU fed


def transform(resolution: int, mean: tuple[float, ...], std: tuple[float, ...]) -> T.Compose:
    """The seed's training transform chain, at `resolution` px (128 in the seed)."""
    return T.Compose([
        T.Resize(resolution),
        T.RandomCrop(resolution, padding=4),
        T.RandomHorizontalFlip(),
        T.RandomAffine(degrees=10, shear=5),
        T.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


class PilImages(Dataset):
    """uint8 [N, 3, 32, 32] images as PIL images through a transform, like torchvision's CIFAR10."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, tf: T.Compose) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.tf = tf

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.tf(Image.fromarray(self.images[i])), self.labels[i]


def loader(config: Config, workers: int) -> DataLoader:
    cifar = data.load(config.dataset, config.data_dir)
    dataset = PilImages(cifar.train_images, cifar.train_labels, transform(config.resolution, cifar.mean, cifar.std))
    return DataLoader(
        dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=workers,
        prefetch_factor=PREFETCH_FACTOR if workers else None, persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


def step_times(config: Config, device: torch.device, workers: int, steps: int) -> Iterator[float]:
    """Train the seed's way and yield perf_counter() after each of `steps` steps (device synced)."""
    torch.manual_seed(config.seed)
    cifar = data.load(config.dataset, config.data_dir)
    model = models.build(config, config.num_classes or cifar.num_classes).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=ONECYCLE_PEAK * config.lr, total_steps=steps, pct_start=ONECYCLE_PCT_START,
        div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV,
    )
    model.train()
    batches = loader(config, workers)
    done = 0
    while done < steps:
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss.item()  # the seed's running-loss print: a host sync every step
            yield time.perf_counter()
            done += 1
            if done == steps:
                return
