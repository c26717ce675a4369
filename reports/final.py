"""The final test scores that `python -m study final` stored: one row per chosen configuration."""

from __future__ import annotations

import optuna
import pandas as pd

from reports import stats
from reports.tables import Table, complete, pm

SUFFIX = "-final"  # the name `study final` gives its study: the source's name plus this


def of(studies: list[optuna.Study], source: str) -> optuna.Study | None:
    """The final-scoring study made from `source`, when it is among the loaded ones."""
    return next((s for s in studies if s.study_name == source + SUFFIX), None)


def test_values(final: optuna.Study, key: str, value: str) -> list[float]:
    """Test accuracies of the final runs whose user attribute `key` is `value` (a model, a candidate)."""
    return [t.value for t in complete(final) if str(t.user_attrs.get(key)) == value]


def scores(study: optuna.Study) -> Table | str:
    """Per candidate: seeds, validation and test accuracy (mean ± std), the source trial it retrains."""
    done = complete(study)
    if not done:
        return "no final run completed yet"
    rows = []
    for label in dict.fromkeys(str(t.user_attrs.get("candidate")) for t in sorted(done, key=lambda t: t.number)):
        runs = [t for t in done if str(t.user_attrs.get("candidate")) == label]
        val = stats.summary([t.user_attrs["val_accuracy"] for t in runs if "val_accuracy" in t.user_attrs])
        test = stats.summary([t.value for t in runs])
        rows.append({"candidate": label, "source_trial": runs[0].user_attrs.get("source_trial"),
                     "model": runs[0].user_attrs.get("model"), "n": test.n, "val_accuracy_mean": val.mean,
                     "val_accuracy_std": val.std, "test_accuracy_mean": test.mean, "test_accuracy_std": test.std})
    data = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "candidate": data["candidate"], "model": data["model"], "seeds": data["n"],
        "val acc (%)": [pm(m, s) for m, s in zip(data["val_accuracy_mean"], data["val_accuracy_std"])],
        "test acc (%)": [pm(m, s) for m, s in zip(data["test_accuracy_mean"], data["test_accuracy_std"])],
    })
    source = study.user_attrs.get("source_study", "?")
    title = (f"Test accuracy of {source}'s chosen configurations: scored once, not used for selection "
             "(accuracy in %, mean ± std over seeds)")
    return Table("final", title, data, shown)
