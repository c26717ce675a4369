"""Every use of Optuna's private API, in one module, so that an Optuna upgrade is checked here alone
(tests/test_layout.py fails where another module touches one). Each is needed because Optuna's
public API has no counterpart:

- `study._storage` and `trial._trial_id`: a trial this process does not run (a dead worker's, one
  the budget stops from the pruner, a fused array's member) is read and written by its storage id;
  `optuna.Trial` offers that only to the trial's own `objective`, and `study.tell` cannot set a
  state on another process's trial or report whether it was finished already.
- `optuna.storages._heartbeat`: a fused array asks its trials with `study.ask`, outside `optimize`,
  yet they must beat as `optimize`'s do (`heartbeat_thread`); the gRPC proxy client gets Optuna's
  heartbeat protocol by subclassing `BaseHeartbeat` and overriding its `_get_stale_trial_ids` hook.
- `optuna.storages._grpc`: the proxy client's channel with a shorter reconnect backoff than Optuna
  opens (`grpc_channel`), and the proxy server (`grpc_server`), which Optuna's public
  `run_grpc_proxy_server` offers only with a fixed thread pool and no ready signal.
- CACHE_CALLS: the private methods Optuna's in-process cache (`optuna.storages._CachedStorage`)
  calls on an RDB storage, so that a reconnecting storage retries those too.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat, get_heartbeat_thread
from optuna.trial import FrozenTrial, TrialState

__all__ = ["BaseHeartbeat", "CACHE_CALLS", "fail_stored", "grpc_address_of", "grpc_channel", "grpc_server", "heartbeat_retry",
           "heartbeat_thread", "set_trial_system_attr", "set_trial_user_attr", "storage_of", "stored", "trial_id"]

CACHE_CALLS = ["_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids", "_get_trials", "_set_trial_param"]


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    return study._storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def stored(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """The trial as its storage holds it now (another process may have changed it)."""
    return study._storage.get_trial(trial._trial_id)


def set_trial_user_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    study._storage.set_trial_user_attr(trial._trial_id, key, value)


def set_trial_system_attr(study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def fail_stored(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Tell another process's running trial FAILED; UpdateFinishedTrialError where it finished first."""
    return study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def heartbeat_retry(study: optuna.Study, failed: FrozenTrial) -> None:
    """Optuna's own retry of a failed trial, the one its heartbeat runs: a copy re-queued with its parameters."""
    study._storage.get_heartbeat_stale_trial_callback()(study, failed)


def heartbeat_thread(study: optuna.Study, trial: optuna.Trial) -> contextlib.AbstractContextManager[Any]:
    """The trial's heartbeat while the block runs, as `optimize` beats for its trials."""
    return get_heartbeat_thread(trial._trial_id, study._storage)


def grpc_channel(client: Any, options: list[tuple[str, int]]) -> None:
    """Set up a GrpcStorageProxy's channel (its `_setup` hook) with these channel options."""
    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.client import GrpcClientCache

    client._channel = grpc.insecure_channel(f"{client._host}:{client._port}", options=options)
    client._stub = api_pb2_grpc.StorageServiceStub(client._channel)
    client._cache = GrpcClientCache(client._stub)


def grpc_address_of(client: Any) -> tuple[str, int]:
    return client._host, client._port


def grpc_server(storage: optuna.storages.BaseStorage, host: str, port: int, threads: int) -> Any:
    """Optuna's gRPC proxy server for `storage`, answering `threads` requests at a time (not started)."""
    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, ThreadPoolExecutor(threads))


def take_waiting(study: optuna.Study, waiting: FrozenTrial) -> optuna.Trial | None:
    """Pop this queued trial for this process, as `study.ask` pops the lowest-numbered one (a grid's
    array picks which); None where another worker popped it first."""
    try:
        if not study._storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
            return None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    study._thread_local.cached_all_trials = None  # as `ask` does: the next read sees this trial running
    return optuna.Trial(study, waiting._trial_id)


def all_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial as the storage holds it now, past the study's per-thread cache."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False)


@contextlib.contextmanager
def stop_allowed(study: optuna.Study) -> Any:
    """`study.stop()` passes as it does inside optimize: samplers that end a study by themselves (grid,
    brute force) call it from `after_trial`, which Optuna allows inside optimize only; outside it the
    worker's loop and budget say when to stop."""
    local = study._thread_local
    before = getattr(local, "in_optimize_loop", False)
    local.in_optimize_loop = True
    try:
        yield
    finally:
        local.in_optimize_loop = before
        study._stop_flag = False
