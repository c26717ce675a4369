"""`train_array(configs)`: K configurations that differ only in per-member settings, trained as one
fused model, each with its own metrics and its own ending.

The members share one model built by study/engine/models/fused.py (grouped convolutions, BatchNorm over K x C
channels) and one optimizer with per-member lr, momentum and weight decay (study/engine/optim.py), and run
train()'s own epoch loop (`study.engine.train.train_members`). What fusion cannot keep per member must be the
same in every member: the architecture and its input (model and its knobs, resolution), what the
shared loop and data use (batch_size, epochs, schedule, dataset and split, device, precision), and
dropout, whose module has one rate for all the members it drops.
"""

from __future__ import annotations

from pathlib import Path

from study.config import Config
from study.engine.results import Callbacks, Member
from study.engine.train import train_members
from study.errors import UserError

# Settings each member keeps its own: its seed (initialisation, data order, augmentation draws), the
# optimizer's per-member values, its loss, and the augmentation each member's batch gets on its own.
FUSIBLE = (
    "seed", "lr", "weight_decay", "momentum", "label_smoothing", "aug_strength", "translate", "flip",
    "rotate", "shear", "brightness", "contrast", "saturation", "hue", "cutout", "mixup_alpha",
)


def check_fusible(configs: list[Config]) -> None:
    """Raise UserError naming every setting outside FUSIBLE that differs between the members."""
    if not configs:
        raise UserError("a fused array needs at least one configuration")
    first = configs[0].to_dict()
    differing = [name for name in first if name not in FUSIBLE and any(c.to_dict().get(name) != first[name] for c in configs)]
    if differing:
        values = "; ".join(f"{name}: {sorted({repr(c.to_dict().get(name)) for c in configs})}" for name in differing)
        raise UserError(f"these configurations cannot train as one fused array, they differ in {values}; "
                        f"members may differ only in {', '.join(FUSIBLE)}")


def train_array(configs: list[Config], callbacks: Callbacks | None = None, *, checkpoint: Path | None = None,
                cuda_graph: bool = True, test: bool = False) -> list[Member]:
    """Train `configs` as one fused model; one Member per configuration, its metrics with train()'s
    fields and `array_size` K.

    A stopped member (its `result` callback raised Stop, or its loss diverged) takes no more updates
    and its curves end where it stopped; the others go on unaffected. `checkpoint` is one file for
    the whole array: a killed array resumes every member from it. A model that cannot be fused
    (study.engine.models.fused.NotFusible) raises: train its members one by one with train().
    """
    check_fusible(configs)
    return train_members(configs, callbacks, test=test, checkpoint=checkpoint, cuda_graph=cuda_graph)
