"""One training step with no host round trip, and its replay as a CUDA graph.

`TrainStep` reads only device tensors (the epoch's permutation, the schedule's step counter) and
writes its results into device tensors (loss and correct sums, gradient norms), so the same call
runs eagerly on a CPU and is captured once per trial on a GPU, where launching a NaiveNet@32 step's
~590 kernels one by one costs more CPU time than the GPU spends on them (issue 11).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from study import augment
from study.config import Config
from study.optim import ScheduledSGD

# Eager steps before capture: the docs' whole-network example uses 3 (cuDNN/cuBLAS choose their
# kernels, the caching allocator and autograd's buffers settle); DDP would need 11, we use none.
WARMUP_STEPS = 3


class TrainStep:
    """Augmentation, forward, loss, backward and update of the next batch, all on the device."""

    def __init__(self, config: Config, forward: Callable[[torch.Tensor], torch.Tensor], optimizer: ScheduledSGD,
                 d: dict[str, torch.Tensor], batch: int, num_classes: int, weights: list[nn.Parameter],
                 autocast: Callable[[], torch.autocast]) -> None:
        self.config, self.forward, self.optimizer, self.autocast = config, forward, optimizer, autocast
        self.images, self.labels, self.num_classes, self.batch = d["train_x"], d["train_y"], num_classes, batch
        self.steps = len(self.labels) // batch  # per epoch; the last partial batch is dropped
        self.constants = augment.train_constants(config, d["mean"], d["std"])
        device = self.labels.device
        self.order = torch.arange(len(self.labels), device=device)  # the epoch's permutation, rewritten in place
        self.positions = torch.arange(batch, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device)
        self.weights = weights
        # the first epoch's gradient norms, one row per step; later steps write the spare last row
        self.grad_norms = torch.zeros(self.steps + 1, len(weights), device=device) if weights else None
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    def begin_epoch(self) -> None:
        """A new permutation of the training split; the sums start at 0 (eager, between graph replays)."""
        self.order.copy_(torch.randperm(len(self.labels), device=self.order.device))
        self.loss_sum.zero_()
        self.correct.zero_()

    def __call__(self) -> None:
        steps_taken = self.optimizer.schedule.steps_taken
        idx = self.order.index_select(0, steps_taken % self.steps * self.batch + self.positions)
        labels = self.labels.index_select(0, idx)
        x, target = augment.train_batch(self.images.index_select(0, idx), labels, self.config, self.num_classes,
                                        self.constants.mean, self.constants.std, self.constants)
        x = x.contiguous(memory_format=self.memory_format)
        with self.autocast():
            out = self.forward(x)
            loss = F.cross_entropy(out, target, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_norms is not None:
            norms = torch.stack([p.grad.detach().float().norm() for p in self.weights])
            self.grad_norms.index_copy_(0, steps_taken.clamp(max=self.steps).view(1), norms.view(1, -1))
        self.optimizer.step()
        self.loss_sum += loss.detach().float()
        self.correct += (out.detach().argmax(1) == labels).sum()

    def epoch_sums(self) -> tuple[float, float]:
        """(mean training loss, training accuracy) of the epoch: the epoch's one host sync."""
        loss_sum, correct = torch.stack([self.loss_sum, self.correct]).tolist()
        return loss_sum / self.steps, correct / (self.steps * self.batch)


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
