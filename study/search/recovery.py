"""Never lose a trial: who owns each running trial, what re-queues a trial that can no longer
finish, and Ctrl-C / SIGTERM as a clean interrupt.

Every running trial records its owner (host, process id, process start time). A run on the same
host fails and re-queues the trials of owners that are gone at once; trials owned elsewhere keep
Optuna's heartbeat rule (FAILED once silent for the storage's grace period, then re-queued with the
same parameters). Retries resume from the trial's last checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from study.errors import Terminated
from study.store import optuna_internals as internals
from study.store import owners, record
from study.store.vocabulary import requeued


def _stop(signum: int, _frame: Any) -> None:
    # One is enough: a second signal while the trial is being marked would leave it RUNNING.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handle_stop_signals() -> None:
    """Ctrl-C and SIGTERM interrupt the running trial: marked interrupted, its checkpoint kept."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _stop)


@contextlib.contextmanager
def deferred_stop_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back until the block ends, then delivered as they would have been.

    For steps that must not be cut in two (creating a trial and recording its owner). Python runs
    signal handlers in the main thread only, so only there can they be held back (and need to be).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _frame: pending.append(signum)) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            signal.raise_signal(pending[0])


def fail_running(study: optuna.Study, trials: list[optuna.Trial], reason: str) -> None:
    """Store `reason` with each of `trials` (this process's) still running, and tell it FAILED.

    A storage that cannot be written leaves the trial running; it is owned, so the next run here
    (or the heartbeat, elsewhere) fails and re-queues it instead.
    """
    for trial in trials:
        try:
            if internals.stored(study, trial).state != TrialState.RUNNING:
                continue
            record.write_trial(trial, fail_reason=reason)
            study.tell(trial, state=TrialState.FAIL)
        except Exception:
            continue


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# hostname plus boot id: a rebooted machine's process ids start over
HOST = f"{socket.gethostname()}/{_boot_id()}"


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where it is not running.

    Stored with the pid because a process id is reused: a live process that started at another
    time is not the trial's owner. Elsewhere than Linux, only whether the pid exists is known (0).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and brackets
    return None if fields[0] == "Z" else int(fields[19])  # a zombie has exited already


def record_owner(study: optuna.Study, trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, so that a rerun here can tell at once if it died."""
    pid = os.getpid()
    owner = owners.Owner(host=HOST, pid=pid, process_start=_process_start(pid), trial=trial.number, started=time.time())
    owners.write_owner(study, trial, owner)


def _owner_gone(trial: optuna.trial.FrozenTrial) -> bool:
    owner = owners.owner(trial)
    if owner is None or owner.host != HOST:
        return False
    return _process_start(owner.pid) not in (owner.process_start, 0)


def _fail(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """FAIL a running trial of another process with `reason`; False where another process ended it first."""
    try:
        record.write_stored_trial(study, trial, fail_reason=reason)
        return internals.fail_stored(study, trial)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def _died(trial: optuna.trial.FrozenTrial) -> str:
    return f"its worker (process {owners.owner(trial).pid} on {socket.gethostname()}) died"


def _fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """FAIL a running trial and re-queue it the way Optuna's heartbeat does (the retry resumes its checkpoint)."""
    if not _fail(study, trial, reason):
        return
    failed = copy.deepcopy(internals.stored(study, trial))
    record.clear_failure(failed)
    # every storage `run` opens has Optuna's heartbeat retry (study/store/heartbeat.py)
    internals.heartbeat_retry(study, failed)


def recover(study: optuna.Study) -> None:
    """Re-queue every trial that can no longer finish: those of dead workers (retry_dead), and those
    failed by their environment (interrupted, device, disk) rather than their configuration; never one
    that stepped aside (vocabulary.STEPPED_ASIDE). Nodes that start at once may each re-queue a grid's trial:
    its cell is trained once all the same (study/search/budget.py)."""
    retry_dead(study)
    trials = study.get_trials(deepcopy=False)
    retried = {record.trial_info(t).retry_of for t in trials}
    for t in trials:
        info = record.trial_info(t)
        if t.state == TrialState.FAIL and requeued(info.fail_reason) and t.number not in retried:
            # one stopped before it set its parameters retries the queue entry it was popped from (a grid's cell)
            params = t.params or t.system_attrs.get("fixed_params", {})
            study.enqueue_trial(params, user_attrs=record.trial_attrs(retry_of=t.number, reference=info.reference))


def retry_dead(study: optuna.Study) -> None:
    """FAIL and re-queue running trials whose owner on this host is gone (at once) or whose heartbeat
    went stale (owners elsewhere). Safe to run in several workers at once: each trial fails once."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _owner_gone(t):
            _fail_and_retry(study, t, _died(t))
    optuna.storages.fail_stale_trials(study)


def fail_dead(study: optuna.Study) -> None:
    """FAIL, without re-queuing, running trials whose owner on this host is gone: for the studies
    that walk their own list of runs (final scoring, ablation path) and train again what is missing."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _owner_gone(t):
            _fail(study, t, _died(t))
