"""The best trials of a study as plain rows: the table `run` prints and the report's read the same."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from study.store import record


def top_trials(study: optuna.Study, n: int = 10, pruned: bool = False) -> list[dict[str, Any]]:
    """The best `n` trials as plain rows, for the table `run` prints and the report's.

    Completed trials come first, best first; with `pruned`, pruned trials (valued at their last
    report) follow them. Each row's "params" holds every parameter searched by any row shown, None
    where its trial did not search it, so all rows have the same columns.
    """
    states = (TrialState.COMPLETE, TrialState.PRUNED) if pruned else (TrialState.COMPLETE,)
    done = [t for t in study.get_trials(deepcopy=False, states=states) if t.value is not None]
    done.sort(key=lambda t: (t.state != TrialState.COMPLETE, -t.value))
    names = sorted({k for t in done[:n] for k in t.params})
    rows = []
    for t in done[:n]:
        info = record.trial_info(t)
        rows.append({
            "trial": t.number, "state": t.state.name.lower(), "val_accuracy": t.value, "epochs": info.epochs_trained,
            "model_params": info.params, "flops_per_image": info.flops_per_image,
            "images_per_second": info.images_per_second, "seconds": info.seconds,
            "params": {k: t.params.get(k) for k in names},
        })
    return rows
