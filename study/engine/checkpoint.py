"""A run's state after an epoch, saved so that a killed run goes on from there instead of starting over."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from study.engine.results import End, Ending, Metrics, as_dict, metrics_from


@dataclass
class State:
    """What a checkpoint holds of a run (or fused array): the model, optimizer and schedule, each
    member's metrics, data-order generator (an array's; None: torch's default one) and how it ended
    (a stopped member's updates stay masked through the optimizer's state), and how far it got."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    metrics: list[Metrics]
    generators: list[torch.Generator | None]
    ends: list[End | None]
    epoch: int = 0  # epochs done
    train_seconds: float = 0.0


def save(path: Path, state: State) -> None:
    """Everything needed to go on after `state.epoch`, written atomically (a kill mid-write keeps the old
    file; a failed write, e.g. a full disk, leaves no partial file behind)."""
    saved = {
        "epoch": state.epoch, "train_seconds": state.train_seconds, "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
        "rng": torch.get_rng_state(), "metrics": json.dumps([as_dict(m) for m in state.metrics]),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [g.get_state() for g in state.generators if g is not None],
        "ends": [(end.how.value, end.reason) if end else None for end in state.ends],  # plain values: weights_only loads them
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(saved, tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resume(path: Path, state: State, epochs: int) -> bool:
    """Load a checkpoint written by `save` (tensors and plain values only) into `state`; False where it
    was discarded.

    A checkpoint that cannot be read, that was written for other configurations than the members',
    or whose contents do not fit them (other weight shapes, missing keys, values of the wrong type)
    is deleted and logged: loading may have changed the model, optimizer or random state before it
    failed, so the caller starts over from a fresh run.
    """
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        metrics = json.loads(saved["metrics"])
        metrics = [metrics_from(m) for m in ([metrics] if isinstance(metrics, dict) else metrics)]
    except Exception as exc:
        return _discard(path, f"it cannot be read ({type(exc).__name__})")
    if [m.config for m in metrics] != json.loads(json.dumps([m.config for m in state.metrics])):
        return _discard(path, "it was written for another configuration")
    epoch, seconds = saved.get("epoch"), saved.get("train_seconds")
    if type(epoch) is not int or not 1 <= epoch <= epochs or type(seconds) not in (int, float) or not seconds >= 0:
        return _discard(path, f"its epoch ({epoch!r}) or training seconds ({seconds!r}) are not those of this run")
    try:
        _load(saved, state)
    except Exception as exc:
        return _discard(path, f"its contents do not fit this run ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    state.metrics[:] = [dataclasses.replace(m, resumed_from_epoch=epoch) for m in metrics]
    state.epoch, state.train_seconds = epoch, float(seconds)
    return True


def _load(saved: dict[str, Any], state: State) -> None:
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"]:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    for generator, generator_state in zip([g for g in state.generators if g is not None], saved.get("generators", [])):
        generator.set_state(generator_state)
    for k, end in enumerate(saved.get("ends", [])):
        state.ends[k] = End(Ending(end[0]), end[1]) if end else None


def _discard(path: Path, why: str) -> bool:
    logging.getLogger(__name__).warning("checkpoint %s discarded: %s; training from the start", path, why)
    path.unlink(missing_ok=True)
    return False
