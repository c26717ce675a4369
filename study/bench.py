"""`python -m study bench`: our training speed against the seed's way, measured side by side.

Three parts, all on the current machine in one run (`--only search`: study.search_bench instead):
  throughput   training images/s of each model and resolution, the seed's way (study.seedway) and
               ours (study.train.train itself, so the bench measures what users get); warm-up
               steps are excluded and the median of several timed windows is reported
  augmentation images/s of study.augment.train_batch alone, and its share of one training step
  overhead     the share of a trial's wall time spent outside its training and evaluation epochs,
               and the study's one-time setup
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from study import augment, data, models, runner, search_bench, seedway
from study import space as spaces
from study import train as training
from study.config import Config
from study.errors import UserError

ROWS = (("naivenet", 32), ("naivenet", 128), ("resnet18", 32))
SEARCH_SPACE = Path(__file__).resolve().parents[1] / "spaces" / "naivenet32_cifar10.py"


@dataclass(frozen=True)
class Budget:
    """How much the bench measures; --quick keeps the whole run under 5 minutes on 2 cores."""

    warmup: int  # steps before timing: worker start-up, oneDNN/cuDNN kernel choice, allocator growth
    repeats: int  # timed windows per figure; the median is reported
    window: dict[str, int]  # training steps per timed window, by row (model_resolution)
    aug_batches: int  # augmentation calls per timed window
    overhead_trials: int
    overhead_epochs: int


QUICK = Budget(
    warmup=2, repeats=3, window={"naivenet_32": 4, "naivenet_128": 1, "resnet18_32": 1}, aug_batches=5,
    overhead_trials=2, overhead_epochs=2,
)
# Full: overhead trials of 15 epochs last 30 s or more (the target's condition).
FULL = Budget(
    warmup=3, repeats=5, window={"naivenet_32": 6, "naivenet_128": 3, "resnet18_32": 3}, aug_batches=20,
    overhead_trials=3, overhead_epochs=15,
)


class _Measured(Exception):
    """Raised from a step callback once every window is timed, to end the training run early."""


class Meter:
    """Times `repeats` windows of `window` steps after `warmup` steps; a window never spans an epoch end."""

    def __init__(self, device: torch.device, budget: Budget, config: Config) -> None:
        self.device, self.batch = device, config.batch_size
        self.warmup, self.window, self.repeats = budget.warmup, budget.window[row_key(config)], budget.repeats
        self.seconds: list[float] = []
        self.steps = 0
        self.mark: float | None = None
        self.in_window = 0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # only at window edges, so steps stay asynchronous
        return time.perf_counter()

    def tick(self, epoch_ended: bool = False) -> None:
        """Call after every step; `epoch_ended` drops a window that an epoch's evaluation fell into."""
        self.steps += 1
        if epoch_ended:
            self.mark = None
        if self.steps < self.warmup:
            return
        if self.mark is None:
            self.mark, self.in_window = self._now(), 0
            return
        self.in_window += 1
        if self.in_window == self.window:
            now = self._now()
            self.seconds.append(now - self.mark)
            self.mark, self.in_window = now, 0
            if len(self.seconds) == self.repeats:
                raise _Measured

    def images_per_second(self) -> float:
        return self.window * self.batch / statistics.median(self.seconds)


def row_key(config: Config) -> str:
    return f"{config.model}_{config.resolution}"


def row_config(model: str, resolution: int, data_dir: str | None, device: str) -> Config:
    """A row's configuration: the seed's recipe on CIFAR-10, its 4 px crop padding at `resolution`."""
    return Config(model=model, dataset="cifar10", resolution=resolution, translate=4 * 32 / resolution,
                  data_dir=data_dir, device=device, epochs=1)


def ours(config: Config, budget: Budget) -> float:
    """Training images/s of `study.train.train(config)`, timed from its step callback."""
    meter = Meter(training.resolve_device(config.device), budget, config)
    last_epoch = [0]

    def on_step(epoch: int, step: int, steps: int) -> None:
        meter.tick(epoch_ended=epoch != last_epoch[0])
        last_epoch[0] = epoch

    try:
        training.train(config.replace(epochs=1000), on_step=on_step)
    except _Measured:
        return meter.images_per_second()
    raise AssertionError("unreachable: 1000 epochs outlast any window")


def seed_way(config: Config, budget: Budget, workers: int) -> float:
    """Training images/s of the seed's pipeline (study.seedway) on the same data and model."""
    device = training.resolve_device(config.device)
    meter = Meter(device, budget, config)
    if device.type == "cuda":
        # a GPU drains the batches the workers prefetched during warm-up faster than they refill them:
        # time only after that queue is spent, as it is for nearly all of a real run
        meter.warmup += workers * seedway.PREFETCH_FACTOR
    steps = meter.warmup + meter.window * budget.repeats + 1
    try:
        for _ in seedway.step_times(config, device, workers, steps):
            meter.tick()
    except _Measured:
        return meter.images_per_second()
    raise AssertionError("unreachable: the step count covers every window")


