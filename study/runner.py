"""`run`: one Optuna study over a space, stored so that it resumes and the dashboard can read it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

from study import ablation, data
from study.config import Config
from study.errors import UserError
from study.progress import StudyProgress, top_trials_table
from study.space import Space
from study.train import Diverged, train

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def default_storage(space: Space) -> str:
    return f"sqlite:///runs/{space.name}.db"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for `url`; SQLite waits for locks instead of failing at once."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {path.parent} for the study database ({exc}); pass --storage") from None
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {})
    except Exception as exc:
        raise UserError(f"cannot open storage {url!r} ({type(exc).__name__}: {exc}); pass an SQLAlchemy URL such as sqlite:///runs/x.db") from None


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.BruteForceSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _save_note(study: optuna.Study, space: Space) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(study, f"# {space.name}\n\n{space.description.strip()}\n\nSpace file: `{space.path}`")


def artifact_store(url: str) -> optuna.artifacts.FileSystemArtifactStore:
    """Files too big for user attributes: beside an SQLite database, else under runs/artifacts."""
    base = Path(url.removeprefix("sqlite:///")).parent if url.startswith("sqlite:///") else Path("runs")
    folder = base / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(folder))


def open_study(space: Space, fixed: dict[str, Any], storage: str | None, study_name: str | None, seed: int) -> optuna.Study:
    """Create the space's study, or load it to resume; refuses a name already used by another space."""
    url = storage or default_storage(space)
    name = study_name or space.name
    store = open_storage(url)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    if name in existing and existing[name].user_attrs.get("space", space.name) != space.name:
        other = existing[name].user_attrs["space"]
        raise UserError(f"study {name!r} in {url} belongs to space {other!r}; pass --study-name to start a new one")
    defaults = space.defaults.replace(**fixed)
    study = optuna.create_study(
        storage=store, study_name=name, direction="maximize", load_if_exists=True,
        sampler=make_sampler(space.sampler, seed), pruner=make_pruner(space.pruner, defaults.epochs),
    )
    if name not in existing:
        cifar = data.load(defaults.dataset, defaults.data_dir)
        attrs = {
            "space": space.name, "space_path": str(space.path), "description": space.description.strip(),
            "kind": space.kind, "sampler": space.sampler, "pruner": space.pruner, "seeds": space.seeds,
            "dataset": {
                "name": cifar.name, "root": str(cifar.root), "classes": list(cifar.classes),
                "train_images": len(cifar.train_labels), "test_images": len(cifar.test_labels),
            },
            **(ablation.study_attrs(space) if space.kind == "ablation" else {}),
        }
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        _save_note(study, space)
        if space.kind == "search":
            study.enqueue_trial(space.reference_params(fixed), user_attrs={"reference": True})
    study.set_user_attr("commands", [*study.user_attrs.get("commands", []), " ".join(sys.argv)])
    return study


def run(
    space: Space,
    fixed: dict[str, Any],
    *,
    storage: str | None = None,
    study_name: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int = 0,
    console: Console | None = None,
) -> optuna.Study:
    """Search `space` until its trial budget (finished trials, counting earlier runs) is spent."""
    console = console or Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if space.kind == "ablation":
        ablation.check_fixed(space, fixed)
    defaults = space.defaults.replace(**fixed)
    data.load(defaults.dataset, defaults.data_dir)  # data problems surface here, not inside trial 0
    study = open_study(space, fixed, storage, study_name, seed)
    store = artifact_store(storage or default_storage(space))
    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    if space.kind == "ablation":
        todo = ablation.enqueue_missing(study, space, seed)
        budget = done + todo
    else:
        budget = trials or space.trials
        todo = budget - done
    study.set_user_attr("budget", budget)
    if todo <= 0:
        console.print(f"study {study.study_name} already has {done} finished trials (budget {budget}); nothing to do")
        return study

    with StudyProgress(console, budget, done) as progress:

        def objective(trial: optuna.Trial) -> float:
            if space.kind == "ablation":
                config = ablation.cell_config(space, trial, fixed, seed)
            else:
                config = space.config(trial, fixed)
            return train_trial(config, trial, progress, store)

        study.optimize(
            objective, n_trials=todo, timeout=timeout, catch=(Diverged, torch.OutOfMemoryError),
            callbacks=[optuna.study.MaxTrialsCallback(budget, states=FINISHED), progress],
        )
    return study


def train_trial(config: Config, trial: optuna.Trial, progress: StudyProgress, store: Any) -> float:
    """Train one trial's configuration; a diverged or out-of-memory run fails alone, reason stored."""
    progress.start_trial(trial.number, config.epochs)
    try:
        metrics = train(config, trial, on_step=progress.on_step, on_epoch=progress.on_epoch, artifact_store=store)
    except (Diverged, torch.OutOfMemoryError) as exc:
        trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
        raise
    return metrics["val_accuracy"]
