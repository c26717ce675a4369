"""A split's images and labels on the device, loaded once per process and shared by every run of it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from study.config import Config
from study.engine import data, datasets
from study.errors import UserError


@dataclass(frozen=True)
class DeviceData:
    """The training and validation splits (uint8 images, labels) on the device, the normalisation, and
    the test split where it was asked for."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


@functools.lru_cache(maxsize=2)
def _device_data(config: Config, device: torch.device, test: bool) -> DeviceData:
    images = datasets.load(config)
    parts = data.split(images.train_labels, config.val_fraction, config.data_fraction, config.split_seed)
    out = {
        "train_x": images.train_images[parts.train], "train_y": images.train_labels[parts.train],
        "val_x": images.train_images[parts.val], "val_y": images.train_labels[parts.val],
        "mean": torch.tensor(images.mean), "std": torch.tensor(images.std),
    }
    if test:
        if not len(images.test_labels):
            raise UserError(f"{config.dataset} has no test images to score; add a test/ folder (or x_test, y_test)")
        out.update(test_x=images.test_images, test_y=images.test_labels)
    return DeviceData(**{k: v.to(device) for k, v in out.items()})


def device_data(config: Config, device: torch.device, test: bool = False) -> DeviceData:
    # The cache key holds only what selects the data, so every trial of a study shares one copy.
    key = Config(
        dataset=config.dataset, data_dir=config.data_dir, image_size=config.image_size, val_fraction=config.val_fraction,
        data_fraction=config.data_fraction, split_seed=config.split_seed,
    )
    return _device_data(key, device, test)


def clear() -> None:
    """Forget the cached splits: the next run loads its data afresh."""
    _device_data.cache_clear()


def num_classes(config: Config) -> int:
    """The classes a model of `config` tells apart: its num_classes, else the data's."""
    found = datasets.load(config).num_classes
    if config.num_classes and config.num_classes < found:
        raise UserError(f"num_classes={config.num_classes} is fewer than the {found} classes of {config.dataset}; "
                        "leave it 0 (from the data)")
    return config.num_classes or found
