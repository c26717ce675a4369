"""What `run` checks before it opens the storage, so that a missing GPU, bad data or a space run
where it cannot mean what it says fails as the command's error, never as trial 0's."""

from __future__ import annotations

import torch

from study.config import FULL_TRAIN_IMAGES, Config
from study.engine import data, datasets, models
from study.engine.cache import num_classes
from study.engine.device import resolve_device
from study.errors import UserError
from study.spaces.kinds import GridPlan, Plan
from study.spaces.space import Space


def check(plan: Plan, config: Config, devices: list[str] | None, force: bool) -> None:
    """The devices, the data and its split, the user's own models, and the space's needs."""
    for device in {config.device, *(devices or [])}:
        _check_device(device)
    images = datasets.load(config)
    data.split(images.train_labels, config.val_fraction, config.data_fraction, config.split_seed)
    _check_user_models(plan, config)
    _check_needs(plan.space, config, len(images.train_labels), force)


def _check_user_models(plan: Plan, config: Config) -> None:
    """Each configuration a grid trains, or a search's defaults, builds the user's model and gets
    [batch, classes] logits from it; shipped models are known to."""
    configs = [config]
    if isinstance(plan, GridPlan):
        configs = [config.replace(**v.settings) for v in plan.variants()]
    seen = set()
    for c in configs:
        if models.user.is_user_model(c.model) and c not in seen:
            seen.add(c)
            classes = num_classes(c)
            models.user.check_output(models.build(c, classes), c, classes)


def _check_device(name: str) -> None:
    device = resolve_device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device={name}: only {torch.cuda.device_count()} CUDA device(s) visible; pick one of them")


def _check_needs(space: Space, config: Config, train_images: int, force: bool) -> None:
    """A space written for a GPU and the full data set says so before it starts, unless forced."""
    missing = []
    if "cuda" in space.needs and resolve_device(config.device).type != "cuda":
        missing.append("a CUDA device")
    if "full_data" in space.needs and train_images < FULL_TRAIN_IMAGES:
        missing.append(f"the full data set (this one has {train_images:,} of {FULL_TRAIN_IMAGES:,} training images)")
    if missing and not force:
        raise UserError(f"{space.path} needs {' and '.join(missing)} to mean what it says; pass --force to run it anyway")
