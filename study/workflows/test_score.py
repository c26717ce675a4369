"""`python -m study test-score <db>` (alias `final`): the chosen configurations retrained with several
seeds, each scored ONCE on the test set.

A search selects on validation accuracy and never looks at the test set; this is the one step that
does, after the choice is made. For a search the candidates are its best trial (or `--top k`); for
an ablation or a comparison, every variant's reference cell (its run at the lowest seed). Each
(candidate, seed) is one trial of `<source>-final` beside the source study, holding the test
accuracy as its value. A rerun finds what is stored and trains only what is missing, so nothing is
scored on the test set twice, and the report marks these numbers "not used for selection". A stored
run counts only when it trained the whole configuration asked for (`Config.identity`): a rerun with
other settings (--epochs 30) trains anew, under a label that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from study.config import Config
from study.engine import datasets
from study.engine.device import resolve_device
from study.errors import UserError
from study.search import recovery
from study.search.progress import TABLE_BOX, StudyProgress
from study.search.trial import train_one_trial
from study.store import record, storage
from study.store.folders import artifact_store
from study.store.urls import check_study_name
from study.store.vocabulary import Derived, StudyKind
from study.workflows.ablation_path import load_source


@dataclass(frozen=True)
class Candidate:
    label: str  # "trial 12" for a search, else the variant's name
    source_trial: int
    config: Config


def candidates(source: optuna.Study, top: int) -> list[Candidate]:
    """What to score: the `top` best trials of a search, or each variant's run at its lowest seed."""
    done = [t for t in source.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        raise UserError(f"study {source.study_name} has no completed trial; run it first")
    if record.study_info(source).kind == StudyKind.SEARCH:
        ranked = sorted(done, key=lambda t: -t.value)[:top]
        return [Candidate(f"trial {t.number}", t.number, record.config(t)) for t in ranked]
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(done, key=lambda t: (record.trial_info(t).seed or 0, t.number)):
        first.setdefault(str(record.trial_info(t).variant), t)
    return [Candidate(name, t.number, record.config(t)) for name, t in first.items()]


def _labelled(c: Candidate, fixed: dict[str, Any]) -> Candidate:
    """The candidate as asked: its label names the settings `fixed` changes (the seed aside), so runs
    of one source trial under other settings ("trial 3 (epochs=30)") are rows of their own."""
    changed = {k: v for k, v in c.config.differences(c.config.replace(**fixed)).items() if k != "seed"}
    if not changed:
        return c
    label = f"{c.label} ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))})"
    return Candidate(label, c.source_trial, c.config)


def open_final(url: str, source: optuna.Study, seeds: int) -> optuna.Study:
    study = optuna.create_study(
        storage=storage.open_storage(url, heartbeat=False), study_name=Derived.FINAL.name_for(source.study_name),
        direction="maximize", load_if_exists=True, pruner=optuna.pruners.NopPruner(),
    )
    info = record.study_info(source)
    record.write_study(study, kind=StudyKind.FINAL, source_study=source.study_name, source_kind=info.kind, seeds=seeds,
                       dataset=info.dataset, space=info.space, space_path=info.space_path)
    return study


def test_score(url: str, study_name: str | None, fixed: dict[str, Any], top: int = 1, seeds: int | None = None,
          console: Console | None = None) -> optuna.Study:
    """Score every candidate with `seeds` seeds on the test set, once; returns the `-final` study."""
    console = console or Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = load_source(url, study_name)
    picks = candidates(source, top)
    n_seeds = seeds or record.study_info(source).seeds or 3
    check_study_name(Derived.FINAL.name_for(source.study_name))
    for c in picks:  # what would fail every run fails here, before the final study is made
        config = c.config.replace(**fixed)
        resolve_device(config.device)
        datasets.load(config)
    study = open_final(url, source, n_seeds)
    recovery.fail_dead(study)  # a killed earlier run's trial: its cell is trained again below
    cells = [(_labelled(c, fixed), c.config.replace(**{**fixed, "seed": c.config.seed + i}))
             for c in picks for i in range(n_seeds)]
    # a stored score stands in for a requested one only when it trained the very same configuration
    scored = {(record.trial_info(t).candidate, record.config(t).identity())
              for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
    todo = [(c, config) for c, config in cells if (c.label, config.identity()) not in scored]
    if not todo:
        console.print(f"{study.study_name} already holds a test score for each of the {len(cells)} runs; nothing trained")
    else:
        store = artifact_store(url)
        with StudyProgress(console, len(cells), len(cells) - len(todo), metric="test_acc") as progress:
            for c, config in todo:
                train_one_trial(study, config, progress, store, test=True, candidate=c.label, variant=c.label,
                           source_trial=c.source_trial, seed=config.seed, model=config.model, scored_once=True)
    console.print(final_table(study))
    return study


def final_table(study: optuna.Study) -> Table:
    """Per candidate: seeds, validation and test accuracy (mean over seeds)."""
    rows: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows.setdefault(str(record.trial_info(t).candidate), []).append(t)
    table = Table(title=f"{study.study_name}: test accuracy, scored once, not used for selection", box=TABLE_BOX)
    for col in ("candidate", "seeds", "val_acc", "test_acc"):
        table.add_column(col, justify="right")
    for label, trials in rows.items():
        val = sum(_or_nan(record.trial_info(t).val_accuracy) for t in trials) / len(trials)
        test = sum(t.value for t in trials) / len(trials)
        table.add_row(label, str(len(trials)), f"{val:.4f}", f"{test:.4f}")
    return table


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value
