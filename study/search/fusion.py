"""Who gets fused: a study's array size, and its trials trained K at a time as one fused model.

A worker asks the study for K trials at once (ablation and comparison cells from the queue; for a
search, the sampler proposes the first trial whole and the other K-1 with its non-fusible settings
fixed), groups the trials whose configurations differ only in fusible settings
(study/engine/array.py: FUSIBLE) and trains each group with `train_array`. Every member stays an ordinary
Optuna trial: its own params, intermediate values and attributes (plus `array`, the array it
trained in), told COMPLETE, PRUNED or FAILED on its own.

Fusion pays where one trial leaves the device idle: a GPU at 32 px (the issue's H100 probe:
NaiveNet@32, 58.9k member-images/s alone, 113.7k at K=8, 115.7k at K=16) and loses where the
grouped kernels are slower than the dense ones (the same GPU at 128 px: 11.6k alone, 8.5k at K=8)
and on CPUs (0.8-1.0x, docs/performance.md). So `fuse` is off on CPUs and at resolutions above
FUSE_MAX_RESOLUTION unless the space or `--fuse` asks; on a GPU it is ARRAY_SIZE, or fewer where the
GPU's free memory holds fewer members.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from study.config import Config
from study.engine import models
from study.engine.array import FUSIBLE, train_array
from study.engine.device import resolve_device
from study.engine.models.fused import NotFusible, check_members, fuse
from study.engine.results import Ending
from study.errors import UserError
from study.search.budget import BudgetReached, cell_owner
from study.search.recovery import deferred_stop_signals, fail_running, own
from study.search.trial import TrialReports, configure, original_number, stored_failures
from study.spaces.kinds import Grid, Plan, Search
from study.store import optuna_internals as internals
from study.store import record
from study.store.vocabulary import INTERRUPTED, SUGGEST_FAILED, array_label, diverged

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


def ask(study: optuna.Study, n: int, plan: Plan, beats: contextlib.ExitStack,
        created: list[optuna.Trial]) -> list[tuple[optuna.Trial, Config]]:
    """`n` trials and their configurations. Each trial is owned by this process and beats (in `beats`)
    from the moment it exists, and is listed in `created` at once, so that whatever stops this
    process before it tells the trial, its caller or the next run finds the trial. A search's trials
    after the first are enqueued with the first one's non-fusible parameters, so the sampler
    proposes only what the array can vary."""
    asked: list[tuple[optuna.Trial, Config]] = []
    shared: dict[str, Any] = {}
    with warnings.catch_warnings():
        # Optuna warns that heartbeats belong to optimize; arrays run them as optimize does
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        grid = isinstance(plan.kind, Grid)
        for i in range(n):
            if i and isinstance(plan.kind, Search):
                study.enqueue_trial(shared, skip_if_exists=False)
            with deferred_stop_signals():  # a stop between creating and owning would leave a trial nobody owns
                trial = _pop_cell(study, asked[0][0].params if asked else None) if grid else None
                if trial is None and (i == 0 or not grid):
                    trial = study.ask()  # a grid's first member: a trial that only steps aside still leaves the queue
                if trial is None:
                    break
                own(study, trial)
                created.append(trial)
            beats.enter_context(internals.heartbeat_thread(study, trial))
            try:
                config = configure(plan, trial)
            except UserError:  # the space's suggest: the trial it was asked for fails with the reason, one line
                fail_running(study, [trial], record.trial_info(internals.stored(study, trial)).fail_reason
                             or SUGGEST_FAILED)
                raise
            asked.append((trial, config))
            if i == 0:
                shared = {p: v for p, v in trial.params.items() if p not in FUSIBLE and p in config.to_dict()}
    return asked


def _pop_cell(study: optuna.Study, like: dict[str, Any] | None) -> optuna.Trial | None:
    """`study.ask()` for a grid's array: a queued trial that owns its cell (study/search/budget.py), and with
    `like` (the first member's parameters) one whose parameters outside FUSIBLE are the same first, so
    that it fuses with it; None where no queued trial owns its cell. Optuna pops the lowest-numbered
    queued trial, which may be a cell queued twice by nodes that start at once: the array would lose
    the member that steps aside."""
    trials = internals.all_trials(study)
    owners = [t for t in trials if t.state == TrialState.WAITING
              and getattr(cell_owner(trials, record.cell(t)), "number", None) == t.number]
    if like is not None:
        def rest(params: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in params.items() if k not in FUSIBLE}

        owners.sort(key=lambda t: rest(t.system_attrs["fixed_params"]) != rest(like))  # stable: by number within
    for t in owners:
        trial = internals.take_waiting(study, t)
        if trial is not None:
            return trial
    return None


def groups(asked: list[tuple[optuna.Trial, Config]]) -> list[list[tuple[optuna.Trial, Config]]]:
    """The asked trials grouped by fusion key, in the order they were asked."""
    out: dict[tuple[Any, ...], list[tuple[optuna.Trial, Config]]] = {}
    for trial, config in asked:
        out.setdefault(fusion_key(config), []).append((trial, config))
    return list(out.values())


def train_group(study: optuna.Study, group: list[tuple[optuna.Trial, Config]], progress: Any, store: Any,
                checkpoints: Path) -> None:
    """Train one group as an array and tell each member's trial how it ended."""
    trials = [t for t, _ in group]
    name = "-".join(str(original_number(internals.stored(study, t))) for t in trials)
    checkpoint = checkpoints / f"array-{name}.pt"
    for t in trials:
        record.write_trial(t, array=array_label(trials[0].number, len(trials)))
    progress.start_trial(trials[0].number, group[0][1].epochs)
    try:
        with stored_failures(trials, checkpoint):
            members = train_array([c for _, c in group], callbacks=TrialReports(trials, store).callbacks(progress),
                                  checkpoint=checkpoint)
    except BaseException:
        for t in trials:
            study.tell(t, state=TrialState.FAIL)
        raise
    for t, member in zip(trials, members):
        if member.status is Ending.COMPLETE:
            study.tell(t, member.metrics.val_accuracy)
        elif member.status is Ending.PRUNED:
            study.tell(t, state=TrialState.PRUNED)
        else:
            record.write_trial(t, fail_reason=diverged(member.reason))
            study.tell(t, state=TrialState.FAIL)
        progress(study, internals.stored(study, t))
    checkpoint.unlink(missing_ok=True)


def train_arrays(study: optuna.Study, n: int, objective: Any) -> None:
    """Ask `n` trials and train them in arrays, with what the worker's `objective` (study.search.trial.Objective)
    holds: the run's plan (the space with its fixed settings and seed), budget, progress and folders.

    Each trial beats, as optimize's do, from its creation until the batch ends, so that another
    machine sees it live while it waits for an earlier group. Whatever ends the batch early (an
    interrupt, a suggest that raises, a failing disk), no trial it created is left running: those
    not yet told are stored as interrupted, and the next run re-queues them."""
    created: list[optuna.Trial] = []
    with contextlib.ExitStack() as beats:
        try:
            asked = ask(study, n, objective.plan, beats, created)
            objective.attempts += len(asked)
            admitted = []
            for trial, config in asked:
                try:
                    objective.budget.claim(study, trial)
                except BudgetReached:
                    study.tell(trial, state=TrialState.FAIL)  # claim stored why
                    continue
                admitted.append((trial, config))
            for group in groups(admitted):
                # an array out of memory fails its own members (stored_failures); the next group still trains
                with contextlib.suppress(torch.OutOfMemoryError):
                    train_group(study, group, objective.progress, objective.store, objective.checkpoints)
        except BaseException:
            with deferred_stop_signals():  # a second Ctrl-C must not cut the marking short
                fail_running(study, created, INTERRUPTED)
            raise
