"""Diagnostics of one trial: confusion matrix, per-class accuracy, train against validation, gradient norms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd

from reports.tables import Table, pct
from study.store import record


@dataclass(frozen=True)
class Diagnostics:
    trial: int
    classes: list[str]
    confusion: np.ndarray | None  # rows = true class, columns = predicted
    curves: pd.DataFrame  # epoch, train_accuracy, val_accuracy
    grad_norms: dict[str, list[float]] | None  # layer -> norm per step of the first epoch


def of(trial: optuna.trial.FrozenTrial, classes: list[str], artifacts: Any) -> Diagnostics:
    matrix = record.confusion_matrix(trial, artifacts)
    confusion = np.asarray(matrix, dtype=np.int64) if matrix else None
    if confusion is not None and len(classes) != len(confusion):
        classes = [str(i) for i in range(len(confusion))]  # class names not stored: number them
    info = record.trial_info(trial)
    train, val = info.train_accuracy_curve or [], info.val_accuracy_curve or []
    epochs = min(len(train), len(val))
    curves = pd.DataFrame({"epoch": range(1, epochs + 1), "train_accuracy": train[:epochs], "val_accuracy": val[:epochs]})
    return Diagnostics(trial.number, classes, confusion, curves, record.grad_norms(trial, artifacts) or None)


def per_class(d: Diagnostics) -> Table:
    images = d.confusion.sum(axis=1)
    correct = np.diagonal(d.confusion)
    accuracy = np.divide(correct, images, out=np.full(len(images), np.nan), where=images > 0)
    data = pd.DataFrame({"class": d.classes, "images": images, "correct": correct, "accuracy": accuracy})
    shown = data.assign(accuracy=data["accuracy"].map(pct)).rename(columns={"accuracy": "accuracy (%)"})
    return Table("per_class", f"Per-class validation accuracy of trial {d.trial}", data, shown)
