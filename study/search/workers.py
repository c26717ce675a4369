"""Worker processes sharing one study: how many, on which devices, started and stopped together."""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any, Callable

import torch

from study.engine.device import resolve_device
from study.errors import Terminated, UserError
from study.search.recovery import handle_stop_signals

# Trials one GPU runs at once when --workers is not given: on one H100, 4 workers cut a 12-trial
# NaiveNet@32 study from 73 s to 47 s, measured with eager steps; not yet measured with CUDA-graph steps
# (docs/performance.md). `--workers N` (with `--devices`) overrides it.
TRIALS_PER_GPU = 4


def run_processes(work: Callable[..., None], jobs: list[tuple[Any, ...]]) -> None:
    """`work(*job)` in a spawned process per job; a Ctrl-C here stops them all, each marking its trial."""
    context = multiprocessing.get_context("spawn")  # fork would share torch's thread pools
    processes = [context.Process(target=_worker, args=(work, *job), name=f"worker-{i}") for i, job in enumerate(jobs)]
    for p in processes:
        p.start()
    try:
        for p in processes:
            p.join()
    except KeyboardInterrupt:
        for p in processes:
            p.terminate()  # SIGTERM: each worker marks its trial interrupted (a Ctrl-C reached them already)
        for p in processes:
            p.join()
        raise
    if any(p.exitcode for p in processes):
        raise UserError(f"a worker exited with code {[p.exitcode for p in processes]}; run the same command to resume")


def resolve_workers(workers: int | None, devices: list[str] | None, device: str,
                    per_gpu: int = TRIALS_PER_GPU) -> tuple[int, list[str] | None, float]:
    """(workers, devices, trials per GPU, 0 without one); `workers` None: `per_gpu` on each GPU in
    `devices` (default: every visible one when `device` resolves to CUDA), one process on CPU."""
    if devices is None and resolve_device(device).type == "cuda" and workers is None:
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    gpus = {torch.device(d).index or 0 for d in devices or [device] if resolve_device(d).type == "cuda"}
    if workers is None:
        workers = per_gpu * len(gpus) if gpus else 1
    return workers, devices, workers / len(gpus) if gpus else 0


def _worker(work: Callable[..., None], *job: Any) -> None:
    """A worker process: stop signals handled, errors as one line (exit codes as the CLI's)."""
    handle_stop_signals()
    try:
        work(*job)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, Terminated) else 130)
