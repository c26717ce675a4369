"""How many trials `run` starts at once by default: one process on CPU, workers.TRIALS_PER_GPU per GPU."""

import pytest
import torch

from study.search.workers import TRIALS_PER_GPU, resolve_workers


def test_cpu_runs_one_worker_unless_asked():
    assert resolve_workers(None, None, "cpu") == (1, None, 0)
    assert resolve_workers(3, None, "cpu") == (3, None, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_each_gpu_gets_trials_per_gpu_workers_unless_asked():
    gpus = torch.cuda.device_count()
    workers, devices, per_gpu = resolve_workers(None, None, "auto")
    assert (workers, per_gpu) == (TRIALS_PER_GPU * gpus, TRIALS_PER_GPU)
    assert devices == [f"cuda:{i}" for i in range(gpus)]
    assert resolve_workers(2, ["cuda:0"], "auto") == (2, ["cuda:0"], 2)
    assert resolve_workers(None, ["cuda:0", "cuda:0"], "auto")[0] == TRIALS_PER_GPU
