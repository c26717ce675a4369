"""One run (or fused array) set up from its configurations: model, optimizer, step and data, each
member's metrics; it trains and scores one epoch at a time."""

from __future__ import annotations

import functools
import math
import time

import torch
from torch import nn

from study.config import Config
from study.engine import evaluate, models
from study.engine.cache import DeviceData, device_data, num_classes
from study.engine.checkpoint import State
from study.engine.device import autocast, device_name, keep_freed_memory, peak_memory_mb, precision, resolve_device
from study.engine.flops import flops_per_image
from study.engine.models.fused import Fused, fuse, members_forward
from study.engine.optim import optimizer_and_schedule
from study.engine.results import Callbacks, End, Ending, EpochResult, Metrics, StepCallback, Stop
from study.engine.step import Replay, StepParts, TrainStep


class Run:
    """One run's (or fused array's) data, step and its replay, and the `state` a checkpoint keeps."""

    def __init__(self, configs: list[Config], test: bool, cuda_graph: bool) -> None:
        self.start = time.perf_counter()
        self.config = config = configs[0]  # for every setting the members share
        self.device = device = resolve_device(config.device)
        if device.type == "cpu":
            keep_freed_memory()
        self.data = data = device_data(config, device, test)
        self.num_classes = num_classes(config)
        built, generators = _build_members(configs, self.num_classes, device)
        if models.user.is_user_model(config.model):
            models.user.check_output(built[0], config, self.num_classes)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        model = (built[0] if len(built) == 1 else fuse(built)).to(device, memory_format=memory_format)
        compiled = torch.compile(model) if config.compile else model  # evaluation stays eager
        batch = min(config.batch_size, len(data.train_y))
        steps = len(data.train_y) // batch  # the last partial batch is dropped: a batch of one breaks BatchNorm
        optimizer, scheduler = optimizer_and_schedule(configs, model, config.epochs * steps, device)
        metrics = _array_metrics(configs, device, built[0].to(device), data)
        self.state = State(model, optimizer, scheduler, metrics, generators, [None] * len(configs))
        body = model.body if isinstance(model, Fused) else model
        self.weights = _weights(body) if config.record_grad_norms else []
        self.step = TrainStep(StepParts(
            configs, functools.partial(members_forward, compiled), optimizer, data, batch, self.num_classes,
            [p for _, p in self.weights], functools.partial(autocast, config, device, cache=False), generators))
        self.replay = Replay(self.step, device, cuda_graph)

    def end(self, member: int, end: End) -> None:
        self.state.ends[member] = end
        if self.state.optimizer.members is not None:  # a single run just stops
            self.state.optimizer.stop(member)

    def epoch(self, epoch: int, callbacks: Callbacks) -> bool:
        """Train one epoch, then score every member still going on the validation split and show each
        its result; False when every member diverged in it."""
        epoch_start = time.perf_counter()
        train_losses, train_accuracies = run_epoch(self.replay, self.step, epoch, callbacks.step)
        self.state.train_seconds += time.perf_counter() - epoch_start
        for k, loss in enumerate(train_losses):
            if self.state.ends[k] is None and not math.isfinite(loss):
                self.end(k, End(Ending.DIVERGED,
                                f"training loss became {loss} in epoch {epoch + 1}: lower lr or weight_decay"))
        if all(self.state.ends):
            return False
        if self.weights and epoch == 0:
            for k, member in enumerate(self.state.metrics):
                per_layer = self.step.grad_norms[:self.step.steps, k].T.tolist()
                member.grad_norms = {name: norms for (name, _), norms in zip(self.weights, per_layer)}
        data = self.data
        scores = evaluate.evaluate(self.state.model, data.val_x, data.val_y, self.config, data.mean, data.std,
                                   self.device, self.num_classes)
        for k, (member, (val_acc, val_loss, confusion)) in enumerate(zip(self.state.metrics, scores)):
            if self.state.ends[k] is not None:
                continue
            member.train_loss_curve.append(train_losses[k])
            member.train_accuracy_curve.append(train_accuracies[k])
            member.val_accuracy_curve.append(val_acc)
            member.val_loss_curve.append(val_loss)
            member.seconds_per_epoch.append(time.perf_counter() - epoch_start)
            member.epochs_trained, member.val_accuracy, member.confusion_matrix = epoch + 1, val_acc, confusion
            self._measure(member)
            self._show(callbacks, EpochResult(k, epoch + 1, val_acc, member))
        return True

    def _measure(self, member: Metrics) -> None:
        """How the member's epochs ran so far: step mode, speed, time and memory."""
        member.step_mode, member.step_mode_reason = self.replay.step_mode()
        member.images_per_second = member.epochs_trained * self.step.steps * self.step.batch / self.state.train_seconds
        member.seconds, member.peak_memory_mb = time.perf_counter() - self.start, peak_memory_mb(self.device)
        member.capture_seconds = self.replay.seconds

    def _show(self, callbacks: Callbacks, result: EpochResult) -> None:
        if callbacks.result is None:
            return
        try:
            callbacks.result(result)
        except Stop as stop:
            self.end(result.member, End(Ending.PRUNED, str(stop)))

    def score_test(self) -> None:
        data = self.data
        scores = evaluate.evaluate(self.state.model, data.test_x, data.test_y, self.config, data.mean, data.std,
                                   self.device, self.num_classes)
        for member, (test_acc, test_loss, _), ended in zip(self.state.metrics, scores, self.state.ends):
            if ended is None:
                member.test_accuracy, member.test_loss = test_acc, test_loss


def run_epoch(replay: Replay, step: TrainStep, epoch: int,
              on_step: StepCallback | None = None) -> tuple[list[float], list[float]]:
    """One pass over new permutations of the training split: each member's (mean loss, accuracy), one host sync."""
    step.begin_epoch()
    for i in range(step.steps):
        replay()
        if on_step:
            on_step(epoch, i, step.steps)
    return step.epoch_sums()


def _weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv and linear weights: one per parameterised layer."""
    return [(name.removesuffix(".weight"), p) for name, p in model.named_parameters() if p.ndim > 1]


def _build_members(configs: list[Config], num_classes: int,
                   device: torch.device) -> tuple[list[nn.Module], list[torch.Generator | None]]:
    """Each member's model, built on the CPU right after seeding torch with its seed, as a single run
    builds it. A single run draws its data order from torch's default generator; each member of an
    array gets its own, started where that default one stands after the member's build (its data
    order is then the one it would have alone, as long as no augmentation draws in between)."""
    built, generators = [], []
    for config in configs:
        torch.manual_seed(config.seed)
        built.append(models.build(config, num_classes))
        generators.append(_copy_default_generator(device) if len(configs) > 1 else None)
    return built, generators


def _copy_default_generator(device: torch.device) -> torch.Generator:
    generator = torch.Generator(device)
    generator.set_state(torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device))
    return generator


def _array_metrics(configs: list[Config], device: torch.device, model: nn.Module, data: DeviceData) -> list[Metrics]:
    """What is known of each member before training (the curves grow by one value per epoch); an
    array's also say how many members trained together."""
    flops = flops_per_image(model, configs[0].resolution, device)
    return [Metrics(
        config=config.to_dict(), seed=config.seed, device=device_name(device), precision=precision(config, device),
        params=sum(p.numel() for p in model.parameters()), flops_per_image=flops,
        train_images=len(data.train_y), val_images=len(data.val_y), array_size=len(configs) if len(configs) > 1 else None,
    ) for config in configs]
