"""A space's stored study: created once with its attributes, note and first trials, or loaded to resume."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
import uuid
from pathlib import Path

import optuna

from study.engine import datasets
from study.errors import UserError
from study.samplers import registry
from study.samplers.registry import PrunerFactory, SamplerFactory
from study.search.budget import Budget
from study.spaces.kinds import Kind, Plan
from study.store import record


def sampler(kind: Kind, seed: int, epochs: int, budget: Budget | None = None,
            own: SamplerFactory | None = None) -> optuna.samplers.BaseSampler:
    """The space's sampler (or `own`, a caller's), its start-up sized to the full-length trials (of `epochs`)
    the budget buys."""
    full = registry.full_trials(budget, epochs)
    return own(seed, full) if own else registry.sampler(kind.sampler, seed, full)


def pruner(kind: Kind, epochs: int, budget: Budget | None = None,
           own: PrunerFactory | None = None) -> optuna.pruners.BasePruner:
    """The space's pruner (or `own`, a caller's), its first rung and reduction factor from `epochs` and the budget."""
    full = registry.full_trials(budget, epochs)
    return own(epochs, full) if own else registry.pruner(kind.pruner, epochs, full)


SET_UP_WAIT_SECONDS = 60  # a study another process created a moment ago: its set-up is on its way
CUT_SHORT_WAIT_SECONDS = 5  # a study found without a uid: cut short, unless its set-up ends within this

def open_study(plan: Plan, storage: optuna.storages.BaseStorage, url: str, name: str) -> optuna.Study:
    """Create the space's study, or load it to resume; refuses a name already used by another space."""
    space = plan.space
    existing = {s.study_name: record.study_info(s) for s in optuna.get_all_study_summaries(storage)}
    if name in existing and existing[name].space not in (None, space.name):
        raise UserError(f"study {name!r} in {url} belongs to space {existing[name].space!r}; "
                        "pass --study-name to start a new one")
    if name in existing and existing[name].space == space.name and _another_file(existing[name].space_path, space.path):
        raise UserError(f"study {name!r} in {url} was set up from {existing[name].space_path}, not {space.path}: "
                        "same-named space files are kept apart, not mixed into one study; give this one its own "
                        f"with --study-name NAME --storage sqlite:///runs/NAME.db")
    defaults = plan.defaults
    kwargs = dict(storage=storage, study_name=name, sampler=sampler(space.kind, plan.seed, defaults.epochs),
                  pruner=pruner(space.kind, defaults.epochs))
    try:
        study = optuna.create_study(direction="maximize", **kwargs)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
        # Another process may be setting it up right now (created a moment ago, or just before our listing):
        # its set-up is waited for, since a second one would write another uid and split the checkpoints.
        _wait_for_uid(study, SET_UP_WAIT_SECONDS if name not in existing else CUT_SHORT_WAIT_SECONDS)
    if record.study_info(study).uid is None:
        # new; or its set-up was cut short (killed, Ctrl-C); or stored before checkpoints were keyed by a uid
        _set_up(study, plan)
    info = record.study_info(study)
    record.write_study(study, commands=[*info.commands, shlex.join(["python", "-m", "study", *sys.argv[1:]])])
    return study


def _another_file(stored: str | None, path: Path) -> bool:
    """Whether the study's space file (`stored`, as it was given then) is still there and is not `path`.
    One that is gone (a moved project, a renamed folder) cannot be told apart, so it is not refused."""
    if not stored or not Path(stored).is_file():
        return False
    return not Path(stored).samefile(path)


def _set_up(study: optuna.Study, plan: Plan) -> None:
    """A study's attributes, note and first trials, each written unless it is there already, so that
    a set-up cut short is finished by the next run (and a study of an earlier release only gains
    what it lacks); the uid comes last: it says the rest is there."""
    space = plan.space
    description = record.description(space.description)
    attrs = dict(space=space.name, space_path=str(space.path), description=description, **space.kind.study_attrs())
    missing = {k: v for k, v in attrs.items() if k not in study.user_attrs}
    if "dataset" not in study.user_attrs:
        images = datasets.load(plan.defaults)
        missing["dataset"] = dataclasses.asdict(record.Dataset(images.name, str(images.root), list(images.classes),
                                                               len(images.train_labels), len(images.test_labels)))
    record.write_study(study, **missing)
    import optuna_dashboard

    if not optuna_dashboard.get_note(study):
        note = f"# {space.name}\n\n{description}\n\nSpace file: `{space.path}`"
        optuna_dashboard.save_note(study, note)
    if not study.get_trials(deepcopy=False):  # a set-up cut short before its first trials were queued
        plan.created(study)
    if record.study_info(study).uid is None:  # a set-up that finished beside this one keeps its uid
        record.write_study(study, uid=uuid.uuid4().hex)


def _wait_for_uid(study: optuna.Study, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while record.study_info(study).uid is None and time.monotonic() < deadline:
        time.sleep(0.2)
