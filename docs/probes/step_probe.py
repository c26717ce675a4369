"""The probe behind docs/performance.md's notes: ours' training step (as study.engine.train runs it), timed
by wall clock and by CPU time, with one change switched on at a time, or profiled with torch.profiler.

Run from the repository root:  PYTHONPATH=. python docs/probes/step_probe.py --res 128 --variants base keep
CPU time (images per CPU-second of this process) is the figure to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from study.bench.results import Row
from study.bench.speed import row_config
from study.engine import augment, cache, models
from study.engine import device as devices

VARIANTS = ("base", "fp32", "nchw", "noinplace", "compile", "keep")


def make_step(config, variant: str, data: dict, device: torch.device):
    if variant == "fp32":
        config = config.replace(precision="fp32")
    model = models.build(config, 10)
    if variant == "noinplace":
        for m in model.modules():
            if isinstance(m, nn.SiLU):
                m.inplace = False
    fmt = torch.contiguous_format if variant == "nchw" else torch.channels_last
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if variant == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=True)
    batch = config.batch_size
    steps = len(data.train_y) // batch
    constants = augment.train_constants(config, data.mean, data.std)

    def step(i: int) -> None:
        idx = torch.arange((i % steps) * batch, (i % steps + 1) * batch)
        x, t = augment.train_batch(data.train_x[idx], data.train_y[idx], config, 10, constants)
        x = x.contiguous(memory_format=fmt)
        with devices.autocast(config, device):
            loss = F.cross_entropy(forward(x), t, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=4, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    p.add_argument("--variants", nargs="+", default=["base"], choices=VARIANTS,
                   help="keep = study.engine.device.keep_freed_memory() first (it stays on for later variants)")
    p.add_argument("--augment-only", action="store_true", help="time augment.train_batch alone")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top ops for the first variant")
    p.add_argument("--data-dir", default="../shared/data")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config = row_config(Row("naivenet", args.res), args.data_dir, "cpu")
    data = cache.device_data(config, device)
    if args.augment_only:
        x, y = data.train_x[:128], data.train_y[:128]
        constants = augment.train_constants(config, data.mean, data.std)
        steps = {"augment": lambda i: augment.train_batch(x, y, config, 10, constants)}
    else:
        steps = {}
        for v in args.variants:
            if v == "keep":
                devices.keep_freed_memory()
            steps[v] = make_step(config, v, data, device)
    for f in steps.values():  # warm-up: oneDNN primitives, compilation, allocator
        f(0), f(1)
    if args.profile:
        f = next(iter(steps.values()))
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(args.steps):
                f(i)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=40))
        return
    wall: dict[str, list[float]] = {v: [] for v in steps}
    cpu: dict[str, list[float]] = {v: [] for v in steps}
    for _ in range(args.rounds):
        for v, f in steps.items():
            w, c = time.perf_counter(), time.process_time()
            for i in range(args.steps):
                f(i)
            wall[v].append(args.steps * 128 / (time.perf_counter() - w))
            cpu[v].append(args.steps * 128 / (time.process_time() - c))
    print(f"res {args.res}, {args.threads} thread(s), load average {__import__('os').getloadavg()[0]:.1f}")
    for v in steps:
        print(f"  {v:10s} images per CPU-second: median {statistics.median(cpu[v]):8.1f}   "
              f"wall images/s: median {statistics.median(wall[v]):8.1f} best {max(wall[v]):8.1f}")


if __name__ == "__main__":
    main()