def augmentation(config: Config, budget: Budget) -> float:
    """Images/s of `augment.train_batch` alone on one batch of the device-resident data."""
    device = training.resolve_device(config.device)
    d = training.device_data(config, device)
    images, labels = d["train_x"][:config.batch_size], d["train_y"][:config.batch_size]
    num_classes = data.load(config.dataset, config.data_dir).num_classes
    seconds = []
    for i in range(budget.repeats + 1):  # the first window is warm-up
        start = time.perf_counter()
        for _ in range(budget.aug_batches):
            x, _ = augment.train_batch(images, labels, config, num_classes, d["mean"], d["std"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            seconds.append(time.perf_counter() - start)
    return budget.aug_batches * config.batch_size / statistics.median(seconds)


def _quiet() -> Console:
    return Console(file=io.StringIO())


def _search_space(folder: str, sampler: str, pruner: str) -> spaces.Space:
    """The shipped 32x32 CIFAR-10 space with another sampler and pruner, written as a space file in
    `folder`: the runner loads trials' spaces from their files, so an in-memory change would not hold."""
    if not SEARCH_SPACE.is_file():
        raise UserError(f"{SEARCH_SPACE} is missing: run the bench from a checkout of the project")
    path = Path(folder) / f"{SEARCH_SPACE.stem}_{sampler}_{pruner}.py"
    path.write_text(f"{SEARCH_SPACE.read_text()}\nsampler = {sampler!r}\npruner = {pruner!r}\n")
    return spaces.load(path)


def overhead(budget: Budget, data_dir: str | None, device: str) -> dict[str, float]:
    """Run a small study from an empty storage and a cold data cache; time what is not epochs."""
    fixed = {"data_dir": data_dir, "device": device, "epochs": budget.overhead_epochs}
    data.load.cache_clear()
    training._device_data.cache_clear()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        space = _search_space(tmp, "tpe", "none")  # full-length trials, as the target says
        study = runner.run(space, fixed, storage=f"sqlite:///{tmp}/overhead.db", trials=budget.overhead_trials,
                           console=_quiet())
        wall = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    epochs = sum(sum(t.user_attrs["seconds_per_epoch"]) for t in trials)
    trial_wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return {
        # in trials: sampling, model construction, storage writes; the target is on this share
        "share": (trial_wall - epochs) / trial_wall,
        "seconds_per_trial": (trial_wall - epochs) / len(trials),
        "mean_trial_seconds": trial_wall / len(trials),
        # once per study: imports, storage creation, the reference trial's queueing, loading the data set
        "study_setup_seconds": wall - trial_wall,
        "share_with_setup": (wall - epochs) / wall,
        "trials": len(trials),
    }


def throughput(budget: Budget, data_dir: str | None, device: str, workers: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for model, resolution in ROWS:
        key = f"{model}_{resolution}"
        if model not in models.names():
            rows[key] = {"skipped": f"model {model!r} is not registered in study.models yet"}
            continue
        config = row_config(model, resolution, data_dir, device)
        a = seed_way(config.replace(precision="fp32", channels_last=False), budget, workers)
        b = ours(config, budget)
        rows[key] = {"seed_way_images_per_second": a, "ours_images_per_second": b, "ratio": b / a}
    return rows


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")  # Linux; platform.processor() says only "x86_64" there
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    dev = training.resolve_device(device)
    return {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
        "cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg()[0],  # > 0.5 or so: the machine was shared, numbers are low
    }


def run(budget: Budget, data_dir: str | None, device: str, workers: int, console: Console) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(device)}
    console.log("throughput: the seed's way and ours")
    result.update(throughput(budget, data_dir, device, workers))
    aug: dict[str, Any] = {}
    for resolution in (32, 128):
        ips = augmentation(row_config("naivenet", resolution, data_dir, device), budget)
        step = result[f"naivenet_{resolution}"]["ours_images_per_second"]
        aug[f"augment_{resolution}"] = {"images_per_second": ips, "share_of_step": step / ips}
    result["augmentation"] = aug
    console.log("framework overhead of a study")
    result["overhead"] = overhead(budget, data_dir, device)
    return result


def table(result: dict[str, Any]) -> Table:
    t = Table(title=f"study bench on {result['machine']['device']} ({result['machine']['threads']} threads)")
    for col in ("figure", "seed's way", "ours", "ratio"):
        t.add_column(col, justify="right")
    for model, resolution in ROWS:
        row = result[f"{model}_{resolution}"]
        name = f"{model} @{resolution} train img/s"
        if "skipped" in row:
            t.add_row(name, "-", "-", row["skipped"])
        else:
            t.add_row(name, f"{row['seed_way_images_per_second']:,.0f}", f"{row['ours_images_per_second']:,.0f}",
                      f"{row['ratio']:.1f}x")
    for key, aug in result["augmentation"].items():
        t.add_row(f"{key} img/s (share of step)", "", f"{aug['images_per_second']:,.0f}",
                  f"{aug['share_of_step']:.1%}")
    o = result["overhead"]
    t.add_row(f"overhead in trials ({o['trials']} trials of {o['mean_trial_seconds']:.0f} s)", "",
              f"{o['seconds_per_trial']:.2f} s/trial", f"{o['share']:.1%}")
    t.add_row("overhead with the study's setup", "", f"{o['study_setup_seconds']:.1f} s once",
              f"{o['share_with_setup']:.1%}")
    return t


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object on the last line")
    parser.add_argument("--quick", action="store_true",
                        help="fewer, shorter measurements: under 5 minutes on 2 quiet cores")
    parser.add_argument("--data-dir",
                        help="folder holding cifar-10-batches-py/ (default: $STUDY_DATA_DIR, else ~/.cache/study/data)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="training device (default auto)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers for the seed's way (default: the CPU count, at most 8)")
    parser.add_argument("--only", choices=("search",), help="search: the search A/B harness (study.search_bench) alone")
    search_bench.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    if args.workers < 0:
        raise UserError(f"--workers {args.workers} is invalid: it must be >= 0")
    console = Console(stderr=args.json)
    if args.only == "search":
        result = search_bench.main(args, console)
    else:
        result = run(QUICK if args.quick else FULL, args.data_dir, args.device, args.workers, console)
        console.print(table(result))
    if args.json:
        print(json.dumps(result))
