"""A space's stored study: created once with its attributes, note and first trials, or loaded to resume."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
import uuid
from typing import Any

import optuna

from study import data, record, search_defaults
from study.budget import Budget
from study.config import Config
from study.errors import UserError
from study.space import Space


def sampler(space: Space, seed: int, epochs: int, budget: Budget | None = None) -> optuna.samplers.BaseSampler:
    """The space's sampler, its start-up sized to the full-length trials (of `epochs`) the budget buys."""
    return search_defaults.sampler(space.sampler, seed, search_defaults.full_trials(budget, epochs))


def pruner(space: Space, epochs: int, budget: Budget | None = None) -> optuna.pruners.BasePruner:
    """The space's pruner, its first rung and reduction factor from `epochs` and the budget."""
    return search_defaults.pruner(space.pruner, epochs, search_defaults.full_trials(budget, epochs))


def open_study(space: Space, fixed: dict[str, Any], storage: optuna.storages.BaseStorage, url: str, name: str,
               seed: int) -> optuna.Study:
    """Create the space's study, or load it to resume; refuses a name already used by another space."""
    existing = {s.study_name: record.study_info(s) for s in optuna.get_all_study_summaries(storage)}
    if name in existing and existing[name].space not in (None, space.name):
        raise UserError(f"study {name!r} in {url} belongs to space {existing[name].space!r}; "
                        "pass --study-name to start a new one")
    defaults = space.defaults.replace(**fixed)
    kwargs = dict(storage=storage, study_name=name, sampler=sampler(space, seed, defaults.epochs),
                  pruner=pruner(space, defaults.epochs))
    try:
        study = optuna.create_study(direction="maximize", **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        if name not in existing:  # another machine created it a moment ago: it sets it up, once
            _wait_for_uid(study)
    else:
        _set_up(study, space, fixed, defaults)
    info = record.study_info(study)
    if info.uid is None:  # studies stored before checkpoints were keyed by it get one too
        record.write_study(study, uid=uuid.uuid4().hex)
    record.write_study(study, commands=[*info.commands, shlex.join(["python", "-m", "study", *sys.argv[1:]])])
    return study


def _set_up(study: optuna.Study, space: Space, fixed: dict[str, Any], defaults: Config) -> None:
    """A new study's attributes, note and first trials; the uid comes last: it says the rest is there."""
    cifar = data.load(defaults.dataset, defaults.data_dir)
    dataset = dataclasses.asdict(record.Dataset(cifar.name, str(cifar.root), list(cifar.classes), len(cifar.train_labels),
                                                len(cifar.test_labels)))
    description = record.description(space.description)
    record.write_study(
        study, space=space.name, space_path=str(space.path), description=description,
        kind=space.kind.name, sampler=space.sampler, pruner=space.pruner, seeds=space.seeds, dataset=dataset,
        **space.kind.study_attrs(),
    )
    import optuna_dashboard

    note = f"# {space.name}\n\n{description}\n\nSpace file: `{space.path}`"
    optuna_dashboard.save_note(study, note)
    space.kind.created(study, fixed)
    record.write_study(study, uid=uuid.uuid4().hex)


def _wait_for_uid(study: optuna.Study, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while record.study_info(study).uid is None and time.monotonic() < deadline:
        time.sleep(0.2)
