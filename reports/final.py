"""The final test scores that `python -m study final` stored: one row per chosen configuration."""

from __future__ import annotations

from typing import Any, Callable

import optuna
import pandas as pd

from reports import stats
from reports.tables import Table, complete, pm, recorded
from study.store import record
from study.store.record import TrialInfo
from study.store.vocabulary import Derived


def of(studies: list[optuna.Study], source: str) -> optuna.Study | None:
    """The final-scoring study made from `source`, when it is among the loaded ones."""
    return next((s for s in studies if s.study_name == Derived.FINAL.name_for(source)), None)


def test_values(final: optuna.Study, field: Callable[[TrialInfo], Any], value: str) -> list[float]:
    """Test accuracies of the final runs whose `field` (`lambda i: i.model`) reads `value`."""
    return [t.value for t in complete(final) if str(field(record.trial_info(t))) == value]


def scores(study: optuna.Study) -> Table | str:
    """Per candidate: seeds, validation and test accuracy (mean ± std), the source trial it retrains."""
    done = complete(study)
    if not done:
        return "no final run completed yet"
    rows = []
    for label in dict.fromkeys(str(record.trial_info(t).candidate) for t in sorted(done, key=lambda t: t.number)):
        runs = [t for t in done if str(record.trial_info(t).candidate) == label]
        val = stats.summary(recorded(runs, lambda i: i.val_accuracy))
        test = stats.summary([t.value for t in runs])
        first = record.trial_info(runs[0])
        rows.append({"candidate": label, "source_trial": first.source_trial, "model": first.model, "n": test.n,
                     "val_accuracy_mean": val.mean, "val_accuracy_std": val.std,
                     "test_accuracy_mean": test.mean, "test_accuracy_std": test.std})
    data = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "candidate": data["candidate"], "model": data["model"], "seeds": data["n"],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        "test acc (%)": [pm(m, s) for m, s in zip(data["test_accuracy_mean"], data["test_accuracy_std"])],
    })
    source = record.study_info(study).source_study or "?"
    title = (f"Test accuracy of {source}'s chosen configurations: scored once, not used for selection "
             "(accuracy in %, mean ± std over seeds)")
    return Table("final", title, data, shown)
