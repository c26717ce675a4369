"""One training step with no host round trip, and its replay as a CUDA graph.

`TrainStep` reads only device tensors (the epoch's permutation, the schedule's step counter) and
writes its results into device tensors (loss and correct sums, gradient norms), so the same call
runs eagerly on a CPU and is captured once per run on a GPU, where launching a NaiveNet@32 step's
~590 kernels one by one costs more CPU time than the GPU spends on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from study.config import Config
from study.engine import augment
from study.engine.cache import DeviceData
from study.engine.optim import ScheduledSGD

# Eager steps before capture: the docs' whole-network example uses 3 (cuDNN/cuBLAS choose their
# kernels, the caching allocator and autograd's buffers settle); DDP would need 11, we use none.
WARMUP_STEPS = 3


@dataclass(frozen=True)
class StepParts:
    """What a training step is made of: the members' configurations, the (fused) model's forward over
    one batch per member, the optimizer, the device-resident data and the batch size."""

    configs: list[Config]
    forward: Callable[[list[torch.Tensor]], torch.Tensor]
    optimizer: ScheduledSGD
    data: DeviceData
    batch: int
    num_classes: int
    weights: list[nn.Parameter]  # whose gradient norms the first epoch records; empty: none
    autocast: Callable[[], torch.autocast]
    generators: list[torch.Generator | None]


class TrainStep:
    """Augmentation, forward, loss, backward and update of the next batch of every member, on the device.

    A run of one configuration is the array of one member (the model itself, not fused). Each member
    draws its own batch from its own permutation and augments it with its own settings; the loss is
    the sum of the members' mean losses, so each member's gradient is the one it would get alone.
    """

    def __init__(self, parts: StepParts) -> None:
        configs, data, batch = parts.configs, parts.data, parts.batch
        self.configs, self.forward, self.optimizer, self.autocast = configs, parts.forward, parts.optimizer, parts.autocast
        self.images, self.labels, self.num_classes, self.batch = data.train_x, data.train_y, parts.num_classes, batch
        self.generators = parts.generators  # each member's data order; None: torch's default generator
        self.steps = len(self.labels) // batch  # per epoch; the last partial batch is dropped
        self.constants = [augment.train_constants(config, data.mean, data.std) for config in configs]
        device, k = self.labels.device, len(configs)
        # each member's permutation of the epoch, one row each, rewritten in place
        self.order = torch.arange(len(self.labels), device=device).repeat(k, 1)
        self.positions = torch.arange(batch, device=device)
        self.loss_sum = torch.zeros(k, device=device)
        self.correct = torch.zeros(k, device=device)
        self.weights = weights = parts.weights
        # the first epoch's gradient norms, one [member, weight] block per step; later steps write the spare last one
        self.grad_norms = torch.zeros(self.steps + 1, k, len(weights), device=device) if weights else None
        self.memory_format = torch.channels_last if configs[0].channels_last else torch.contiguous_format

    def begin_epoch(self) -> None:
        """New permutations of the training split; the sums start at 0 (eager, between graph replays)."""
        for row, generator in zip(self.order, self.generators):
            row.copy_(torch.randperm(len(self.labels), device=row.device, generator=generator))
        self.loss_sum.zero_()
        self.correct.zero_()

    def __call__(self) -> None:
        steps_taken = self.optimizer.schedule.steps_taken
        k = len(self.configs)
        idx = self.order.index_select(1, steps_taken % self.steps * self.batch + self.positions).view(-1)
        labels = self.labels.index_select(0, idx).view(k, self.batch)
        images = self.images.index_select(0, idx).view(k, self.batch, *self.images.shape[1:])
        xs, targets = [], []
        for member, (config, constants) in enumerate(zip(self.configs, self.constants)):
            x, target = augment.train_batch(images[member], labels[member], config, self.num_classes, constants)
            xs.append(x.contiguous(memory_format=self.memory_format))
            targets.append(target)
        with self.autocast():
            out = self.forward(xs)
            losses = torch.stack([F.cross_entropy(out[member], target, label_smoothing=config.label_smoothing)
                                  for member, (config, target) in enumerate(zip(self.configs, targets))])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.grad_norms is not None:
            # member m owns the m-th block of every weight's first dimension (study/engine/models/fused.py)
            norms = torch.stack([torch.stack([p.grad.detach().float().unflatten(0, (k, -1))[member].norm()
                                              for p in self.weights]) for member in range(k)])
            self.grad_norms.index_copy_(0, steps_taken.clamp(max=self.steps).view(1), norms.unsqueeze(0))
        self.optimizer.step()
        self.loss_sum += losses.detach().float()
        self.correct += (out.detach().argmax(2) == labels).sum(1)

    def epoch_sums(self) -> tuple[list[float], list[float]]:
        """Each member's (mean training loss, training accuracy) of the epoch: the epoch's one host sync."""
        k = len(self.configs)
        sums = torch.cat([self.loss_sum, self.correct]).tolist()
        return [s / self.steps for s in sums[:k]], [c / (self.steps * self.batch) for c in sums[k:]]


class Replay:
    """Runs a step: eagerly on CPU; on CUDA, WARMUP_STEPS eager steps on a side stream, then the step
    captured once as a CUDA graph and replayed. Where capture raises, it stays eager and says why."""

    def __init__(self, step: Callable[[], None], device: torch.device, graph: bool = True) -> None:
        self.step = step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self.seconds = 0.0  # warm-up and capture, the graph's one-off cost
        if device.type != "cuda":
            self.mode, self.reason = "eager", f"CUDA graphs need a CUDA device, not {device.type}"
        elif not graph:
            self.mode, self.reason = "eager", "CUDA graphs turned off by the caller"
        else:
            self.mode, self.reason = "warmup", ""
            self.side = torch.cuda.Stream(device)

    def step_mode(self) -> tuple[str, str]:
        """("graph" or "eager", why eager); the steps so far ran this way."""
        if self.mode == "warmup":
            return "eager", f"still in the {WARMUP_STEPS} eager warm-up steps before capture"
        return self.mode, self.reason

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.mode == "eager":
            self.step()
        elif self.warm < WARMUP_STEPS:
            self._warm_up()
        else:
            self._capture()

    def _warm_up(self) -> None:
        start = time.perf_counter()
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            self.step()
        torch.cuda.current_stream().wait_stream(self.side)
        self.warm += 1
        self.seconds += time.perf_counter() - start

    def _capture(self) -> None:
        """Capture the step (capturing runs nothing), then replay it as this call's step."""
        start = time.perf_counter()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # Optuna's heartbeat thread
                self.step()
        except Exception as exc:  # noqa: BLE001 - any op that cannot be captured: stay correct, only slower
            torch.cuda.synchronize()
            self.mode, self.reason = "eager", f"capture failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            self.seconds += time.perf_counter() - start
            self.step()
            return
        self.graph, self.mode = graph, "graph"
        graph.replay()
        torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
