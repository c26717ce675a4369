"""`python -m study bench`: our training speed against the seed's way, measured side by side.

Four parts, all on the current machine in one run (`--only search`: study.bench.search instead;
`--only fused`: the fused rows alone):
  throughput   training images/s of each model and resolution, the seed's way (study.bench.baseline_pipeline) and
               ours (study.engine.train.train itself, so the bench measures what users get); warm-up
               steps are excluded and the median of several timed windows is reported. A window
               lasts a set time, not a set step count (a GPU runs a step in microseconds); on CUDA
               there are batch-512 rows too, and the images/s of several concurrent trials on one GPU
  fused        member-images/s of K seeds of a row trained as one fused array (study.engine.array, issue 15)
               against the same row's single trial, for each K of --fuse-ks
  augmentation images/s of study.engine.augment.train_batch alone, and its share of one training step
  overhead     the share of a trial's wall time spent outside its training and evaluation epochs,
               and the study's one-time setup
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import multiprocessing
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

from study.bench import baseline_pipeline as seedway
from study.bench import search as search_bench
from study.config import Config
from study.engine import array, augment, data, models
from study.engine import train as training
from study.errors import UserError
from study.search import runner
from study.search.workers import TRIALS_PER_GPU
from study.spaces import space as spaces
from study.store import record

ROWS = (("naivenet", 32), ("naivenet", 128), ("resnet18", 32))
# Fused rows at batch 128 per member. 128 px on CUDA: where the probe saw fusion lose; on a CPU
# a 128 px array step takes many seconds, and x1 is the single-trial row itself.
FUSED_ROWS = {"cuda": (("naivenet", 32), ("naivenet", 128)), "cpu": (("naivenet", 32),)}
FUSE_KS = {"cuda": (1, 4, 8), "cpu": (2, 4)}
CUDA_BATCHES = (128, 512)  # batch 128 is the recipe's, and the only row on CPU; 512 fills a GPU better
BENCH_EPOCHS = 200  # `ours` runs this long at most: every window ends long before
SEED_WAY_STEPS = 10**6  # the same for the seed's way (it sets OneCycle's length: speed does not depend on it)
SEARCH_SPACE = Path(__file__).resolve().parents[2] / "spaces" / "naivenet32_cifar10.py"


@dataclass(frozen=True)
class Budget:
    """How much the bench measures; --quick keeps the whole run under 5 minutes on 2 cores."""

    warmup: int  # steps before timing: worker start-up, oneDNN/cuDNN kernel choice, CUDA graph capture
    repeats: int  # timed windows per figure; the median is reported
    window: float  # seconds of training steps per timed window (at least one step)
    overhead_trials: int
    overhead_epochs: int


QUICK = Budget(
    warmup=2, repeats=3, window=0.3,
    overhead_trials=2, overhead_epochs=2,
)
# Full: windows of 2 s (on 2 AVX2 cores, 4-8 NaiveNet@32 steps, about what the step-count windows held).
# Overhead trials of 15 epochs last 30 s or more (the target's condition).
FULL = Budget(
    warmup=5, repeats=5, window=2.0,
    overhead_trials=3, overhead_epochs=15,
)


class _Measured(Exception):
    """Raised from a step callback once every window is timed, to end the training run early."""


class Meter:
    """Times `repeats` windows of at least `window` seconds of training steps, after `warmup` steps.

    The step that follows an epoch's evaluation is not timed, so a window may span epochs (a GPU runs
    a whole epoch of the shared subset in well under a second). On CUDA the device is synchronised
    only where a window or an epoch's steps end, so steps stay asynchronous in between.
    """

    def __init__(self, device: torch.device, budget: Budget, batch: int) -> None:
        self.device, self.batch = device, batch
        self.warmup, self.window, self.repeats = budget.warmup, budget.window, budget.repeats
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
                raise _Measured

    def images_per_second(self) -> float:
        return statistics.median(i / s for i, s in zip(self.images, self.seconds))


def row_key(config: Config) -> str:
    batch = "" if config.batch_size == Config.batch_size else f"_b{config.batch_size}"
    return f"{config.model}_{config.resolution}{batch}"


def row_config(model: str, resolution: int, data_dir: str | None, device: str, batch: int = Config.batch_size) -> Config:
    """A row's configuration: the seed's recipe on CIFAR-10, its 4 px crop padding at `resolution`."""
    return Config(model=model, dataset="cifar10", resolution=resolution, translate=4 * 32 / resolution,
                  data_dir=data_dir, device=device, epochs=1, batch_size=batch)


def ours(config: Config, budget: Budget, members: int = 1) -> float:
    """Training images/s of `study.engine.train.train(config)`, timed from its step callback; with `members`
    > 1, member-images/s of that many seeds of `config` trained as one fused array."""
    meter = Meter(training.resolve_device(config.device), budget, config.batch_size * members)

    def on_step(epoch: int, step: int, steps: int) -> None:
        meter.tick(epoch_starts=step == 0, epoch_ends=step == steps - 1)

    config = config.replace(epochs=BENCH_EPOCHS)
    try:
        if members == 1:
            training.train(config, on_step=on_step)
        else:
            array.train_array([config.replace(seed=config.seed + k) for k in range(members)], on_step=on_step)
    except _Measured:
        return meter.images_per_second()
    raise UserError(f"{BENCH_EPOCHS} epochs ended before {budget.repeats} windows of {budget.window} s: "
                    "the machine is far faster than the bench expects")


def seed_way(config: Config, budget: Budget, workers: int) -> float:
    """Training images/s of the seed's pipeline (study.bench.baseline_pipeline) on the same data and model."""
    device = training.resolve_device(config.device)
    meter = Meter(device, budget, config.batch_size)
    if device.type == "cuda":
        # a GPU drains the batches the workers prefetched during warm-up faster than they refill them:
        # time only after that queue is spent, as it is for nearly all of a real run
        meter.warmup += workers * seedway.PREFETCH_FACTOR
    try:
        for _ in seedway.step_times(config, device, workers, SEED_WAY_STEPS):
            meter.tick()
    except _Measured:
        return meter.images_per_second()
    raise UserError(f"{SEED_WAY_STEPS} steps ended before {budget.repeats} windows of {budget.window} s")


