"""`python -m study bench`: our training speed against the seed's way, measured side by side.

Four parts, all on the current machine in one run (`--only search`: study.bench.search instead;
`--only fused`: the fused rows alone):
  throughput   training images/s of each model and resolution, the seed's way (study.bench.baseline_pipeline) and
               ours (study.engine.train.train itself, so the bench measures what users get); warm-up
               steps are excluded and the median of several timed windows is reported. A window
               lasts a set time, not a set step count (a GPU runs a step in microseconds); on CUDA
               there are batch-512 rows too, and the images/s of several concurrent trials on one GPU
  fused        member-images/s of K seeds of a row trained as one fused array (study.engine.array)
               against the same row's single trial, for each K of --fuse-ks
  augmentation images/s of study.engine.augment.train_batch alone, and its share of one training step
  overhead     the share of a trial's wall time spent outside its training and evaluation epochs,
               and the study's one-time setup
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from study.bench import baseline_pipeline as seedway
from study.bench import search as search_bench
from study.bench.arms import NO_PRUNING
from study.bench.meter import FULL, QUICK, BenchScale, Measured, Meter
from study.bench.results import Augmentation, Concurrent, Fused, Overhead, Row, SpeedResult, Throughput, machine, table
from study.config import Config
from study.engine import array, augment, cache, data, models
from study.engine.device import resolve_device
from study.engine.results import Callbacks
from study.engine.train import train
from study.errors import UserError
from study.search import runner
from study.search.workers import TRIALS_PER_GPU
from study.spaces import space as spaces
from study.store import record

ROWS = (("naivenet", 32), ("naivenet", 128), ("resnet18", 32))
# Fused rows at batch 128 per member. 128 px on CUDA: where an H100 probe saw fusion lose (docs/performance.md); on a CPU
# a 128 px array step takes many seconds, and x1 is the single-trial row itself.
FUSED_ROWS = {"cuda": (("naivenet", 32), ("naivenet", 128)), "cpu": (("naivenet", 32),)}
FUSE_KS = {"cuda": (1, 4, 8), "cpu": (2, 4)}
CUDA_BATCHES = (128, 512)  # batch 128 is the recipe's, and the only row on CPU; 512 fills a GPU better
BENCH_EPOCHS = 200  # `ours` runs this long at most: every window ends long before
SEED_WAY_STEPS = 10**6  # the same for the seed's way (it sets OneCycle's length: speed does not depend on it)
SEARCH_SPACE = Path(__file__).resolve().parents[2] / "spaces" / "naivenet32_cifar10.py"


def row_config(row: Row, data_dir: str | None, device: str) -> Config:
    """A row's configuration: the seed's recipe on CIFAR-10, its 4 px crop padding at the row's resolution."""
    return Config(model=row.model, dataset="cifar10", resolution=row.resolution, translate=4 * 32 / row.resolution,
                  data_dir=data_dir, device=device, epochs=1, batch_size=row.batch)


def ours(config: Config, scale: BenchScale, members: int = 1) -> float:
    """Training images/s of `study.engine.train.train(config)`, timed from its step callback; with `members`
    > 1, member-images/s of that many seeds of `config` trained as one fused array."""
    meter = Meter(resolve_device(config.device), scale, config.batch_size * members)

    def on_step(epoch: int, step: int, steps: int) -> None:
        meter.tick(epoch_starts=step == 0, epoch_ends=step == steps - 1)

    config = config.replace(epochs=BENCH_EPOCHS)
    try:
        if members == 1:
            train(config, Callbacks(step=on_step))
        else:
            array.train_array([config.replace(seed=config.seed + k) for k in range(members)], Callbacks(step=on_step))
    except Measured:
        return meter.images_per_second()
    raise UserError(f"{BENCH_EPOCHS} epochs ended before {scale.repeats} windows of {scale.window} s: "
                    "the machine is far faster than the bench expects")


def seed_way(config: Config, scale: BenchScale, workers: int) -> float:
    """Training images/s of the seed's pipeline (study.bench.baseline_pipeline) on the same data and model."""
    device = resolve_device(config.device)
    meter = Meter(device, scale, config.batch_size)
    if device.type == "cuda":
        # a GPU drains the batches the workers prefetched during warm-up faster than they refill them:
        # time only after that queue is spent, as it is for nearly all of a real run
        meter.warmup += workers * seedway.PREFETCH_FACTOR
    try:
        for _ in seedway.step_times(config, device, workers, SEED_WAY_STEPS):
            meter.tick()
    except Measured:
        return meter.images_per_second()
    raise UserError(f"{SEED_WAY_STEPS} steps ended before {scale.repeats} windows of {scale.window} s")


