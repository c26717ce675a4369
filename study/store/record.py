"""What a study stores, defined once: its own attributes, each trial's attributes, and how to read them.

Optuna keeps a trial's parameters and values; everything else a study of ours holds is a user
attribute, named here and nowhere else (values from a fixed set: vocabulary.py). `StudyInfo` is what a
study says about itself (its space, kind, design, data set, budget), `TrialInfo` what a trial says:
which cell it is (variant, seed, components), its configuration and metrics, and why it failed. Writers
take keyword arguments and refuse names that are not fields, so a typo fails where it is written.

Values of more than ARTIFACT_NUMBERS numbers (a CIFAR-100 confusion matrix) go to the artifact
store as JSON, and the attribute `<name>_artifact` holds the artifact's id: a big user attribute
slows every storage read, and optuna-dashboard reads them all.

Readers check each stored value against its field's type (typed.py); checks.py says which are malformed.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from study.config import Config
from study.engine.results import Metrics, as_dict  # what `train` measures is what a trial stores
from study.errors import UserError
from study.store import optuna_internals as internals
from study.store import vocabulary
from study.store.typed import fits, hints, square, typed
from study.store.vocabulary import StudyKind

ARTIFACT_NUMBERS = 400
# characters of a space's docstring a study stores (its description and dashboard note): a docstring
# is prose, and megabytes of it would slow every storage read
MAX_DESCRIPTION = 10_000
ARTIFACT_SUFFIX = "_artifact"
@dataclass(frozen=True)
class Dataset:
    """The data set a study trained on, as loaded (a subset has fewer images than the full set)."""

    name: str | None = None
    root: str | None = None
    classes: list[str] = field(default_factory=list)
    train_images: int | None = None
    test_images: int | None = None


@dataclass(frozen=True)
class StudyInfo:
    """A study's user attributes. Studies of earlier releases may lack some: they read as the defaults."""

    kind: str = StudyKind.SEARCH.value  # a vocabulary.StudyKind
    uid: str | None = None  # unique to the study, set last at creation; keys its checkpoint folder
    space: str | None = None
    space_path: str | None = None
    description: str = ""
    sampler: str | None = None
    pruner: str | None = None
    seeds: int | None = None
    dataset: dict[str, Any] | None = None  # a Dataset's fields: read it with `dataset(info)`
    budget: int | str | None = None  # a trial count, or a compute budget's text ("100 epochs")
    commands: list[str] = field(default_factory=list)  # every command line that ran the study
    trials_per_gpu: float | None = None
    array_size: int | None = None  # trials trained as one fused model (study/search/arrays.py), and why
    array_size_reason: str | None = None
    # ablations and comparisons
    design: str | None = None
    reference_variant: str = vocabulary.Design.ONE_OUT.reference_variant()
    components: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> setting, full, ablated
    compare: dict[str, list[Any]] = field(default_factory=dict)
    # studies derived from another (ablation path, final scoring)
    source_study: str | None = None
    source_kind: str | None = None
    path: list[dict[str, Any]] | None = None  # the ablation path's steps


@dataclass
class TrialInfo(Metrics):
    """A trial's user attributes: the metrics `train` measured, and what the trial is."""

    reference: bool = False  # a search's trial 0: the space's defaults
    variant: str | None = None
    model: str | None = None
    components_on: list[str] = field(default_factory=list)
    retry_of: int | None = None
    fail_reason: str | None = None  # free text; vocabulary.py spells the reasons that are read back
    stopped_by: str | None = None  # a vocabulary.StoppedBy
    candidate: str | None = None  # final scoring
    source_trial: int | None = None
    scored_once: bool = False
    changed: list[str] = field(default_factory=list)  # ablation path
    path_step: int | None = None
    array: str | None = None  # the fused array it trained in: vocabulary.array_label


DATASET_FIELDS = frozenset(f.name for f in dataclasses.fields(Dataset))
STUDY_FIELDS = frozenset(f.name for f in dataclasses.fields(StudyInfo))
TRIAL_FIELDS = frozenset(f.name for f in dataclasses.fields(TrialInfo))


def _checked(attrs: dict[str, Any], known: frozenset[str], what: str) -> dict[str, Any]:
    """`attrs` as stored (an Enum as its value); a name that is not a field is a TypeError."""
    unknown = sorted(set(attrs) - known)
    if unknown:
        raise TypeError(f"{what} has no attribute {', '.join(unknown)}; add it to study/store/record.py")
    return {k: v.value if isinstance(v, Enum) else v for k, v in attrs.items()}


def study_info(study: optuna.Study | Any) -> StudyInfo:
    """What `study` (or a StudySummary) says about itself; keys of other releases, and values not of
    their field's type, are left out (`malformed` says which)."""
    return StudyInfo(**typed(StudyInfo, study.user_attrs)[0])


def dataset(info: StudyInfo) -> Dataset | None:
    """The study's data set, None where it was not recorded."""
    if not info.dataset:
        return None
    return Dataset(**typed(Dataset, info.dataset)[0])