def augmentation(config: Config, budget: Budget) -> float:
    """Images/s of `augment.train_batch` alone on one batch of the device-resident data."""
    device = training.resolve_device(config.device)
    d = training.device_data(config, device)
    images, labels = d["train_x"][:config.batch_size], d["train_y"][:config.batch_size]
    num_classes = data.load(config.dataset, config.data_dir).num_classes
    constants = augment.train_constants(config, d["mean"], d["std"])
    rates = []
    for i in range(budget.repeats + 1):  # the first window is warm-up
        start, batches = time.perf_counter(), 0
        while batches == 0 or time.perf_counter() - start < budget.window:
            augment.train_batch(images, labels, config, num_classes, d["mean"], d["std"], constants)
            batches += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            rates.append(batches * config.batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def _quiet() -> Console:
    return Console(file=io.StringIO())


def _search_space(sampler: str, pruner: str) -> spaces.Space:
    """The shipped 32x32 CIFAR-10 space with another sampler and pruner."""
    if not SEARCH_SPACE.is_file():
        raise UserError(f"{SEARCH_SPACE} is missing: run the bench from a checkout of the project")
    space = spaces.load(SEARCH_SPACE)
    return dataclasses.replace(space, kind=dataclasses.replace(space.kind, sampler=sampler, pruner=pruner))


def overhead(budget: Budget, data_dir: str | None, device: str) -> dict[str, float]:
    """Run a small study from an empty storage and a cold data cache; time what is not epochs."""
    fixed = {"data_dir": data_dir, "device": device, "epochs": budget.overhead_epochs}
    data.load.cache_clear()
    training._device_data.cache_clear()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        space = _search_space("tpe", "none")  # full-length trials, as the target says
        study = runner.run(space, fixed, storage=f"sqlite:///{tmp}/overhead.db", trials=budget.overhead_trials,
                           console=_quiet())
        wall = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    epochs = sum(sum(record.trial_info(t).seconds_per_epoch) for t in trials)
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
    """One row per model, resolution and batch (`row_key`): the seed's way, ours and their ratio."""
    rows: dict[str, Any] = {}
    batches = CUDA_BATCHES if training.resolve_device(device).type == "cuda" else (Config.batch_size,)
    for model, resolution in ROWS:
        for batch in batches:
            config = row_config(model, resolution, data_dir, device, batch)
            if model not in models.names():
                rows[row_key(config)] = {"skipped": f"model {model!r} is not registered in study.engine.models yet"}
                continue
            a = seed_way(config.replace(precision="fp32", channels_last=False), budget, workers)
            b = ours(config, budget)
            rows[row_key(config)] = {"seed_way_images_per_second": a, "ours_images_per_second": b, "ratio": b / a}
    return rows


def fused(budget: Budget, data_dir: str | None, device: str, ks: tuple[int, ...],
          single: dict[str, Any]) -> dict[str, Any]:
    """One row per FUSED_ROWS entry and K: member-images/s in total, and its ratio to the single trial
    (`single`, the throughput rows; a row it lacks is measured here)."""
    rows: dict[str, Any] = {}
    for model, resolution in FUSED_ROWS[training.resolve_device(device).type]:
        config = row_config(model, resolution, data_dir, device)
        one = single.get(row_key(config), {}).get("ours_images_per_second") or ours(config, budget)
        for k in ks:
            rate = one if k == 1 else ours(config, budget, k)
            rows[f"{row_key(config)}_x{k}"] = {"members": k, "member_images_per_second": rate,
                                               "one_trial_images_per_second": one, "vs_one_trial": rate / one}
    return rows


def concurrent_trials(budget: Budget, data_dir: str | None, device: str, trials: int) -> dict[str, Any]:
    """Images/s of `trials` NaiveNet@32 trials training at once on one GPU, one process each (as `run`
    starts them): the sum of each one's median window. Processes start a little apart, so a window
    near the start or end may have had the GPU less shared: the sum can flatter by a few percent."""
    config = row_config("naivenet", 32, data_dir, device)
    with multiprocessing.get_context("spawn").Pool(trials) as pool:  # fork would share torch's CUDA state
        rates = pool.starmap(ours, [(config, budget)] * trials)
    return {"trials": trials, "images_per_second": sum(rates), "per_trial": rates}


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


def run(budget: Budget, data_dir: str | None, device: str, workers: int, console: Console,
        fuse_ks: tuple[int, ...] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(device)}
    console.log("throughput: the seed's way and ours")
    result.update(throughput(budget, data_dir, device, workers))
    ks = _fuse_ks(device, fuse_ks)
    if ks:
        console.log(f"fused arrays of {', '.join(map(str, ks))} members")
        result["fused"] = fused(budget, data_dir, device, ks, result)
    if training.resolve_device(device).type == "cuda":
        console.log(f"{TRIALS_PER_GPU} concurrent trials on one GPU")
        result["trials_per_gpu"] = concurrent_trials(budget, data_dir, device, TRIALS_PER_GPU)
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
    for key, row in result.items():
        if not isinstance(row, dict) or not ({"skipped", "ours_images_per_second"} & row.keys()):  # a throughput row
            continue
        model, resolution, *batch = key.split("_")
        name = f"{model} @{resolution}{' batch ' + batch[0][1:] if batch else ''} train img/s"
        if "skipped" in row:
            t.add_row(name, "-", "-", row["skipped"])
        else:
            t.add_row(name, f"{row['seed_way_images_per_second']:,.0f}", f"{row['ours_images_per_second']:,.0f}",
                      f"{row['ratio']:.1f}x")
    for key, row in result.get("fused", {}).items():
        model, resolution, *_ = key.split("_")
        t.add_row(f"{model} @{resolution} fused x{row['members']} img/s", "",
                  f"{row['member_images_per_second']:,.0f}",
                  f"{row['vs_one_trial']:.2f}x one trial ({row['one_trial_images_per_second']:,.0f})")
    if "trials_per_gpu" in result:
        c = result["trials_per_gpu"]
        t.add_row(f"{c['trials']} naivenet @32 trials at once on one GPU, img/s", "", f"{c['images_per_second']:,.0f}",
                  f"{c['images_per_second'] / result['naivenet_32']['ours_images_per_second']:.1f}x one trial")
    if "overhead" not in result:  # --only fused
        return t
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
    parser.add_argument("--fuse-ks", type=_array_sizes, default=None, metavar="K,K,...",
                        help="array sizes of the fused rows (default: 1,4,8 on CUDA, 2,4 on CPU; 0: none)")
    parser.add_argument("--only", choices=("search", "fused"),
                        help="search: the search A/B harness (study.bench.search) alone; "
                             "fused: the fused rows and the single trial they are compared with")
    search_bench.add_arguments(parser)


def _fuse_ks(device: str, asked: tuple[int, ...] | None) -> tuple[int, ...]:
    return FUSE_KS[training.resolve_device(device).type] if asked is None else asked


def _array_sizes(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of array sizes, e.g. 1,4,8") from None
    if ks == (0,):
        return ()
    if any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"array sizes must be >= 1 (or 0 alone for none), not {text!r}")
    return ks


def main(args: argparse.Namespace) -> None:
    if args.workers < 0:
        raise UserError(f"--workers {args.workers} is invalid: it must be >= 0")
    console = Console(stderr=args.json)
    budget = QUICK if args.quick else FULL
    if args.only == "search":
        result = search_bench.main(args, console)
    elif args.only == "fused":
        ks = _fuse_ks(args.device, args.fuse_ks)
        result = {"machine": machine(args.device), "fused": fused(budget, args.data_dir, args.device, ks, {})}
        console.print(table(result))
    else:
        result = run(budget, args.data_dir, args.device, args.workers, console, args.fuse_ks)
        console.print(table(result))
    if args.json:
        print(json.dumps(result))
