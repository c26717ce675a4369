"""Published accuracies the measured baselines are compared with (test-set top-1, full data sets)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    model: str  # registry name
    dataset: str
    accuracy: float  # fraction
    source: str
    note: str = ""


FIGURES = (
    Figure("resnet18", "cifar10", 0.9528, "DeVries & Taylor 2017 (Cutout), baseline", "200 epochs"),
    Figure("resnet18", "cifar100", 0.7754, "DeVries & Taylor 2017 (Cutout), baseline", "200 epochs"),
    Figure("se_resnet18", "cifar100", 0.7644, "weiaicunzai/pytorch-cifar100"),
    Figure("mobilenet_v2", "cifar10", 0.9379, "chenyaofo/pytorch-cifar-models"),
    Figure("mobilenet_v2", "cifar100", 0.7420, "chenyaofo/pytorch-cifar-models"),
    Figure("resnet18", "cifar10", 0.9601, "DeVries & Taylor 2017", "with Cutout"),
    Figure("resnet18", "cifar100", 0.7804, "DeVries & Taylor 2017", "with Cutout"),
    Figure("preact_resnet18", "cifar10", 0.958, "Zhang et al. 2018 (mixup)", "with MixUp"),
    Figure("preact_resnet18", "cifar100", 0.789, "Zhang et al. 2018 (mixup)", "with MixUp"),
    Figure("naivenet", "cifar10", 0.90, "NaiveNet's author (seed README)", "approximate: '>90%'"),
    Figure("naivenet", "cifar100", 0.70, "NaiveNet's author (seed README)", "approximate: '~70%'"),
)


def baseline(model: str, dataset: str) -> Figure | None:
    """The plain-recipe figure for a model and data set (no Cutout/MixUp), if one is published."""
    return next((f for f in FIGURES if f.model == model and f.dataset == dataset and not f.note.startswith("with")), None)


def published(model: str, dataset: str) -> float | None:
    """The published plain-recipe accuracy (a fraction), for the report's gap column."""
    figure = baseline(model, dataset)
    return figure.accuracy if figure else None
