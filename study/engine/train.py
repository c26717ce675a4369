"""`train(config)`: one configuration from data to metrics; `train_members(configs)`: several as one
fused model. The caller steers through `Callbacks` (study/engine/results.py) and needs no study."""

from __future__ import annotations

import time
from pathlib import Path

from study.config import Config
from study.engine import checkpoint as checkpoints
from study.engine.results import Callbacks, Diverged, Ending, Member, Metrics, Stop
from study.engine.run import Run


def train(config: Config, callbacks: Callbacks | None = None, *, test: bool = False, checkpoint: Path | None = None,
          cuda_graph: bool = True) -> Metrics:
    """Train `config` and return its metrics (accuracies are fractions in [0, 1]).

    `callbacks` see every step and epoch; a `result` callback that raises Stop ends the run after
    that epoch, and `train` then raises the Stop again, the metrics so far having gone to the `end`
    callback, which sees them however the run ends. `test=True` also scores the test set, kept apart
    as `test_accuracy`. With `checkpoint`, the run saves its state there after every epoch and, when
    the file exists, resumes from it instead of starting over. On CUDA the training step is replayed
    as a CUDA graph unless `cuda_graph` is False (`step_mode` says what ran). A NaN or infinite
    training loss raises Diverged.
    """
    (member,) = train_members([config], callbacks, test=test, checkpoint=checkpoint, cuda_graph=cuda_graph)
    if member.status is Ending.COMPLETE:
        return member.metrics
    raise Diverged(member.reason) if member.status is Ending.DIVERGED else Stop(member.reason)


def train_members(configs: list[Config], callbacks: Callbacks | None = None, *, test: bool = False,
                  checkpoint: Path | None = None, cuda_graph: bool = True) -> list[Member]:
    """Train `configs` as one array: each member's metrics and how it ended.

    One configuration trains its model as it is; several, which must differ only in settings that
    fusion keeps per member (study/engine/array.py checks), train as one fused model
    (study/engine/models/fused.py). A member whose training loss turns NaN or infinite ends as
    diverged, one whose `result` callback raises Stop as pruned; either takes no more updates while
    the others go on, and the array ends when no member is left. Arguments as `train`'s; the
    callbacks see every member (`EpochResult.member`, the `end` callback's index).
    """
    callbacks = callbacks or Callbacks()
    run = _start(configs, test, cuda_graph, checkpoint)
    try:
        for epoch in range(run.state.epoch, configs[0].epochs):
            if all(run.state.ends):
                break
            if not run.epoch(epoch, callbacks):
                break  # every member diverged in this epoch: nothing to score, save or show
            run.state.epoch = epoch + 1
            if checkpoint is not None:
                checkpoints.save(checkpoint, run.state)
            if callbacks.epoch:
                callbacks.epoch(run.state.metrics)
        if test and not all(run.state.ends):
            run.score_test()
        for member in run.state.metrics:
            member.seconds = time.perf_counter() - run.start
        return [Member(m) if end is None else Member(m, end.how, end.reason)
                for m, end in zip(run.state.metrics, run.state.ends)]
    finally:
        if callbacks.end:
            for k, member in enumerate(run.state.metrics):
                callbacks.end(k, member)


def _start(configs: list[Config], test: bool, cuda_graph: bool, checkpoint: Path | None) -> Run:
    """A fresh run, or one resumed from `checkpoint` where it holds one that fits."""
    run = Run(configs, test, cuda_graph)
    if checkpoint is not None and checkpoint.is_file() and not checkpoints.resume(checkpoint, run.state,
                                                                                    configs[0].epochs):
        del run  # discarded, perhaps after it changed part of the run: start from a fresh one
        run = Run(configs, test, cuda_graph)
    return run
