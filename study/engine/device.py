"""The device and precision a run uses, and what the host does to serve it fast."""

from __future__ import annotations

import ctypes
import functools
import resource

import torch

from study.config import Config
from study.errors import UserError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={name} was asked for but no CUDA device is visible; use --device cpu or auto")
    return torch.device(name)


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


def autocast(config: Config, device: torch.device, cache: bool = True) -> torch.autocast:
    # a training step uses each weight once, so caching its bf16 copy buys nothing there; and a CUDA
    # graph must not capture the cache (PyTorch's CUDA graph notes: cache_enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision(config, device) == "bf16",
                          cache_enabled=cache)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak RSS


def device_name(device: torch.device) -> str:
    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
