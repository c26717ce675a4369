"""`python -m study final <db>`: the chosen configurations retrained with several seeds, each scored ONCE on the test set.

A search selects on validation accuracy and never looks at the test set; this is the one step that
does, after the choice is made. For a search the candidates are its best trial (or `--top k`); for
an ablation or a comparison, every variant's reference cell (its run at the lowest seed). Each
(candidate, seed) is one trial of `<source>-final` beside the source study, holding the test
accuracy as its value. A rerun finds what is stored and trains only what is missing, so nothing is
scored on the test set twice, and the report marks these numbers "not used for selection".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from study import runner
from study.ablation_path import load_source
from study.config import Config
from study.errors import UserError
from study.progress import TABLE_BOX, StudyProgress

SUFFIX = "-final"


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
    if source.user_attrs.get("kind", "search") == "search":
        ranked = sorted(done, key=lambda t: -t.value)[:top]
        return [Candidate(f"trial {t.number}", t.number, Config(**t.user_attrs["config"])) for t in ranked]
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(done, key=lambda t: (t.user_attrs.get("seed", 0), t.number)):
        first.setdefault(str(t.user_attrs.get("variant", t.params.get("variant"))), t)
    return [Candidate(name, t.number, Config(**t.user_attrs["config"])) for name, t in first.items()]


def open_final(storage: str, source: optuna.Study, seeds: int) -> optuna.Study:
    study = optuna.create_study(
        storage=runner.open_storage(storage, heartbeat=False), study_name=source.study_name + SUFFIX,
        direction="maximize", load_if_exists=True, pruner=optuna.pruners.NopPruner(),
    )
    for key, value in {"kind": "final", "source_study": source.study_name, "source_kind": source.user_attrs.get("kind", "search"),
                       "seeds": seeds, "dataset": source.user_attrs.get("dataset"), "space": source.user_attrs.get("space"),
                       "space_path": source.user_attrs.get("space_path")}.items():
        study.set_user_attr(key, value)
    return study


def final(storage: str, study_name: str | None, fixed: dict[str, Any], top: int = 1, seeds: int | None = None,
          console: Console | None = None) -> optuna.Study:
    """Score every candidate with `seeds` seeds on the test set, once; returns the `-final` study."""
    console = console or Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    source = load_source(storage, study_name)
    picks = candidates(source, top)
    n_seeds = seeds or source.user_attrs.get("seeds") or 3
    study = open_final(storage, source, n_seeds)
    scored = {(t.user_attrs.get("candidate"), t.user_attrs.get("seed"))
              for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
    cells = [(c, c.config.seed + i) for c in picks for i in range(n_seeds)]
    todo = [(c, seed) for c, seed in cells if (c.label, seed) not in scored]
    if not todo:
        console.print(f"{study.study_name} already holds a test score for each of the {len(cells)} runs; nothing trained")
    else:
        store = runner.artifact_store(storage)
        with StudyProgress(console, len(cells), len(cells) - len(todo), metric="test_acc") as progress:
            for c, seed in todo:
                attrs = {"candidate": c.label, "variant": c.label, "source_trial": c.source_trial, "seed": seed,
                         "model": c.config.model, "scored_once": True}
                runner.train_told(study, attrs, c.config.replace(**fixed, seed=seed), progress, store, test=True)
    console.print(final_table(study))
    return study


def final_table(study: optuna.Study) -> Table:
    """Per candidate: seeds, validation and test accuracy (mean over seeds)."""
    rows: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows.setdefault(t.user_attrs["candidate"], []).append(t)
    table = Table(title=f"{study.study_name}: test accuracy, scored once, not used for selection", box=TABLE_BOX)
    for col in ("candidate", "seeds", "val_acc", "test_acc"):
        table.add_column(col, justify="right")
    for label, trials in rows.items():
        val = sum(t.user_attrs.get("val_accuracy", float("nan")) for t in trials) / len(trials)
        test = sum(t.value for t in trials) / len(trials)
        table.add_row(label, str(len(trials)), f"{val:.4f}", f"{test:.4f}")
    return table
