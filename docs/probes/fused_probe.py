"""Probe: does fusing K NaiveNets into one model (study/engine/models/fused.py) pay on this device?

Times forward + backward + the per-member SGD update of K members fused against the same work done
one member after another, at batch 128 per member on random images (augmentation excluded: it is
per member either way). Prints member-images/s for each K. Used to decide where fusion defaults on
(issue 15); not part of the test suite.

    PYTHONPATH=. python docs/probes/fused_probe.py --resolution 32 --ks 1,2,4 --seconds 10
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from study.config import Config
from study.engine import models
from study.engine.models.fused import fuse
from study.engine.optim import Members, Schedule, ScheduledSGD


def _timed(step, seconds: float) -> float:
    """Seconds per step, over as many steps as fit in `seconds` after two warm-up steps."""
    step()
    step()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--ks", default="1,2,4")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    config = Config(model="naivenet", dataset="cifar10", resolution=args.resolution)
    fmt = torch.channels_last
    for k in map(int, args.ks.split(",")):
        members = [models.build(config, 10).to(memory_format=fmt) for _ in range(k)]
        fused = fuse(members).to(memory_format=fmt)
        steps = 10**6
        schedule = Schedule(torch.full((steps,), 0.01), torch.full((steps,), 0.9))
        sgd = ScheduledSGD(fused.parameters(), schedule, 0.0, Members(torch.ones(k), torch.ones(k), torch.zeros(k)))
        x = torch.randn(k, args.batch, 3, args.resolution, args.resolution)
        y = torch.randint(0, 10, (k, args.batch))

        def fused_step() -> None:
            loss = F.cross_entropy(fused(x).reshape(-1, 10), y.reshape(-1), reduction="none").view(k, -1).mean(1)
            fused.zero_grad(set_to_none=True)
            loss.sum().backward()
            sgd.step()

        alone = [(m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=True)) for m in members]

        def one_by_one() -> None:
            for i, (model, optimizer) in enumerate(alone):
                loss = F.cross_entropy(model(x[i].contiguous(memory_format=fmt)), y[i])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        t_fused, t_alone = _timed(fused_step, args.seconds), _timed(one_by_one, args.seconds)
        images = k * args.batch
        print(f"K={k} @{args.resolution}px: fused {images / t_fused:,.0f} member-images/s, "
              f"one by one {images / t_alone:,.0f}, ratio {t_alone / t_fused:.2f}", flush=True)


if __name__ == "__main__":
    main()
