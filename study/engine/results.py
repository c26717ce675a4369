"""What training returns and how its caller steers it: each member's metrics, how it ended, and the
callbacks that see every step, every epoch and every member's result without knowing the engine."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Metrics:
    """What `train` measures of one member, filled in as it goes (a study stores them as the trial's
    attributes: study/store/record.py). Accuracies are fractions in [0, 1]; None is not measured (and not stored)."""

    config: dict[str, Any] = field(default_factory=dict)  # Config.to_dict(): a space's own settings among them
    seed: int | None = None
    device: str | None = None
    precision: str | None = None
    params: int | None = None
    flops_per_image: int | None = None
    train_images: int | None = None
    val_images: int | None = None
    val_accuracy_curve: list[float] = field(default_factory=list)
    val_loss_curve: list[float] = field(default_factory=list)
    train_accuracy_curve: list[float] = field(default_factory=list)
    train_loss_curve: list[float] = field(default_factory=list)
    seconds_per_epoch: list[float] = field(default_factory=list)
    epochs_trained: int | None = None
    val_accuracy: float | None = None
    images_per_second: float | None = None
    seconds: float | None = None
    peak_memory_mb: float | None = None
    capture_seconds: float | None = None
    step_mode: str | None = None
    step_mode_reason: str | None = None
    resumed_from_epoch: int | None = None
    test_accuracy: float | None = None  # only `train(test=True)`: the final scoring
    test_loss: float | None = None
    array_size: int | None = None  # members trained as one fused model with this one (study/engine/array.py)
    # may be in the artifact store instead: read them with `confusion_matrix` and `grad_norms`
    confusion_matrix: list[list[int]] | None = None
    grad_norms: dict[str, list[float]] | None = None


METRIC_FIELDS = frozenset(f.name for f in dataclasses.fields(Metrics))


def as_dict(metrics: Metrics) -> dict[str, Any]:
    """The measured metrics (None left out), as stored and as `study train --json` prints them."""
    return {k: v for k, v in dataclasses.asdict(metrics).items() if v is not None}


def metrics_from(stored: dict[str, Any]) -> Metrics:
    """Metrics from their stored form (a checkpoint's); names of another release are dropped."""
    return Metrics(**{k: v for k, v in stored.items() if k in METRIC_FIELDS})


class Diverged(Exception):
    """The training loss became NaN or infinite."""


class Stop(Exception):
    """Raised by a `Callbacks.result` callback: its member ends after this epoch (pruned), the others go
    on. `train` of one configuration raises it again once the run has ended; its text says why."""


class Ending(str, enum.Enum):
    """How a member ended; the values are what a checkpoint keeps."""

    COMPLETE = "complete"
    PRUNED = "pruned"  # a callback stopped it (Stop)
    DIVERGED = "diverged"  # its training loss became NaN or infinite


@dataclass(frozen=True)
class End:
    """A member that ended early, and why."""

    how: Ending
    reason: str


@dataclass(frozen=True)
class Member:
    """One member's metrics and how it ended, with why where it ended early."""

    metrics: Metrics
    status: Ending = Ending.COMPLETE
    reason: str | None = None


@dataclass(frozen=True)
class EpochResult:
    """One member's result after one epoch: what a caller reports, and decides to stop on."""

    member: int  # its index in the configurations trained together
    epoch: int  # epochs trained, from 1
    val_accuracy: float
    metrics: Metrics  # the member's metrics so far; the callback reads them, the engine goes on filling them


StepCallback = Callable[[int, int, int], None]  # (epoch, step, steps per epoch) after each step


@dataclass(frozen=True)
class Callbacks:
    """What a caller sees of a run. All run on the host between device work that already synchronised,
    except `step`, which runs between steps and must not read device tensors (a CUDA graph replays them)."""

    step: StepCallback | None = None
    epoch: Callable[[list[Metrics]], None] | None = None  # every member's metrics after each epoch's checkpoint
    result: Callable[[EpochResult], None] | None = None  # each member still going, each epoch; may raise Stop
    end: Callable[[int, Metrics], None] | None = None  # each member's last metrics, however the run ends
