"""`train(config, trial=None)`: one configuration from data to metrics, with or without Optuna."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import logging
import math
import resource
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from study.config import Config
from study.engine import augment, data, datasets, models
from study.engine.models.fused import Fused, fuse, members_forward
from study.engine.optim import Members, Schedule, ScheduledSGD
from study.engine.step import Replay, TrainStep
from study.errors import UserError
from study.store import record
from study.store.record import Metrics

# The seed's OneCycle: peak at 5x lr after 30% of the steps, from lr/25... to peak/1e4, cosine.
ONECYCLE_PEAK = 5.0
ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV = 25.0
ONECYCLE_FINAL_DIV = 1e4
EVAL_BATCH = 500

StepCallback = Callable[[int, int, int], None]  # (epoch, step, steps per epoch) after each step
EpochCallback = Callable[[Metrics], None]  # one epoch's metrics
MembersEpochCallback = Callable[[list[Metrics]], None]  # one epoch's metrics of every member
End = tuple[str, str] | None  # how a member stopped early: ("diverged" or "pruned", why); None: it did not


class Diverged(Exception):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for but no CUDA device is visible; use --device cpu or auto")
    return torch.device(name)


@functools.lru_cache(maxsize=2)
def _device_data(config: Config, device: torch.device, test: bool) -> dict[str, torch.Tensor]:
    """The split's images (uint8) and labels on the device, built once per process and split."""
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
    return {k: v.to(device) for k, v in out.items()}


def device_data(config: Config, device: torch.device, test: bool = False) -> dict[str, torch.Tensor]:
    # The cache key holds only what selects the data, so every trial of a study shares one copy.
    key = Config(
        dataset=config.dataset, data_dir=config.data_dir, image_size=config.image_size, val_fraction=config.val_fraction,
        data_fraction=config.data_fraction, split_seed=config.split_seed,
    )
    return _device_data(key, device, test)


clear_device_data = _device_data.cache_clear  # forget the cached splits: the next run loads its data afresh


def num_classes(config: Config) -> int:
    """The classes a model of `config` tells apart: its num_classes, else the data's."""
    found = datasets.load(config).num_classes
    if config.num_classes and config.num_classes < found:
        raise UserError(f"num_classes={config.num_classes} is fewer than the {found} classes of {config.dataset}; "
                        "leave it 0 (from the data)")
    return config.num_classes or found


def flops_per_image(model: nn.Module, resolution: int, device: torch.device) -> int:
    """Forward FLOPs (2 per multiply-add) of one image, counted by torch.utils.flop_counter."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, resolution, resolution, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


@functools.cache
def keep_freed_memory() -> None:
    """Make glibc's malloc reuse freed tensor memory instead of returning it to the OS every step.

    glibc serves allocations above 32 MB (every activation at 128 px) with a fresh mmap and unmaps
    it on free, so each step page-faults and zeroes its activations again: about 20% of the CPU time
    at 128 px (docs/performance.md). PyTorch has no caching allocator for CPU memory, so this turns
    off malloc's mmap and heap trimming; the process keeps its peak heap for reuse.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (macOS, musl): their allocators are left as they are
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt's parameter numbers in <malloc.h>
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, -1)  # read as SIZE_MAX: never trim