def description(text: str) -> str:
    """A space's docstring as a study stores it: at most MAX_DESCRIPTION characters, saying so if cut."""
    text = text.strip()
    if len(text) <= MAX_DESCRIPTION:
        return text
    return f"{text[:MAX_DESCRIPTION]}\n\n[{len(text) - MAX_DESCRIPTION:,} more characters in the space file]"


def write_study(study: optuna.Study, **attrs: Any) -> None:
    for key, value in _checked(attrs, STUDY_FIELDS, "a study").items():
        study.set_user_attr(key, value)


def trial_info(trial: FrozenTrial) -> TrialInfo:
    """What the trial stored; values not of their field's type are left out (`malformed` says which)."""
    return TrialInfo(**typed(TrialInfo, trial.user_attrs)[0])


def trial_attrs(**attrs: Any) -> dict[str, Any]:
    """Checked attributes for a trial not made yet (`study.enqueue_trial(..., user_attrs=...)`)."""
    return _checked(attrs, TRIAL_FIELDS, "a trial")


def write_trial(trial: optuna.Trial, **attrs: Any) -> None:
    for key, value in trial_attrs(**attrs).items():
        trial.set_user_attr(key, value)


def write_stored_trial(study: optuna.Study, trial: FrozenTrial, **attrs: Any) -> None:
    """Attributes of a trial this process does not run (a dead worker's, one the budget stops)."""
    for key, value in trial_attrs(**attrs).items():
        internals.set_trial_user_attr(study, trial, key, value)


def cell(trial: FrozenTrial) -> tuple[Any, Any] | None:
    """The (variant, seed) of a grid trial, from its parameters or, before it sets them, from the queue
    entry it was popped from; None for a trial not of a cell (one the sampler proposed)."""
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    return (params["variant"], params["seed"]) if "variant" in params and "seed" in params else None


def stepped_aside(trial: FrozenTrial) -> bool:
    """Whether the grid trial trained nothing because its cell is another trial's (STEPPED_ASIDE)."""
    return (trial_info(trial).fail_reason or "").startswith(vocabulary.STEPPED_ASIDE)


def config(trial: FrozenTrial) -> Config:
    """The trial's configuration as trained (settings of a later release than the database are dropped);
    a trial that stored none, or one that is not a valid configuration, is a UserError naming it."""
    stored = trial_info(trial).config
    if not stored:
        raise UserError(f"trial {trial.number} stored no configuration (config), so it cannot be retrained: "
                        "pass a study written by `python -m study run`")
    try:
        config = Config.from_dict(stored)
        return config.replace(**{k: v for k, v in stored.items() if k in Config.__dataclass_fields__ and k != "declared"})
    except (UserError, TypeError) as exc:
        raise UserError(f"trial {trial.number}: its stored configuration is malformed ({exc})") from None


def setting(trial: FrozenTrial, name: str, default: Any = None) -> Any:
    """One setting of the trial's configuration, `default` where it was not stored."""
    return trial_info(trial).config.get(name, default)


def store_metrics(trial: optuna.Trial, metrics: Metrics, artifact_store: Any = None) -> None:
    """Store `train`'s metrics as the trial's attributes; big values go to the artifact store."""
    for key, value in as_dict(metrics).items():
        text = json.dumps(value)
        if artifact_store is not None and text.count(",") >= ARTIFACT_NUMBERS:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{key}.json"
                path.write_text(text)
                artifact_id = optuna.artifacts.upload_artifact(
                    artifact_store=artifact_store, file_path=str(path), study_or_trial=trial
                )
            trial.set_user_attr(key + ARTIFACT_SUFFIX, artifact_id)
        else:
            trial.set_user_attr(key, value)


def confusion_matrix(trial: FrozenTrial, artifacts: Any) -> list[list[int]] | None:
    """The last epoch's validation confusion matrix (rows: true class), from wherever it was stored."""
    return _maybe_artifact(trial, "confusion_matrix", artifacts)


def grad_norms(trial: FrozenTrial, artifacts: Any) -> dict[str, list[float]] | None:
    """The first epoch's gradient norm per layer and step, where the trial recorded them."""
    return _maybe_artifact(trial, "grad_norms", artifacts)


def _maybe_artifact(trial: FrozenTrial, name: str, artifacts: Any) -> Any:
    """The value stored inline or as an artifact, None where it is missing or not of its field's type."""
    if name in trial.user_attrs:
        value = trial.user_attrs[name]
    else:
        artifact_id = trial.user_attrs.get(name + ARTIFACT_SUFFIX)
        if not isinstance(artifact_id, str) or artifacts is None:
            return None
        try:
            with artifacts.open_reader(artifact_id) as reader:
                value = json.loads(reader.read())
        except Exception:
            return None  # a moved or deleted artifact folder leaves the diagnostic out, not the report
    if not fits(value, hints(TrialInfo)[name]) or name == "confusion_matrix" and not square(value):
        return None
    return value


def clear_failure(trial: FrozenTrial) -> None:
    """Drop the failure's reason from a copy of a failed trial: its retry starts without it."""
    trial.user_attrs.pop("fail_reason", None)
