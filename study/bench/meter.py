"""How the speed bench times training: its scale (warm-up, windows, repeats) and the meter that reads it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BenchScale:
    """How much the speed bench measures; --quick keeps the whole run under 5 minutes on 2 cores."""

    warmup: int  # steps before timing: worker start-up, oneDNN/cuDNN kernel choice, CUDA graph capture
    repeats: int  # timed windows per figure; the median is reported
    window: float  # seconds of training steps per timed window (at least one step)
    overhead_trials: int
    overhead_epochs: int


QUICK = BenchScale(
    warmup=2, repeats=3, window=0.3,
    overhead_trials=2, overhead_epochs=2,
)
# Full: windows of 2 s (on 2 AVX2 cores, 4-8 NaiveNet@32 steps, about what the step-count windows held).
# Overhead trials of 15 epochs last 30 s or more (the target's condition).
FULL = BenchScale(
    warmup=5, repeats=5, window=2.0,
    overhead_trials=3, overhead_epochs=15,
)


class Measured(Exception):
    """Raised from a step callback once every window is timed, to end the training run early."""


class Meter:
    """Times `repeats` windows of at least `window` seconds of training steps, after `warmup` steps.

    The step that follows an epoch's evaluation is not timed, so a window may span epochs (a GPU runs
    a whole epoch of the shared subset in well under a second). On CUDA the device is synchronised
    only where a window or an epoch's steps end, so steps stay asynchronous in between.
    """

    def __init__(self, device: torch.device, scale: BenchScale, batch: int) -> None:
        self.device, self.batch = device, batch
        self.warmup, self.window, self.repeats = scale.warmup, scale.window, scale.repeats
        self.seconds: list[float] = []
        self.images: list[int] = []
        self.steps = 0
        self.mark: float | None = None
        self.elapsed, self.counted = 0.0, 0  # the open window's timed seconds and steps

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def tick(self, epoch_starts: bool = False, epoch_ends: bool = False) -> None:
        """Call after every step, saying whether it was the first or the last of an epoch."""
        self.steps += 1
        if self.steps < self.warmup:
            return
        if epoch_starts or self.mark is None:
            self.mark = self._now()
            return
        self.counted += 1
        if not epoch_ends and self.elapsed + time.perf_counter() - self.mark < self.window:
            return
        now = self._now()
        self.elapsed += now - self.mark
        self.mark = None if epoch_ends else now
        if self.elapsed >= self.window:
            self.seconds.append(self.elapsed)
            self.images.append(self.counted * self.batch)
            self.elapsed, self.counted = 0.0, 0
            if len(self.seconds) == self.repeats:
                raise Measured

    def images_per_second(self) -> float:
        return statistics.median(i / s for i, s in zip(self.images, self.seconds))