@functools.cache  # asked on every autocast entry: each step and each evaluation batch
def bf16_native(device: torch.device) -> bool:
    """bf16 GPUs, and CPUs with AVX512-BF16 or AMX; elsewhere bf16 is emulated and slower than fp32
    (NaiveNet at 32 px on an AVX2-only CPU: 38 images/s in bf16 against 481 in fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()  # oneDNN's own check; torch has no public one


def precision(config: Config, device: torch.device) -> str:
    """The precision a run uses: `config.precision`, with auto resolved for `device`."""
    if config.precision != "auto":
        return config.precision
    return "bf16" if bf16_native(device) else "fp32"


def _autocast(config: Config, device: torch.device, cache: bool = True) -> torch.autocast:
    # a training step uses each weight once, so caching its bf16 copy buys nothing there; and a CUDA
    # graph must not capture the cache (PyTorch's CUDA graph notes: cache_enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(config, device) == "bf16",
                          cache_enabled=cache)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: Config,
             mean: torch.Tensor, std: torch.Tensor, device: torch.device,
             num_classes: int) -> list[tuple[float, float, list[list[int]]]]:
    """Each member's (accuracy, mean cross-entropy, confusion matrix with rows = true class) over a
    whole split; one member unless `model` is a fused array."""
    k = model.members if isinstance(model, Fused) else 1
    model.eval()
    confusion = torch.zeros(k, num_classes * num_classes, dtype=torch.long, device=device)
    loss = torch.zeros(k, device=device)
    with torch.no_grad(), _autocast(config, device):
        for i in range(0, len(labels), EVAL_BATCH):
            x = augment.eval_batch(images[i:i + EVAL_BATCH], config.resolution, mean, std)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = members_forward(model, [x] * k).float()
            y = labels[i:i + EVAL_BATCH]
            confusion += torch.stack([torch.bincount(y * num_classes + member.argmax(1), minlength=num_classes**2)
                                      for member in out])
            loss += torch.stack([F.cross_entropy(member, y, reduction="sum") for member in out])
    model.train()
    matrices = confusion.view(k, num_classes, num_classes)
    n = len(labels)
    correct, loss_sums = matrices.diagonal(dim1=1, dim2=2).sum(1).tolist(), loss.tolist()
    return [(c / n, s / n, m) for c, s, m in zip(correct, loss_sums, matrices.tolist())]


def optimizer_and_schedule(configs: list[Config], model: nn.Module, total_steps: int,
                           device: torch.device) -> tuple[ScheduledSGD, Schedule]:
    """SGD with momentum and weight decay, its lr (and OneCycle's momentum) precomputed for every step;
    for a fused array, each member's lr, momentum and weight decay."""
    config = configs[0]
    if config.schedule == "onecycle":
        def make(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=ONECYCLE_PEAK * config.lr, total_steps=total_steps,
                pct_start=ONECYCLE_PCT_START, div_factor=ONECYCLE_DIV, final_div_factor=ONECYCLE_FINAL_DIV,
                anneal_strategy="cos",
            )
    else:
        def make(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if len(configs) == 1:
        schedule = Schedule.from_torch(make, config.lr, config.momentum, total_steps, device)
        return ScheduledSGD(model.parameters(), schedule, config.weight_decay), schedule
    # Members scale member 0's schedule: both schedules' lr is proportional to the lr they start from.
    # The cosine schedule's momentum is constant, so it is built as 1 and scaled to each member's own;
    # OneCycle cycles the same momentum for every member whatever config.momentum says, as in a single run.
    schedule = Schedule.from_torch(make, config.lr, 1.0, total_steps, device)
    members = Members(
        lr_scale=torch.tensor([c.lr / config.lr for c in configs]),
        momentum_scale=torch.tensor([1.0 if config.schedule == "onecycle" else c.momentum for c in configs]),
        weight_decay=torch.tensor([c.weight_decay for c in configs]),
    )
    return ScheduledSGD(model.parameters(), schedule, 0.0, members), schedule


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS


def _weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Conv and linear weights: one per parameterised layer."""
    return [(name.removesuffix(".weight"), p) for name, p in model.named_parameters() if p.ndim > 1]


def _save(path: Path, epoch: int, train_seconds: float, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: Any, metrics: list[Metrics], generators: list[torch.Generator | None] = (),
          ends: list[End] = ()) -> None:
    """Everything needed to go on after `epoch`, written atomically (a kill mid-write keeps the old
    file; a failed write, e.g. a full disk, leaves no partial file behind). `metrics` holds one entry
    per member; an array also keeps each member's data-order generator and how its stopped members
    ended (their updates stay masked through the optimizer's state)."""
    state = {
        "epoch": epoch, "train_seconds": train_seconds, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(), "metrics": json.dumps([record.as_dict(m) for m in metrics]),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [g.get_state() for g in generators if g is not None], "ends": list(ends),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            metrics: list[Metrics], generators: list[torch.Generator | None],
            ends: list[End], epochs: int) -> tuple[int, float] | None:
    """Load a checkpoint written by `_save` (tensors and plain values only) into the members' `metrics`,
    `generators` and `ends`; returns (epoch, train seconds).

    A checkpoint that cannot be read, that was written for other configurations than the members'
    `config`, or whose contents do not fit them (other weight shapes, missing keys, values of the
    wrong type) is deleted and logged, and None returned: loading may have changed the model,
    optimizer or random state before it failed, so the caller starts over from a fresh run.
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
        saved = json.loads(state["metrics"])
        saved = [record.metrics_from(m) for m in ([saved] if isinstance(saved, dict) else saved)]
    except Exception as exc:
        return _discard(path, f"it cannot be read ({type(exc).__name__})")
    if [m.config for m in saved] != json.loads(json.dumps([m.config for m in metrics])):
        return _discard(path, "it was written for another configuration")
    epoch, seconds = state.get("epoch"), state.get("train_seconds")
    if type(epoch) is not int or not 1 <= epoch <= epochs or type(seconds) not in (int, float) or not seconds >= 0:
        return _discard(path, f"its epoch ({epoch!r}) or training seconds ({seconds!r}) are not those of this run")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        for generator, generator_state in zip([g for g in generators if g is not None], state.get("generators", [])):
            generator.set_state(generator_state)
        for k, end in enumerate(state.get("ends", [])):
            ends[k] = tuple(end) if end else None
    except Exception as exc:
        return _discard(path, f"its contents do not fit this run ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    for k, member_saved in enumerate(saved):
        metrics[k] = dataclasses.replace(member_saved, resumed_from_epoch=epoch)
    return epoch, float(seconds)


def _discard(path: Path, why: str) -> None:
    logging.getLogger(__name__).warning("checkpoint %s discarded: %s; training from the start", path, why)
    path.unlink(missing_ok=True)


def train(
    config: Config,
    trial: Any = None,
    *,
    test: bool = False,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    artifact_store: Any = None,
    checkpoint: Path | None = None,
    cuda_graph: bool = True,
) -> Metrics:
    """Train `config` and return its metrics (accuracies are fractions in [0, 1]).

    With an Optuna `trial`, validation accuracy is reported after every epoch, the pruner may stop
    the run (optuna.TrialPruned), and the metrics so far are stored as the trial's user attributes
    however it ends (big ones in `artifact_store` when given). `test=True` also scores the test
    set, kept apart as `test_accuracy`. With `checkpoint`, the run saves its state there after every
    epoch and, when the file exists, resumes from it instead of starting over. On CUDA the training
    step is replayed as a CUDA graph unless `cuda_graph` is False (`step_mode` says what ran).
    A NaN or infinite training loss raises Diverged.
    """
    (metrics,), (end,) = train_members(
        [config], [trial], test=test, on_step=on_step, on_epoch=on_epoch and (lambda members: on_epoch(members[0])),
        artifact_store=artifact_store, checkpoint=checkpoint, cuda_graph=cuda_graph,
    )
    if end is None:
        return metrics
    kind, reason = end
    raise Diverged(reason) if kind == "diverged" else optuna.TrialPruned(reason)


def train_members(
    configs: list[Config],
    trials: list[Any],
    *,
    test: bool = False,
    on_step: StepCallback | None = None,
    on_epoch: MembersEpochCallback | None = None,
    artifact_store: Any = None,
    checkpoint: Path | None = None,
    cuda_graph: bool = True,
) -> tuple[list[Metrics], list[End]]:
    """Train `configs` as one array, each member's metrics and how it ended (None: it trained to the end).

    One configuration trains its model as it is; several, which must differ only in settings that
    fusion keeps per member (study/engine/array.py checks), train as one fused model (study/engine/models/fused.py).
    A member whose training loss turns NaN or infinite ends as diverged, one whose trial the pruner
    stops as pruned; either takes no more updates while the others go on, and the array ends when no
    member is left. Arguments as `train`'s, one trial (or None) per member; `on_epoch` gets every
    member's metrics.
    """
    run = _Run(configs, test, cuda_graph)
    if checkpoint is not None and checkpoint.is_file():
        resumed = _resume(checkpoint, run.model, run.optimizer, run.scheduler, run.metrics, run.generators, run.ends,
                          configs[0].epochs)
        if resumed is None:  # discarded, perhaps after it changed part of the run: start from a fresh one
            del run
            run = _Run(configs, test, cuda_graph)
        else:
            run.first_epoch, run.train_seconds = resumed
    try:
        for epoch in range(run.first_epoch, configs[0].epochs):
            if all(run.ends):
                break
            if not run.epoch(epoch, trials, on_step):
                break  # every member diverged in this epoch: nothing to score, save or show
            if checkpoint is not None:
                _save(checkpoint, epoch + 1, run.train_seconds, run.model, run.optimizer, run.scheduler, run.metrics,
                      run.generators, run.ends)
            if on_epoch:
                on_epoch(run.metrics)
        if test and not all(run.ends):
            run.score_test()
        for member in run.metrics:
            member.seconds = time.perf_counter() - run.start
        return run.metrics, run.ends
    finally:
        for trial, member in zip(trials, run.metrics):
            if trial is not None:
                record.store_metrics(trial, member, artifact_store)


class _Run:
    """One run's (or fused array's) model, optimizer, step and data, and each member's metrics."""

    def __init__(self, configs: list[Config], test: bool, cuda_graph: bool) -> None:
        self.start = time.perf_counter()
        self.config = config = configs[0]  # for every setting the members share
        self.device = device = resolve_device(config.device)
        if device.type == "cpu":
            keep_freed_memory()
        self.d = d = device_data(config, device, test)
        self.num_classes = num_classes(config)
        built, self.generators = _build_members(configs, self.num_classes, device)
        if models.user.is_user_model(config.model):
            models.user.check_output(built[0], config, self.num_classes)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = (built[0] if len(built) == 1 else fuse(built)).to(device, memory_format=memory_format)
        compiled = torch.compile(self.model) if config.compile else self.model  # evaluation stays eager
        self.batch = min(config.batch_size, len(d["train_y"]))
        self.steps = len(d["train_y"]) // self.batch  # the last partial batch is dropped: a batch of one breaks BatchNorm
        self.optimizer, self.scheduler = optimizer_and_schedule(configs, self.model, config.epochs * self.steps, device)
        self.metrics = _array_metrics(configs, device, built[0].to(device), d)
        body = self.model.body if isinstance(self.model, Fused) else self.model
        self.weights = _weights(body) if config.record_grad_norms else []
        self.ends: list[End] = [None] * len(configs)
        self.train_seconds, self.first_epoch = 0.0, 0
        self.step = TrainStep(configs, functools.partial(members_forward, compiled), self.optimizer, d, self.batch,
                              self.num_classes, [p for _, p in self.weights],
                              functools.partial(_autocast, config, device, cache=False), self.generators)
        self.replay = Replay(self.step, device, cuda_graph)

    def end(self, member: int, kind: str, reason: str) -> None:
        self.ends[member] = (kind, reason)
        if self.optimizer.members is not None:  # a single run just stops
            self.optimizer.stop(member)

    def epoch(self, epoch: int, trials: list[Any], on_step: StepCallback | None) -> bool:
        """Train one epoch, then score every member still going on the validation split; False when
        every member diverged in it."""
        epoch_start = time.perf_counter()
        train_losses, train_accuracies = run_epoch(self.replay, self.step, epoch, on_step)
        self.train_seconds += time.perf_counter() - epoch_start
        for k, loss in enumerate(train_losses):
            if self.ends[k] is None and not math.isfinite(loss):
                self.end(k, "diverged", f"training loss became {loss} in epoch {epoch + 1}: lower lr or weight_decay")
        if all(self.ends):
            return False
        if self.weights and epoch == 0:
            for k, member in enumerate(self.metrics):
                per_layer = self.step.grad_norms[:self.steps, k].T.tolist()
                member.grad_norms = {name: norms for (name, _), norms in zip(self.weights, per_layer)}
        d = self.d
        scores = evaluate(self.model, d["val_x"], d["val_y"], self.config, d["mean"], d["std"], self.device,
                          self.num_classes)
        for k, (member, trial, (val_acc, val_loss, confusion)) in enumerate(zip(self.metrics, trials, scores)):
            if self.ends[k] is not None:
                continue
            member.train_loss_curve.append(train_losses[k])
            member.train_accuracy_curve.append(train_accuracies[k])
            member.val_accuracy_curve.append(val_acc)
            member.val_loss_curve.append(val_loss)
            member.seconds_per_epoch.append(time.perf_counter() - epoch_start)
            member.step_mode, member.step_mode_reason = self.replay.step_mode()
            member.epochs_trained, member.val_accuracy, member.confusion_matrix = epoch + 1, val_acc, confusion
            member.images_per_second = (epoch + 1) * self.steps * self.batch / self.train_seconds
            member.seconds, member.peak_memory_mb = time.perf_counter() - self.start, _peak_memory_mb(self.device)
            member.capture_seconds = self.replay.seconds
            if trial is not None:
                trial.report(val_acc, epoch + 1)
                if trial.should_prune():
                    self.end(k, "pruned", f"pruned after epoch {epoch + 1} at val_accuracy {val_acc:.4f}")
        return True

    def score_test(self) -> None:
        d = self.d
        scores = evaluate(self.model, d["test_x"], d["test_y"], self.config, d["mean"], d["std"], self.device,
                          self.num_classes)
        for member, (test_acc, test_loss, _), ended in zip(self.metrics, scores, self.ends):
            if ended is None:
                member.test_accuracy, member.test_loss = test_acc, test_loss


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


def run_epoch(replay: Replay, step: TrainStep, epoch: int,
              on_step: StepCallback | None = None) -> tuple[list[float], list[float]]:
    """One pass over new permutations of the training split: each member's (mean loss, accuracy), one host sync."""
    step.begin_epoch()
    for i in range(step.steps):
        replay()
        if on_step:
            on_step(epoch, i, step.steps)
    return step.epoch_sums()


def _first_metrics(config: Config, device: torch.device, model: nn.Module, d: dict[str, torch.Tensor]) -> Metrics:
    """What is known before training; the curves grow by one value per epoch."""
    return Metrics(
        config=config.to_dict(), seed=config.seed,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        precision=precision(config, device), params=sum(p.numel() for p in model.parameters()),
        flops_per_image=flops_per_image(model, config.resolution, device),
        train_images=len(d["train_y"]), val_images=len(d["val_y"]),
    )


def _array_metrics(configs: list[Config], device: torch.device, model: nn.Module,
                   d: dict[str, torch.Tensor]) -> list[Metrics]:
    """Each member's first metrics; an array's also say how many members trained together."""
    metrics = [_first_metrics(c, device, model, d) for c in configs]
    for m in metrics:
        m.array_size = len(configs) if len(configs) > 1 else None
    return metrics
