"""How a worker that stops answering is noticed: every storage `run` opens runs Optuna's heartbeat for
trials owned by other machines (study/search/recovery.py), and a stale trial is retried as Optuna's
heartbeat does, its reported epochs inherited so that its retry resumes the checkpoint."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

# Optuna marks its heartbeat, its retry callback and fail_stale_trials experimental; they are what a
# study shared by workers needs, and every command that opens a storage would print the warning.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Optuna warns that heartbeats belong to optimize; the trial path asks its trials itself and runs their
# heartbeats as optimize does (optuna_internals.heartbeat_thread).
warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize", UserWarning)

HEARTBEAT_SECONDS = 10
HEARTBEAT_GRACE_SECONDS = 30
MAX_RETRY = 2


def stale_trial_callback() -> RetryHeartbeatStaleTrialCallback:
    return RetryHeartbeatStaleTrialCallback(MAX_RETRY, inherit_intermediate_values=True)


def rdb_arguments() -> dict[str, Any]:
    """RDBStorage's heartbeat arguments."""
    return dict(heartbeat_interval=HEARTBEAT_SECONDS, grace_period=HEARTBEAT_GRACE_SECONDS,
                heartbeat_stale_trial_callback=stale_trial_callback())
