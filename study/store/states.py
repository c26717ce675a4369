"""Groups of trial states, named once (samplers/startup.py, below the store, keeps Optuna's own count)."""

from __future__ import annotations

from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # trained as far as it will be: what a trial budget counts
# a trial that is finished, running or queued: its cell or its share of a trial budget is taken
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