def augmentation(config: Config, scale: BenchScale) -> float:
    """Images/s of `augment.train_batch` alone on one batch of the device-resident data."""
    device = resolve_device(config.device)
    d = cache.device_data(config, device)
    images, labels = d.train_x[:config.batch_size], d.train_y[:config.batch_size]
    num_classes = data.load(config.dataset, config.data_dir).num_classes
    constants = augment.train_constants(config, d.mean, d.std)
    rates = []
    for i in range(scale.repeats + 1):  # the first window is warm-up
        start, batches = time.perf_counter(), 0
        while batches == 0 or time.perf_counter() - start < scale.window:
            augment.train_batch(images, labels, config, num_classes, constants)
            batches += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            rates.append(batches * config.batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def overhead(scale: BenchScale, data_dir: str | None, device: str) -> Overhead:
    """Run a small study from an empty storage and a cold data cache; time what is not epochs."""
    if not SEARCH_SPACE.is_file():
        raise UserError(f"{SEARCH_SPACE} is missing: run the bench from a checkout of the project")
    fixed = {"data_dir": data_dir, "device": device, "epochs": scale.overhead_epochs}
    data.load.cache_clear()
    cache.clear()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # the shipped space's sampler, without pruning: full-length trials, as the target says
        options = runner.Options(storage=f"sqlite:///{tmp}/overhead.db", trials=scale.overhead_trials, pruner=NO_PRUNING)
        study = runner.run(spaces.load(SEARCH_SPACE), fixed, options, console=Console(file=io.StringIO()))
        wall = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False)
    epochs = sum(sum(record.trial_info(t).seconds_per_epoch) for t in trials)
    trial_wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return Overhead(share=(trial_wall - epochs) / trial_wall, seconds_per_trial=(trial_wall - epochs) / len(trials),
                    mean_trial_seconds=trial_wall / len(trials), study_setup_seconds=wall - trial_wall,
                    share_with_setup=(wall - epochs) / wall, trials=len(trials))


def throughput(scale: BenchScale, data_dir: str | None, device: str, workers: int) -> list[Throughput]:
    """One row per model, resolution and batch: the seed's way and ours."""
    rows = []
    batches = CUDA_BATCHES if resolve_device(device).type == "cuda" else (Config.batch_size,)
    for model, resolution in ROWS:
        for batch in batches:
            row = Row(model, resolution, batch)
            if model not in models.names():
                rows.append(Throughput(row, skipped=f"model {model!r} is not registered in study.engine.models yet"))
                continue
            config = row_config(row, data_dir, device)
            a = seed_way(config.replace(precision="fp32", channels_last=False), scale, workers)
            rows.append(Throughput(row, seed_way=a, ours=ours(config, scale)))
    return rows


def fused(scale: BenchScale, data_dir: str | None, device: str, ks: tuple[int, ...],
          single: SpeedResult) -> list[Fused]:
    """One row per FUSED_ROWS entry and K: member-images/s in total, beside the single trial (`single`'s
    throughput rows; a row it lacks is measured here)."""
    rows = []
    for model, resolution in FUSED_ROWS[resolve_device(device).type]:
        row = Row(model, resolution)
        config = row_config(row, data_dir, device)
        one = single.ours(row) or ours(config, scale)
        rows += [Fused(row, k, one if k == 1 else ours(config, scale, k), one) for k in ks]
    return rows


def concurrent_trials(scale: BenchScale, data_dir: str | None, device: str, trials: int) -> Concurrent:
    """Images/s of `trials` NaiveNet@32 trials training at once on one GPU, one process each (as `run`
    starts them): the sum of each one's median window. Processes start a little apart, so a window
    near the start or end may have had the GPU less shared: the sum can flatter by a few percent."""
    config = row_config(Row("naivenet", 32), data_dir, device)
    with multiprocessing.get_context("spawn").Pool(trials) as pool:  # fork would share torch's CUDA state
        rates = pool.starmap(ours, [(config, scale)] * trials)
    return Concurrent(trials, sum(rates), rates)


def run(scale: BenchScale, data_dir: str | None, device: str, workers: int, console: Console,
        fuse_ks: tuple[int, ...] | None = None) -> SpeedResult:
    dev = resolve_device(device)
    result = SpeedResult(machine(dev))
    console.log("throughput: the seed's way and ours")
    result.throughput = throughput(scale, data_dir, device, workers)
    ks = _fuse_ks(device, fuse_ks)
    if ks:
        console.log(f"fused arrays of {', '.join(map(str, ks))} members")
        result.fused = fused(scale, data_dir, device, ks, result)
    if dev.type == "cuda":
        console.log(f"{TRIALS_PER_GPU} concurrent trials on one GPU")
        result.concurrent = concurrent_trials(scale, data_dir, device, TRIALS_PER_GPU)
    for resolution in (32, 128):
        ips = augmentation(row_config(Row("naivenet", resolution), data_dir, device), scale)
        result.augmentation.append(Augmentation(resolution, ips, result.ours(Row("naivenet", resolution)) / ips))
    console.log("framework overhead of a study")
    result.overhead = overhead(scale, data_dir, device)
    return result


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
    return FUSE_KS[resolve_device(device).type] if asked is None else asked


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
    scale = QUICK if args.quick else FULL
    if args.only == "search":
        figures = search_bench.main(args, console)
    else:
        if args.only == "fused":
            result = SpeedResult(machine(resolve_device(args.device)))
            result.fused = fused(scale, args.data_dir, args.device, _fuse_ks(args.device, args.fuse_ks), result)
        else:
            result = run(scale, args.data_dir, args.device, args.workers, console, args.fuse_ks)
        console.print(table(result))
        figures = result.json()
    if args.json:
        print(json.dumps(figures))
