"""Who gets fused: a study's array size, and its trials trained K at a time as one fused model.

A worker asks the study for K trials at once (study/search/worker.py: ablation and comparison cells
from the queue; for a search, the sampler proposes the first trial whole and the other K-1 with its
non-fusible settings fixed), groups the trials whose configurations differ only in fusible settings
(study/engine/array.py: FUSIBLE) and trains each group as one model (study/search/trial.py). Every member stays an ordinary
Optuna trial: its own params, intermediate values and attributes (plus `array`, the array it
trained in), told COMPLETE, PRUNED or FAILED on its own.

Fusion pays where one trial leaves the device idle: a GPU at 32 px (an H100 probe, docs/performance.md:
NaiveNet@32, 58.9k member-images/s alone, 113.7k at K=8, 115.7k at K=16) and loses where the
grouped kernels are slower than the dense ones (the same GPU at 128 px: 11.6k alone, 8.5k at K=8)
and on CPUs (0.8-1.0x, docs/performance.md). So `fuse` is off on CPUs and at resolutions above
FUSE_MAX_RESOLUTION unless the space or `--fuse` asks; on a GPU it is ARRAY_SIZE, or fewer where the
GPU's free memory holds fewer members.
"""

from __future__ import annotations

from typing import Any

import optuna
import torch

from study.config import Config
from study.engine import models
from study.engine.array import FUSIBLE
from study.engine.device import resolve_device
from study.engine.models.fused import NotFusible, check_members, fuse

ARRAY_SIZE = 8  # the H100 probe's knee: K=8 gave 1.9x one trial at 32 px, K=16 only 2% more
FUSE_MAX_RESOLUTION = 64  # measured to lose at 128 px on the H100; 64 px not measured, kept on the safe side
MEMORY_SHARE = 0.5  # of the GPU's free memory an array may plan for: optimizer state, evaluation and the graph's pool


def array_size(config: Config, asked: int | None) -> tuple[int, str]:
    """How many trials train as one model, and why: `asked` (a space's `fuse` or --fuse) wins; else
    ARRAY_SIZE on a GPU at a resolution where fusion was measured to pay, 1 elsewhere."""
    if asked is not None:
        k, why = asked, "asked for"
    elif resolve_device(config.device).type != "cuda":
        return 1, "off on CPUs, where a fused array is slower than one trial (docs/performance.md)"
    elif config.resolution > FUSE_MAX_RESOLUTION:
        return 1, f"off above {FUSE_MAX_RESOLUTION} px, where the fused kernels were measured slower"
    else:
        k, why = fits_in_memory(config, ARRAY_SIZE)
    if k > 1:
        try:
            members = [models.build(config, 10), models.build(config, 10)]
            fused = fuse(members)
            if models.user.is_user_model(config.model):  # the shipped models are tested (tests/test_fused.py)
                check_members(fused, members, config.resolution)
        except NotFusible as exc:
            return 1, f"{config.model} cannot fuse ({exc})"
    return k, why


def fits_in_memory(config: Config, k: int) -> tuple[int, str]:
    """At most `k` members, as many as MEMORY_SHARE of the GPU's free memory holds: one member's
    training step is run once and its peak memory measured."""
    device = resolve_device(config.device)
    try:
        free, _ = torch.cuda.mem_get_info(device)
        one = member_bytes(config, device)
    except Exception as exc:  # the measurement is an estimate: never the reason a study fails to start
        return k, f"on a GPU at a resolution where fusion pays; memory not measured ({type(exc).__name__})"
    fit = max(1, min(k, int(MEMORY_SHARE * free // max(one, 1))))
    return fit, (f"on a GPU at a resolution where fusion pays; {fit} members of {one / 2**20:.0f} MiB each "
                 f"fit in {MEMORY_SHARE:.0%} of the {free / 2**30:.1f} GiB free")


def member_bytes(config: Config, device: torch.device) -> int:
    """Peak memory of one member's forward and backward pass at the config's batch and resolution."""
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    model = models.build(config, 100).to(device)
    x = torch.randn(config.batch_size, 3, config.resolution, config.resolution, device=device)
    model(x).float().logsumexp(1).mean().backward()
    peak = torch.cuda.max_memory_allocated(device) - before
    del model, x
    torch.cuda.empty_cache()
    return peak


def fusion_key(config: Config) -> tuple[Any, ...]:
    """What the members of one array must share: every setting outside FUSIBLE."""
    return tuple(v for k, v in sorted(config.to_dict().items()) if k not in FUSIBLE)


def split_into_arrays(asked: list[tuple[optuna.Trial, Config]]) -> list[list[tuple[optuna.Trial, Config]]]:
    """The asked trials grouped by fusion key, in the order they were asked."""
    out: dict[tuple[Any, ...], list[tuple[optuna.Trial, Config]]] = {}
    for trial, config in asked:
        out.setdefault(fusion_key(config), []).append((trial, config))
    return list(out.values())
